package settle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/settlement/internal/calendar"
	"mapfront/settlement/internal/fetch"
	"mapfront/settlement/internal/parse"
)

// fakeSettlement stands in for the server's SettlementService, over a real
// gRPC connection on the loopback, so that the client's streaming is
// exercised as it will be against the real server.
type fakeSettlement struct {
	mapfrontv1.UnimplementedSettlementServiceServer

	mu          sync.Mutex
	header      *mapfrontv1.BatchHeader
	records     []*mapfrontv1.SettlementRecord
	badLines    []*mapfrontv1.BadLine
	chunks      []int
	missing     []*mapfrontv1.MarkFileMissingRequest
	answerEarly bool // answer after the header, as for a repeated file
	batches     map[string]*mapfrontv1.BatchReport
}

func (f *fakeSettlement) SubmitBatch(stream grpc.ClientStreamingServer[mapfrontv1.SubmitBatchRequest, mapfrontv1.SubmitBatchResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "header first")
	}
	f.mu.Lock()
	f.header = h
	early := f.answerEarly
	f.mu.Unlock()
	report := &mapfrontv1.BatchReport{BusinessDate: h.BusinessDate, Status: mapfrontv1.BatchState_BATCH_STATE_SETTLED, FileName: h.FileName, Sha256: h.Sha256, Records: h.RecordCount, TotalFen: h.TotalFen}
	if early {
		report.RepeatedSubmission = true
		return stream.SendAndClose(&mapfrontv1.SubmitBatchResponse{Report: report})
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		c := msg.GetChunk()
		f.mu.Lock()
		f.records = append(f.records, c.Records...)
		f.badLines = append(f.badLines, c.BadLines...)
		f.chunks = append(f.chunks, len(c.Records)+len(c.BadLines))
		f.mu.Unlock()
	}
	report.Matched = int64(len(f.records))
	return stream.SendAndClose(&mapfrontv1.SubmitBatchResponse{Report: report})
}

func (f *fakeSettlement) MarkFileMissing(_ context.Context, req *mapfrontv1.MarkFileMissingRequest) (*mapfrontv1.MarkFileMissingResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.missing = append(f.missing, req)
	return &mapfrontv1.MarkFileMissingResponse{Report: &mapfrontv1.BatchReport{BusinessDate: req.BusinessDate, Status: mapfrontv1.BatchState_BATCH_STATE_FILE_MISSING}}, nil
}

func (f *fakeSettlement) GetBatch(_ context.Context, req *mapfrontv1.GetBatchRequest) (*mapfrontv1.GetBatchResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.batches[req.BusinessDate]
	if !ok {
		return nil, status.Error(codes.NotFound, "no batch")
	}
	return &mapfrontv1.GetBatchResponse{Report: r}, nil
}

func startFake(t *testing.T, f mapfrontv1.SettlementServiceServer) mapfrontv1.SettlementServiceClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	mapfrontv1.RegisterSettlementServiceServer(srv, f)
	go srv.Serve(l) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return mapfrontv1.NewSettlementServiceClient(conn)
}

const sampleLine = "2020030744015541000101023952001524000539|6225380083477614|0.01|000539|152412390951|307440155410001|01023952|001524|20141211|152412|123456789123456788|15017513750|1234"

var date = calendar.Date{Year: 2025, Month: time.March, Day: 7}

func writeFile(t *testing.T, lines int, bad ...int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("\uFEFF交易id|卡号|金额|流水号|参考号|商户号|终端号|批次号|交易日期|交易时间|身份证号|手机号|推荐人id|产品编号\r\n")
	isBad := map[int]bool{}
	for _, i := range bad {
		isBad[i] = true
	}
	for i := range lines {
		if isBad[i] {
			b.WriteString("broken|123456789123456788\r\n")
			continue
		}
		fmt.Fprintf(&b, "T%05d|6225380083477614|12.34|%06d|r|SH01|POS01|000001|20250307|101010|11010519491231002X|13912345678|R1|1010\r\n", i, i)
	}
	path := filepath.Join(t.TempDir(), "20250307.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSubmitStreamsHeaderAndChunks(t *testing.T) {
	fake := &fakeSettlement{}
	job := &Job{Settlement: startFake(t, fake), ChunkSize: 4}
	path := writeFile(t, 10, 3, 7)

	report, err := job.Submit(context.Background(), date, path, "20250307.txt", true)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if err := CheckReport(report); err != nil {
		t.Errorf("CheckReport: %v", err)
	}
	h := fake.header
	if h.BusinessDate != "20250307" || h.FileName != "20250307.txt" || len(h.Sha256) != 64 || h.RecordCount != 10 || h.TotalFen != 8*1234 || !h.Force {
		t.Errorf("header %+v", h)
	}
	if fmt.Sprint(fake.chunks) != "[4 4 2]" {
		t.Errorf("chunks %v", fake.chunks)
	}
	if len(fake.records) != 8 || len(fake.badLines) != 2 {
		t.Fatalf("records %d bad lines %d", len(fake.records), len(fake.badLines))
	}
	r := fake.records[0]
	if r.LineNo != 2 || r.TradeId != "T00000" || r.Amount != 1234 || r.TerminalOrderId != "000000" || r.SellerId != "SH01" ||
		r.TerminalId != "POS01" || r.BatchNo != "000001" || r.TradeDate != "20250307" || r.TradeTime != "101010" ||
		r.IdNumber != "11010519491231002X" || r.MobileNum != "13912345678" || r.Referrer != "R1" || r.ProductId != "1010" ||
		r.CardNo != "6225380083477614" || r.ReferenceNo != "r" {
		t.Errorf("record %+v", r)
	}
	b := fake.badLines[0]
	if b.LineNo != 5 || !strings.HasPrefix(b.Reason, "field_count: ") || b.Text != "broken|123456********6788" {
		t.Errorf("bad line %+v", b)
	}
}

func TestSubmitServerAnswersAfterHeader(t *testing.T) {
	fake := &fakeSettlement{answerEarly: true}
	job := &Job{Settlement: startFake(t, fake), ChunkSize: 10}
	// Enough data that the client is still sending when the server answers.
	path := writeFile(t, 20000)
	report, err := job.Submit(context.Background(), date, path, "20250307.txt", false)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if !report.RepeatedSubmission || report.Status != mapfrontv1.BatchState_BATCH_STATE_SETTLED {
		t.Errorf("report %+v", report)
	}
}

func TestSubmitRefused(t *testing.T) {
	job := &Job{Settlement: startFake(t, &refusing{})}
	_, err := job.Submit(context.Background(), date, writeFile(t, 3), "20250307.txt", false)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "already settled") {
		t.Errorf("err = %v", err)
	}
	if Retryable(err) {
		t.Errorf("a refusal is retryable")
	}
}

type refusing struct {
	mapfrontv1.UnimplementedSettlementServiceServer
}

func (refusing) SubmitBatch(stream grpc.ClientStreamingServer[mapfrontv1.SubmitBatchRequest, mapfrontv1.SubmitBatchResponse]) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	return status.Error(codes.FailedPrecondition, "a different file is already settled for 20250307")
}

func TestRunFileMissing(t *testing.T) {
	fake := &fakeSettlement{}
	now := time.Date(2025, 3, 8, 9, 0, 0, 0, time.UTC)
	job := &Job{
		Settlement: startFake(t, fake),
		Source:     fetch.Local{Dir: t.TempDir(), Pattern: fetch.DefaultPattern},
		Calendar:   calendar.Calendar{Zone: time.UTC, Offset: 30 * time.Minute, Deadline: 6 * time.Hour},
		Poll: fetch.Poll{
			Now:   func() time.Time { return now },
			Sleep: func(context.Context, time.Duration) error { t.Fatal("slept after the deadline"); return nil },
		},
	}
	report, err := job.Run(context.Background(), date, false)
	if !errors.Is(err, fetch.ErrFileMissing) {
		t.Fatalf("err = %v", err)
	}
	if report.GetStatus() != mapfrontv1.BatchState_BATCH_STATE_FILE_MISSING || len(fake.missing) != 1 || fake.missing[0].BusinessDate != "20250307" ||
		!strings.Contains(fake.missing[0].Detail, "20250307.txt") {
		t.Errorf("report %+v, MarkFileMissing calls %+v", report, fake.missing)
	}
	if CheckReport(report) == nil {
		t.Error("CheckReport passed a file-missing report")
	}
}

func TestRunFetchesAndSubmits(t *testing.T) {
	fake := &fakeSettlement{}
	path := writeFile(t, 5)
	job := &Job{
		Settlement: startFake(t, fake),
		Source:     fetch.Local{Dir: filepath.Dir(path), Pattern: fetch.DefaultPattern},
		Calendar:   calendar.Calendar{Zone: time.UTC, Offset: 30 * time.Minute, Deadline: 6 * time.Hour},
	}
	report, err := job.Run(context.Background(), date, false)
	if err != nil || report.Status != mapfrontv1.BatchState_BATCH_STATE_SETTLED || len(fake.records) != 5 {
		t.Errorf("report %+v err %v records %d", report, err, len(fake.records))
	}
	if fake.header.FileName != "20250307.txt" {
		t.Errorf("file name %q", fake.header.FileName)
	}
}

func TestRunWithoutSource(t *testing.T) {
	job := &Job{Settlement: startFake(t, &fakeSettlement{})}
	if _, err := job.Run(context.Background(), date, false); err == nil || !strings.Contains(err.Error(), "MAPFRONT_FTP_ADDR") {
		t.Errorf("err = %v", err)
	}
}

func TestStatus(t *testing.T) {
	fake := &fakeSettlement{batches: map[string]*mapfrontv1.BatchReport{"20250306": {Status: mapfrontv1.BatchState_BATCH_STATE_SETTLED}}}
	job := &Job{Settlement: startFake(t, fake)}
	if s, err := job.Status(context.Background(), date.AddDays(-1)); s != StatusSettled || err != nil {
		t.Errorf("Status = %q, %v", s, err)
	}
	if s, err := job.Status(context.Background(), date); s != "" || err != nil {
		t.Errorf("Status of a date without batch = %q, %v", s, err)
	}
}

func TestRetryable(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("x: %w", status.Error(codes.Unavailable, "down")), true},
		{status.Error(codes.DeadlineExceeded, "slow"), true},
		{status.Error(codes.Aborted, "another run of the date is in progress"), true},
		{fmt.Errorf("fetch: %w", fetch.ErrUnavailable), true},
		{status.Error(codes.FailedPrecondition, "settled"), false},
		{status.Error(codes.InvalidArgument, "bad"), false},
		{fetch.ErrAuth, false},
		{fetch.ErrFileMissing, false},
		{errors.New("plain"), false},
	}
	for _, c := range cases {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v", c.err, got)
		}
	}
}

// Issue 15: a file whose trailer agrees is sent whole; one whose trailer
// disagrees, or that lacks one when the site requires it, is not sent at
// all, and the message names both figures.
func TestSubmitTrailer(t *testing.T) {
	withTrailer := func(trailer string) string {
		path := writeFile(t, 3)
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(trailer); err != nil {
			t.Fatal(err)
		}
		return path
	}
	fake := &fakeSettlement{}
	job := &Job{Settlement: startFake(t, fake), Rules: &Rules{RequireTrailer: true, MaxBadPermille: 100}}
	if _, err := job.Submit(context.Background(), date, withTrailer("合计|3|37.02\r\n"), "20250307.txt", false); err != nil {
		t.Fatalf("agreeing trailer: %v", err)
	}
	if len(fake.records) != 3 || fake.header.GetMaxBadPermille() != 100 || fake.header.LookbackDays == nil {
		t.Fatalf("records %d header %+v", len(fake.records), fake.header)
	}
	for trailer, want := range map[string]string{
		"合计|4|37.02\r\n": "says 4 records totalling 37.02 yuan; the file has 3 records totalling 37.02 yuan",
		"":               "no trailer",
	} {
		fake := &fakeSettlement{}
		job := &Job{Settlement: startFake(t, fake), Rules: &Rules{RequireTrailer: true}}
		_, err := job.Submit(context.Background(), date, withTrailer(trailer), "20250307.txt", false)
		if !errors.Is(err, parse.ErrTrailer) || !strings.Contains(err.Error(), want) || fake.header != nil {
			t.Errorf("trailer %q: %v (header sent: %v), want one saying %q", trailer, err, fake.header != nil, want)
		}
	}
}
