// Package settle is the settlement pipeline of one business date (SPEC
// section 6): fetch the file, parse it, stream it to
// SettlementService.SubmitBatch and return the server's batch report, or
// record the file as missing. It is the edge where parsed records become
// protobuf messages; matching and activation are the server's.
package settle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/enumtext"
	"mapfront/settlement/internal/calendar"
	"mapfront/settlement/internal/fetch"
	"mapfront/settlement/internal/parse"
)

// Batch statuses the server reports (BatchReport.status), as words
// (enumtext): what the daemon and the logs use.
const (
	StatusSettled     = "settled"
	StatusFileMissing = "file_missing"
	StatusRunning     = "running"
	// StatusRejected: the file was mostly unreadable; nothing of it was
	// applied, and a corrected file is taken without --force.
	StatusRejected = "rejected"
)

// Defaults for Job.
const (
	DefaultChunkSize     = 1000
	DefaultCallTimeout   = 30 * time.Second
	DefaultSubmitTimeout = 30 * time.Minute
)

// ErrNotSettled means the server answered a report whose status is not
// "settled".
var ErrNotSettled = errors.New("batch not settled")

// ErrRejected means the server rejected the file as mostly unreadable
// (SPEC section 6, issue 15): an alert, with an exit code of its own.
var ErrRejected = errors.New("settlement file rejected")

// ErrBusy means another run of the same business date holds it on the
// server: wait for it to finish.
var ErrBusy = errors.New("another settlement run holds the business date")

// Rules are the site's intake rules (issue 15 and 13): the trailer check
// made here, and the settings sent to the server with each file. A nil
// *Rules sends none (the server's defaults) and requires no trailer.
type Rules struct {
	RequireTrailer bool
	MaxBadPermille int
	DateTolerance  time.Duration
	LookbackDays   int
}

// Job runs the pipeline. Its zero fields take the defaults, except
// Settlement, which is required, and Source, without which Run refuses.
type Job struct {
	Settlement mapfrontv1.SettlementServiceClient
	// Source brings the file for Run; nil when none is configured.
	Source   fetch.Source
	Calendar calendar.Calendar
	// Poll is the retry policy for a missing file; Run sets its Deadline
	// from the calendar for each date.
	Poll fetch.Poll
	// ChunkSize is the number of records and bad lines per streamed
	// message: 1000 records are about 300 KB, well inside gRPC's 4 MB.
	ChunkSize int
	// CallTimeout bounds each unary call; SubmitTimeout bounds a whole
	// SubmitBatch stream, which includes the server's matching.
	CallTimeout   time.Duration
	SubmitTimeout time.Duration
	// Rules are the site's intake rules; nil: the server's defaults.
	Rules *Rules
	// Progress, when not nil, receives a progress line as records stream
	// (the command passes stderr when it is a terminal).
	Progress io.Writer
	Log      *slog.Logger
}

func (j *Job) log() *slog.Logger {
	if j.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return j.Log
}

func (j *Job) callTimeout() time.Duration {
	if j.CallTimeout <= 0 {
		return DefaultCallTimeout
	}
	return j.CallTimeout
}

// Run settles business date: it fetches the file through Source, waiting
// for it until the calendar's deadline, and submits it. When the file is
// still missing at the deadline it records the batch as file-missing
// through MarkFileMissing.
//
// Errors: one wrapping fetch.ErrFileMissing, with the file-missing report,
// when the file never came; a fetch error (fetch.ErrAuth,
// fetch.ErrUnavailable, configuration) when it could not be fetched; the
// errors of Submit otherwise.
func (j *Job) Run(ctx context.Context, date calendar.Date, force bool) (*mapfrontv1.BatchReport, error) {
	if j.Source == nil {
		return nil, errors.New("no settlement file source configured (set MAPFRONT_FTP_ADDR or MAPFRONT_SETTLE_DIR, or give --file)")
	}
	poll := j.Poll
	poll.Deadline = j.Calendar.GiveUpTime(date)
	if poll.Log == nil {
		poll.Log = j.Log
	}
	j.log().Info("fetching settlement file", "business_date", date.String(), "file", j.Source.Name(date), "deadline", poll.Deadline)
	path, err := poll.Fetch(ctx, j.Source, date)
	if errors.Is(err, fetch.ErrFileMissing) {
		j.log().Error("settlement file missing at the deadline; recording the batch as file-missing",
			"business_date", date.String(), "file", j.Source.Name(date), "err", err)
		report, markErr := j.MarkFileMissing(ctx, date, err.Error())
		if markErr != nil {
			return nil, errors.Join(err, markErr)
		}
		return report, err
	}
	if err != nil {
		return nil, err
	}
	// The report names the file as the POSP named it, without our paths.
	return j.Submit(ctx, date, path, filepath.Base(filepath.FromSlash(j.Source.Name(date))), force)
}

// MarkFileMissing records that no file came for date.
// Errors: the gRPC call's, wrapped.
func (j *Job) MarkFileMissing(ctx context.Context, date calendar.Date, detail string) (*mapfrontv1.BatchReport, error) {
	ctx, cancel := context.WithTimeout(ctx, j.callTimeout())
	defer cancel()
	resp, err := j.Settlement.MarkFileMissing(ctx, &mapfrontv1.MarkFileMissingRequest{
		BusinessDate: date.String(),
		Detail:       detail,
	})
	if err != nil {
		return nil, fmt.Errorf("MarkFileMissing %s: %w", date, busy(err))
	}
	return resp.GetReport(), nil
}

// Status returns the status of date's batch, "" when the server has none.
// The daemon asks it on start: the state lives in the database, not here.
// Errors: the gRPC call's other than NotFound, wrapped.
func (j *Job) Status(ctx context.Context, date calendar.Date) (string, error) {
	report, err := j.GetBatch(ctx, date)
	if status.Code(err) == codes.NotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return enumtext.Word(report.GetStatus()), nil
}

// GetBatch returns the report of date's batch.
// Errors: the gRPC call's, wrapped (codes.NotFound when there is none).
func (j *Job) GetBatch(ctx context.Context, date calendar.Date) (*mapfrontv1.BatchReport, error) {
	ctx, cancel := context.WithTimeout(ctx, j.callTimeout())
	defer cancel()
	resp, err := j.Settlement.GetBatch(ctx, &mapfrontv1.GetBatchRequest{BusinessDate: date.String()})
	if err != nil {
		return nil, fmt.Errorf("GetBatch %s: %w", date, err)
	}
	return resp.GetReport(), nil
}

// RunDaily asks the server for the day's time-driven work (installment
// releases, pending orders past their window).
// Errors: the gRPC call's, wrapped.
func (j *Job) RunDaily(ctx context.Context) (*mapfrontv1.RunDailyResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, j.callTimeout())
	defer cancel()
	resp, err := j.Settlement.RunDaily(ctx, &mapfrontv1.RunDailyRequest{})
	if err != nil {
		return nil, fmt.Errorf("RunDaily: %w", err)
	}
	return resp, nil
}

// Submit streams the local file at path as the batch of date and returns
// the server's report. fileName is the name the report shows.
//
// The header must carry the file's sha256, line count and total before the
// first record, and the parser streams, so the file is read twice: once for
// the summary, once to send. A file that changes between the two reads is
// refused, and the stream is cancelled, not completed, so the server never
// takes it as a whole batch.
//
// Errors: a local read error; one saying the file changed; the gRPC
// stream's, wrapped (the server refuses, say, a different file for a date
// already settled unless force is set).
func (j *Job) Submit(ctx context.Context, date calendar.Date, path, fileName string, force bool) (*mapfrontv1.BatchReport, error) {
	chunkSize := j.ChunkSize
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}
	opts := parse.Options{ChunkSize: chunkSize}
	start := time.Now()

	summary, err := parseFile(path, opts, func(parse.Chunk) error { return nil })
	if err != nil {
		return nil, err
	}
	j.log().Info("settlement file read", "business_date", date.String(), "file", fileName,
		"sha256", summary.SHA256, "lines", summary.Lines, "records", summary.Records,
		"bad_lines", summary.BadLines, "total_fen", summary.TotalFen, "trailer", summary.Trailer != nil)
	// A trailer that disagrees with the file means the file is not whole
	// (or not the POSP's): nothing of it is sent.
	if err := summary.CheckTrailer(j.Rules != nil && j.Rules.RequireTrailer); err != nil {
		return nil, fmt.Errorf("settlement file %s not submitted: %w", fileName, err)
	}
	hd := &mapfrontv1.BatchHeader{
		BusinessDate: date.String(),
		FileName:     fileName,
		Sha256:       summary.SHA256,
		RecordCount:  summary.Lines,
		TotalFen:     summary.TotalFen,
		Force:        force,
	}
	if r := j.Rules; r != nil {
		hd.MaxBadPermille = proto.Int32(int32(r.MaxBadPermille))
		hd.DateToleranceSeconds = proto.Int64(int64(r.DateTolerance / time.Second))
		hd.LookbackDays = proto.Int32(int32(r.LookbackDays))
	}

	submitTimeout := j.SubmitTimeout
	if submitTimeout <= 0 {
		submitTimeout = DefaultSubmitTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, submitTimeout)
	defer cancel()
	stream, err := j.Settlement.SubmitBatch(ctx)
	if err != nil {
		return nil, fmt.Errorf("SubmitBatch %s: %w", date, err)
	}
	err = stream.Send(&mapfrontv1.SubmitBatchRequest{Part: &mapfrontv1.SubmitBatchRequest_Header{Header: hd}})
	// io.EOF from Send means the server has already answered (a repeated
	// file, say, known from the header alone): its answer is in
	// CloseAndRecv.
	serverDone := errors.Is(err, io.EOF)
	if err != nil && !serverDone {
		return nil, fmt.Errorf("SubmitBatch %s: send header: %w", date, err)
	}

	if !serverDone {
		progress := newProgress(j.Progress, start)
		var sent int64
		again, err := parseFile(path, opts, func(c parse.Chunk) error {
			if err := stream.Send(&mapfrontv1.SubmitBatchRequest{Part: &mapfrontv1.SubmitBatchRequest_Chunk{Chunk: toProto(c)}}); err != nil {
				return err
			}
			sent += int64(c.Len())
			progress.update(sent, summary.Lines)
			return nil
		})
		progress.done(sent, summary.Lines)
		switch {
		case errors.Is(err, io.EOF):
			// The server stopped reading; its status is in CloseAndRecv.
		case err != nil:
			cancel()
			return nil, fmt.Errorf("SubmitBatch %s: %w", date, err)
		case !sameSummary(again, summary):
			cancel()
			return nil, fmt.Errorf("settlement file %s changed while being read (sha256 %s, then %s): not submitted", path, summary.SHA256, again.SHA256)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, fmt.Errorf("SubmitBatch %s: %w", date, busy(err))
	}
	report := resp.GetReport()
	if enumtext.Word(report.GetStatus()) == StatusRejected {
		j.log().Error("ALERT: settlement file rejected as mostly unreadable; nothing applied",
			"business_date", report.GetBusinessDate(), "file", fileName, "lines", report.GetRecords(),
			"bad_lines", report.GetBadLines(), "reason", report.GetDetail())
	}
	j.log().Info("batch report", "business_date", report.GetBusinessDate(), "status", enumtext.Word(report.GetStatus()),
		"records", report.GetRecords(), "matched", report.GetMatched(), "opened", report.GetOpened(),
		"activated", report.GetActivated(), "repeated_submission", report.GetRepeatedSubmission(),
		"elapsed", time.Since(start).Round(time.Millisecond))
	return report, nil
}

// sameSummary compares two reads of a file, the trailer by value.
func sameSummary(a, b parse.Summary) bool {
	ta, tb := a.Trailer, b.Trailer
	a.Trailer, b.Trailer = nil, nil
	return a == b && (ta == nil) == (tb == nil) && (ta == nil || *ta == *tb)
}

func parseFile(path string, opts parse.Options, emit func(parse.Chunk) error) (parse.Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return parse.Summary{}, fmt.Errorf("settlement file: %w", err)
	}
	defer f.Close()
	summary, err := parse.Parse(f, opts, emit)
	if err != nil {
		return parse.Summary{}, fmt.Errorf("settlement file %s: %w", path, err)
	}
	return summary, nil
}

func toProto(c parse.Chunk) *mapfrontv1.RecordChunk {
	out := &mapfrontv1.RecordChunk{
		Records:  make([]*mapfrontv1.SettlementRecord, len(c.Records)),
		BadLines: make([]*mapfrontv1.BadLine, len(c.BadLines)),
	}
	for i, r := range c.Records {
		out.Records[i] = &mapfrontv1.SettlementRecord{
			LineNo:          r.LineNo,
			TradeId:         r.TradeID,
			CardNo:          r.CardNo,
			Amount:          r.Amount,
			TerminalOrderId: r.TerminalOrderID,
			ReferenceNo:     r.ReferenceNo,
			SellerId:        r.SellerID,
			TerminalId:      r.TerminalID,
			BatchNo:         r.BatchNo,
			TradeDate:       r.TradeDate,
			TradeTime:       r.TradeTime,
			IdNumber:        r.IDNumber,
			MobileNum:       r.Mobile,
			Referrer:        r.Referrer,
			ProductId:       r.ProductID,
		}
	}
	for i, b := range c.BadLines {
		out.BadLines[i] = &mapfrontv1.BadLine{LineNo: b.LineNo, Reason: b.Reason(), Text: b.Text}
	}
	return out
}

// CheckReport returns nil when report says settled, and otherwise an error
// wrapping ErrNotSettled that says what the status is.
func CheckReport(report *mapfrontv1.BatchReport) error {
	switch s := enumtext.Word(report.GetStatus()); s {
	case StatusSettled:
		return nil
	case StatusFileMissing:
		return fmt.Errorf("%w: business date %s is recorded as file-missing", ErrNotSettled, report.GetBusinessDate())
	case StatusRejected:
		return fmt.Errorf("%w: %w: business date %s: %s; nothing was applied: correct the file and run again (no --force needed)",
			ErrNotSettled, ErrRejected, report.GetBusinessDate(), report.GetDetail())
	default:
		return fmt.Errorf("%w: business date %s has status %q", ErrNotSettled, report.GetBusinessDate(), s)
	}
}

// busy marks the server's refusal because another run holds the date
// (errcode 10018 with the settlement's message), so that it is said as
// such rather than as a server that is down.
func busy(err error) error {
	for _, d := range status.Convert(err).Details() {
		if e, ok := d.(*mapfrontv1.ErrorDetail); ok && e.Errcode == 10018 && strings.Contains(e.Errmsg, "日切正在进行") {
			return fmt.Errorf("%w: %w", ErrBusy, err)
		}
	}
	return err
}

// Retryable reports whether a failed run may succeed if tried again later:
// the server or the file source was unreachable or busy. A refusal (bad
// argument, a different file for a settled date) is not retried.
func Retryable(err error) bool {
	if errors.Is(err, fetch.ErrUnavailable) {
		return true
	}
	// status.Code finds a status wrapped anywhere in err's chain.
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}
