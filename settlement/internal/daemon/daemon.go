// Package daemon runs the settlement every business day (SPEC sections 4
// and 6): at the cutover that ends a business date plus the offset, it
// settles that date, waiting for a missing file up to the deadline, then
// asks the server for the day's time-driven work (RunDaily).
//
// The daemon keeps no state of its own. On start it asks the server for the
// batches of the business dates that are due, from the newest back to the
// last one final (settled or file-missing), and settles each date after that
// one, oldest first; while it runs it settles each date at its job time, and
// after a wall clock that jumped, every date it has not handled; when no
// status can be read at all on start (the server not up yet), it looks again
// after the retry interval rather than guess. So a restart, a crash or a
// late start never skips a day after the newest final one within the
// catch-up horizon (Daemon.CatchUpDays, default 7 business dates) and never
// settles one twice. A date missed beyond the horizon is not settled by the
// daemon: it is logged as an error, one line per date, to be settled with
// `settlement run --date`. Dates left behind a final one (an operator settled
// the newest missed date by hand first) are not looked at: settle them with
// `settlement run --date` too.
package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"mapfront/settlement/internal/calendar"
	"mapfront/settlement/internal/fetch"
)

// Runner does the work of one business date; the settle package's Job is
// the real one.
type Runner interface {
	// Status returns the status of date's batch ("settled", "file_missing",
	// "running"), or "" when the server has none.
	// Errors: the server's, when it cannot answer.
	Status(ctx context.Context, date calendar.Date) (string, error)
	// Settle fetches, submits and checks the batch of date.
	// Errors: one wrapping fetch.ErrFileMissing once the file was recorded
	// missing; any other failure, which Retryable may call transient.
	Settle(ctx context.Context, date calendar.Date) error
	// RunDaily asks for the day's time-driven work.
	// Errors: the server's.
	RunDaily(ctx context.Context) error
}

// Daemon is the scheduler. Calendar, Runner, Now and Sleep are required.
type Daemon struct {
	Calendar calendar.Calendar
	Runner   Runner
	// Now and Sleep are the clock; tests make them instant.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// RetryInterval is the wait before trying a transient failure again,
	// until the date's deadline (default 5m).
	RetryInterval time.Duration
	// Retryable says which failures are transient (settle.Retryable);
	// nil retries nothing.
	Retryable func(error) bool
	// CatchUpDays is the catch-up horizon: how many business dates, the
	// newest one due among them, the daemon settles when it finds them
	// missed (default DefaultCatchUpDays; 1 settles only the newest).
	CatchUpDays int
	Log         *slog.Logger
}

// DefaultCatchUpDays is the default catch-up horizon: a week of business
// dates.
const DefaultCatchUpDays = 7

// lookBeyond is how many business dates beyond the catch-up horizon the
// daemon looks back on start for the last final batch, to name each date it
// leaves unsettled. Finding none there, it takes itself for a new
// installation (see tick).
const lookBeyond = 31

// maxSleep bounds one wait, so that a wall clock that jumps (a suspended
// machine, an NTP step) delays a job by at most this much.
const maxSleep = time.Minute

// NeedsSettlement reports whether a batch in status still needs a run. A
// settled batch or one recorded as file-missing is final; a "running" batch
// may be the remains of a crashed run, and the server refuses a second run
// of a date while the first is truly in progress.
func NeedsSettlement(status string) bool {
	return status != "settled" && status != "file_missing"
}

// LastDue is the newest business date whose job time has come at now: the
// business date that last ended once its job time has come, else the one
// before it. (No later date can be due, and the one before is: the offset
// is under a day.)
func LastDue(cal calendar.Calendar, now time.Time) calendar.Date {
	last := cal.LastEnded(now)
	if now.Before(cal.JobTime(last)) {
		return last.AddDays(-1)
	}
	return last
}

// Run schedules until ctx ends, and then returns ctx's error.
func (d *Daemon) Run(ctx context.Context) error {
	// through: every date up to it is final or was handled by this process
	// (settled, tried, or logged as beyond the horizon); nil on start.
	var through *calendar.Date
	scheduled := false
	for {
		due := LastDue(d.Calendar, d.Now())
		if through == nil || through.Compare(due) < 0 {
			done := d.tick(ctx, due, through, scheduled)
			if err := ctx.Err(); err != nil {
				return err
			}
			if !done {
				// Not one batch status could be read: the dates to
				// catch up are not known yet; look again shortly.
				if err := d.Sleep(ctx, d.retryInterval()); err != nil {
					return err
				}
				continue
			}
			through = &due
		}
		next := due.AddDays(1)
		at := d.Calendar.JobTime(next)
		d.log().Info("next settlement", "business_date", next.String(), "at", at)
		if err := d.sleepUntil(ctx, at); err != nil {
			return err
		}
		scheduled = true
	}
}

// tick settles the dates after through up to due, due the newest date whose
// job time has come (at a scheduled tick, the date whose job time it is).
//
// The dates to settle are those not final back from due to the newest date
// that is final, or to through: ascending, within the catch-up horizon; one
// that is beyond it is logged as an error and left for `settlement run`. A
// date whose status cannot be read is settled anyway (the server refuses a
// second settlement of a date, so settling without knowing is safe, and
// skipping could lose the day). A missing file is waited for up to the
// date's deadline (Runner.Settle), so a date long past its deadline is tried
// once and recorded as file-missing, and later dates go on.
//
// It reports whether it is done with due; not when no batch status at all
// could be read on start (the server unreachable), which says nothing about
// the missed dates: Run looks again after the retry interval.
//
// On start with no final batch in the horizon and lookBeyond dates before
// it (statuses read, none final), the daemon takes itself for a new
// installation: it settles only the
// date that last ended (once its job time has come), as it would have the
// first night, and warns.
//
// The daily work runs once after the dates settled, or at a scheduled tick
// whose date was settled by hand; on start with nothing to settle it is left
// alone, since the run that settled the date also did its daily work.
func (d *Daemon) tick(ctx context.Context, due calendar.Date, through *calendar.Date, scheduled bool) (done bool) {
	log := d.log()
	horizon := d.catchUpDays()
	oldest := due.AddDays(-(horizon - 1))
	window := horizon + lookBeyond
	var open []calendar.Date // not final, newest first
	anchored := false
	read := 0 // statuses read
	for i := 0; i < window; i++ {
		date := due.AddDays(-i)
		if through != nil && through.Compare(date) >= 0 {
			anchored = true
			break
		}
		status, err := d.status(ctx, date)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			read++
		}
		if err != nil {
			log.Error("cannot read the batch status; taking it as not settled", "business_date", date.String(), "err", err)
		} else if !NeedsSettlement(status) {
			if i == 0 {
				log.Info("business date already done", "business_date", date.String(), "status", status)
			}
			anchored = true
			break
		}
		open = append(open, date)
	}
	switch {
	case anchored:
	case through == nil && read == 0:
		// Every read failed (the server not up yet, a certificate
		// problem): that is no sign of a new installation, and taking it
		// for one would skip the missed dates for good.
		log.Error("cannot read any batch status; the dates to catch up are not known: will look again",
			"retry_in", d.retryInterval())
		return false
	case through != nil:
		// The wall clock jumped by more than the window: the dates between
		// through and the window were never handled.
		log.Error("business dates not settled by the daemon: beyond the catch-up horizon; settle each with `settlement run --date`",
			"from", through.AddDays(1).String(), "to", due.AddDays(-window).String(), "catch_up_days", horizon)
	default:
		log.Warn("no settled or file-missing batch found back to the oldest date looked at: taken for a new installation, "+
			"only the business date that last ended is settled; if the daemon was down longer, settle the missed dates with `settlement run --date`",
			"oldest_looked_at", due.AddDays(-(window - 1)).String(), "catch_up_days", horizon)
		if due == d.Calendar.LastEnded(d.Now()) {
			open = []calendar.Date{due}
		} else {
			open = nil
		}
	}
	settled := 0
	for i := len(open) - 1; i >= 0; i-- {
		date := open[i]
		if date.Compare(oldest) < 0 {
			log.Error("business date not settled by the daemon: beyond the catch-up horizon; settle it with `settlement run --date`",
				"business_date", date.String(), "catch_up_days", horizon)
			continue
		}
		catchUp := !scheduled || date != due
		log.Info("settling", "business_date", date.String(), "catch_up", catchUp)
		d.settle(ctx, date)
		if ctx.Err() != nil {
			return false
		}
		settled++
	}
	if settled > 0 || scheduled {
		d.runDaily(ctx, due)
	}
	return true
}

func (d *Daemon) retryInterval() time.Duration {
	if d.RetryInterval <= 0 {
		return fetch.DefaultInterval
	}
	return d.RetryInterval
}

func (d *Daemon) catchUpDays() int {
	if d.CatchUpDays <= 0 {
		return DefaultCatchUpDays
	}
	return d.CatchUpDays
}

func (d *Daemon) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

// sleepUntil waits for the wall clock to reach at, in steps of maxSleep.
func (d *Daemon) sleepUntil(ctx context.Context, at time.Time) error {
	for {
		wait := at.Sub(d.Now())
		if wait <= 0 {
			return nil
		}
		if err := d.Sleep(ctx, min(wait, maxSleep)); err != nil {
			return err
		}
	}
}

// status reads the batch status, retrying transient failures until the
// date's deadline.
func (d *Daemon) status(ctx context.Context, date calendar.Date) (string, error) {
	var status string
	err := d.retry(ctx, date, func() error {
		var err error
		status, err = d.Runner.Status(ctx, date)
		return err
	})
	return status, err
}

// settle settles date, retrying transient failures until its deadline.
// The daily work is the caller's: the installments due do not wait for one
// file.
func (d *Daemon) settle(ctx context.Context, date calendar.Date) {
	log := d.log()
	err := d.retry(ctx, date, func() error { return d.Runner.Settle(ctx, date) })
	switch {
	case err == nil:
		log.Info("business date settled", "business_date", date.String())
	case errors.Is(err, fetch.ErrFileMissing):
		log.Error("settlement file missing; batch recorded as file-missing", "business_date", date.String(), "err", err)
	case ctx.Err() != nil:
	default:
		log.Error("settlement failed; settle it with `settlement run`", "business_date", date.String(), "err", err)
	}
}

func (d *Daemon) runDaily(ctx context.Context, date calendar.Date) {
	if err := d.retry(ctx, date, func() error { return d.Runner.RunDaily(ctx) }); err != nil && ctx.Err() == nil {
		d.log().Error("RunDaily failed", "business_date", date.String(), "err", err)
	}
}

// retry calls fn until it succeeds, fails for good, or the date's deadline
// leaves no room for another try.
func (d *Daemon) retry(ctx context.Context, date calendar.Date, fn func() error) error {
	interval := d.retryInterval()
	deadline := d.Calendar.GiveUpTime(date)
	for {
		err := fn()
		if err == nil || ctx.Err() != nil || d.Retryable == nil || !d.Retryable(err) {
			return err
		}
		if d.Now().Add(interval).After(deadline) {
			return err
		}
		d.log().Warn("transient failure; will try again", "business_date", date.String(), "retry_in", interval, "err", err)
		if serr := d.Sleep(ctx, interval); serr != nil {
			return errors.Join(err, serr)
		}
	}
}
