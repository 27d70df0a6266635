package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/settlement/internal/calendar"
	"mapfront/settlement/internal/fetch"
	"mapfront/settlement/internal/report"
	"mapfront/settlement/internal/settle"
)

// run settles one business date and prints its report.
func (a *app) run(ctx context.Context, args []string) error {
	fs := a.newFlags("run")
	dateFlag := fs.String("date", "", "business date yyyyMMdd (default: the business date that last ended)")
	file := fs.String("file", "", "settle this local file instead of fetching")
	force := fs.Bool("force", false, "settle a different file for a date already settled (no record is applied twice)")
	a.sourceFlags(fs)
	if rest, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	if err := a.finishConfig(); err != nil {
		return err
	}

	now := a.env.Now()
	var date calendar.Date
	var err error
	switch {
	case *dateFlag != "":
		date, err = calendar.ParseDate(*dateFlag)
		if err != nil {
			return usageErr("--date: %v", err)
		}
	case *file != "":
		date, err = dateFromName(*file)
		if err != nil {
			return usageErr("%v; give --date", err)
		}
	default:
		date = a.cfg.Calendar.LastEnded(now)
	}
	// A file named for another day is most likely the wrong file: settling
	// it would confirm another day's sales under this date (SPEC section 6,
	// Dates).
	if *file != "" && *dateFlag != "" {
		if named, err := dateFromName(*file); err == nil && named != date && !*force {
			return usageErr("the file %s is named for business date %s, not %s: refused (give --force if it really is %s's file)",
				filepath.Base(*file), named, date, date)
		}
	}
	// A day still open has no complete file; settling it would confirm
	// half the day and leave the rest as missing.
	if !a.cfg.Calendar.Ended(date, now) {
		return usageErr("business date %s has not ended yet (it ends at %s)", date,
			a.cfg.Calendar.End(date).Format("2006-01-02 15:04 MST"))
	}

	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer a.close()
	job := a.job(conn)

	var rep *mapfrontv1.BatchReport
	if *file != "" {
		rep, err = job.Submit(ctx, date, *file, filepath.Base(*file), *force)
	} else {
		if job.Source == nil {
			return usageErr("no file source: set MAPFRONT_FTP_ADDR (or --ftp-addr), MAPFRONT_SETTLE_DIR (or --dir), or give --file")
		}
		rep, err = job.Run(ctx, date, *force)
	}
	if rep != nil {
		if perr := report.Batch(a.env.Stdout, rep); perr != nil {
			return perr
		}
	}
	if err != nil {
		return explain(date, err)
	}
	return settle.CheckReport(rep)
}

// job builds the pipeline from the configuration.
func (a *app) job(conn grpc.ClientConnInterface) *settle.Job {
	var progress io.Writer
	if a.env.StderrIsTerminal {
		progress = a.env.Stderr
	}
	return &settle.Job{
		Settlement: mapfrontv1.NewSettlementServiceClient(conn),
		Source:     a.cfg.Source(),
		Calendar:   a.cfg.Calendar,
		Poll: fetch.Poll{
			Interval: a.cfg.RetryInterval,
			Now:      a.env.Now,
			Sleep:    a.env.Sleep,
		},
		ChunkSize: a.cfg.ChunkSize,
		Rules: &settle.Rules{
			RequireTrailer: a.cfg.Intake.RequireTrailer,
			MaxBadPermille: a.cfg.Intake.MaxBadPermille,
			DateTolerance:  a.cfg.Intake.DateTolerance,
			LookbackDays:   a.cfg.Intake.LookbackDays,
		},
		CallTimeout:   a.cfg.CallTimeout,
		SubmitTimeout: a.cfg.SubmitTimeout,
		Progress:      progress,
		Log:           a.log,
	}
}

// explain adds what an operator should do to the errors of a settlement
// run (run, the daemon): the file source's, and the server's refusal of the
// batch (SubmitBatch), which a different file for a date already settled
// meets without --force. Other commands' calls go through explainCall.
func explain(date calendar.Date, err error) error {
	switch {
	case errors.Is(err, fetch.ErrFileMissing):
		return fmt.Errorf("the settlement file for %s did not come by the deadline; the batch is recorded as file-missing: %w", date, err)
	case errors.Is(err, fetch.ErrAuth):
		return fmt.Errorf("%w (check MAPFRONT_FTP_USER and the password)", err)
	case errors.Is(err, settle.ErrBusy):
		return fmt.Errorf("%w (another settlement run of %s is in progress; wait for it to finish, then run again)", err, date)
	case errors.Is(err, fetch.ErrIncomplete):
		return fmt.Errorf("%w (the file is there but did not become complete by the deadline; the batch is NOT recorded as missing: check with the POSP and run again)", err)
	case errors.Is(err, fetch.ErrUnavailable):
		return fmt.Errorf("%w (the file could not be fetched; the batch is NOT recorded as missing: run again when the server is reachable)", err)
	}
	switch status.Code(err) {
	case codes.FailedPrecondition, codes.AlreadyExists:
		return fmt.Errorf("%w (the server refused the batch; a different file for a date already settled needs --force)", err)
	case codes.Unavailable:
		return fmt.Errorf("%w%s", err, hintUnavailable)
	}
	return err
}

const hintUnavailable = " (is the mapfront server running at MAPFRONT_GRPC_ADDR?)"

// callError is a failed call of a command other than run: what explainCall
// says, wrapping the call's error (its gRPC status stays in the chain).
type callError struct {
	text string
	err  error
}

func (e *callError) Error() string { return e.text }
func (e *callError) Unwrap() error { return e.err }

// explainCall says why the call (as "ApproveProposal 7") failed: for a
// refusal by the server, its errcode and message (the ErrorDetail the status
// carries, SPEC section 3), else the status; with hint, if not empty, after
// it. A server that cannot be reached gets the address hint.
func explainCall(call string, err error, hint string) error {
	st, ok := status.FromError(err)
	if !ok {
		return &callError{fmt.Sprintf("%s: %v", call, err), err}
	}
	var text string
	if d := errorDetail(st); d != nil {
		text = fmt.Sprintf("%s: refused: errcode %d: %s", call, d.GetErrcode(), d.GetErrmsg())
	} else {
		text = fmt.Sprintf("%s: %s: %s", call, st.Code(), st.Message())
	}
	if st.Code() == codes.Unavailable {
		text += hintUnavailable
	}
	if hint != "" {
		text += "\n" + hint
	}
	return &callError{text, err}
}

// errorDetail is the ErrorDetail (errcode, message) of a status, or nil.
func errorDetail(st *status.Status) *mapfrontv1.ErrorDetail {
	for _, d := range st.Details() {
		if e, ok := d.(*mapfrontv1.ErrorDetail); ok {
			return e
		}
	}
	return nil
}

// dateFromName finds the business date in a file name such as
// 20250307.txt or JS_20250307_01.txt: the one yyyyMMdd date in it.
func dateFromName(path string) (calendar.Date, error) {
	base := filepath.Base(path)
	var found []calendar.Date
	for i := 0; i+8 <= len(base); i++ {
		// Only a run of exactly 8 digits, not 8 digits inside a longer number.
		if (i > 0 && isDigit(base[i-1])) || (i+8 < len(base) && isDigit(base[i+8])) {
			continue
		}
		if d, err := calendar.ParseDate(base[i : i+8]); err == nil {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0:
		return calendar.Date{}, fmt.Errorf("no yyyyMMdd date in the file name %q", base)
	default:
		return calendar.Date{}, fmt.Errorf("more than one date in the file name %q", base)
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// dayRunner adapts the pipeline to the daemon.
type dayRunner struct {
	job *settle.Job
	app *app
}

func (r dayRunner) Status(ctx context.Context, date calendar.Date) (string, error) {
	return r.job.Status(ctx, date)
}

func (r dayRunner) Settle(ctx context.Context, date calendar.Date) error {
	rep, err := r.job.Run(ctx, date, false)
	if rep != nil {
		// The report goes to stdout (the journal under systemd) as the
		// command prints it.
		fmt.Fprintf(r.app.env.Stdout, "--- settlement %s at %s ---\n", date, r.app.env.Now().In(r.app.cfg.Calendar.Zone).Format(time.DateTime))
		report.Batch(r.app.env.Stdout, rep) //nolint:errcheck // the log has the outcome too
	}
	if err != nil {
		return err
	}
	return settle.CheckReport(rep)
}

func (r dayRunner) RunDaily(ctx context.Context) error {
	resp, err := r.job.RunDaily(ctx)
	if err != nil {
		return err
	}
	r.app.log.Info("daily work done", "installments_released", resp.GetInstallmentsReleased(),
		"incomplete_flagged", resp.GetIncompleteFlagged())
	return nil
}
