// Package daemon runs the settlement every business day (SPEC sections 4
// and 6): at the cutover that ends a business date plus the offset, it
// settles that date, waiting for a missing file up to the deadline, then
// asks the server for the day's time-driven work (RunDaily).
//
// The daemon keeps no state of its own. On start it asks the server whether
// the business date that last ended is settled, and catches up if not, so a
// restart, a crash or a late start never skips a day and never settles one
// twice.
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
	Log       *slog.Logger
}

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

// Start decides what the daemon does first at now. The business date that
// last ended is due once its job time has come: then catchUp is true and
// date is that business date, to be settled at once if the server has no
// final batch for it. Otherwise date is the next date to settle at its job
// time. (No earlier date can be due: the offset is under a day.)
func Start(cal calendar.Calendar, now time.Time) (date calendar.Date, catchUp bool) {
	last := cal.LastEnded(now)
	if now.Before(cal.JobTime(last)) {
		return last, false
	}
	return last, true
}

// Run schedules until ctx ends, and then returns ctx's error.
func (d *Daemon) Run(ctx context.Context) error {
	date, catchUp := Start(d.Calendar, d.Now())
	if catchUp {
		d.day(ctx, date, true)
		date = date.AddDays(1)
	}
	for {
		at := d.Calendar.JobTime(date)
		d.log().Info("next settlement", "business_date", date.String(), "at", at)
		if err := d.sleepUntil(ctx, at); err != nil {
			return err
		}
		d.day(ctx, date, false)
		if err := ctx.Err(); err != nil {
			return err
		}
		date = date.AddDays(1)
	}
}

// day does the work of one business date. A date the server already has
// as final is not settled again; on a catch-up it is left alone altogether,
// since the run that settled it also did its daily work.
func (d *Daemon) day(ctx context.Context, date calendar.Date, catchUp bool) {
	log := d.log().With("business_date", date.String(), "catch_up", catchUp)
	status, err := d.status(ctx, date)
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		// The server refuses a second settlement of a date, so settling
		// without knowing is safe, and skipping could lose the day.
		log.Error("cannot read the batch status; settling anyway", "err", err)
		d.runDay(ctx, date)
	case NeedsSettlement(status):
		log.Info("settling", "status", status)
		d.runDay(ctx, date)
	case catchUp:
		log.Info("last business date already done", "status", status)
	default:
		// Settled by hand before the job time: only the daily work.
		log.Info("business date already done", "status", status)
		d.runDaily(ctx, date)
	}
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

// runDay settles date, retrying transient failures until its deadline,
// then runs the daily work whatever the outcome: the installments due do
// not wait for one file.
func (d *Daemon) runDay(ctx context.Context, date calendar.Date) {
	log := d.log()
	err := d.retry(ctx, date, func() error { return d.Runner.Settle(ctx, date) })
	switch {
	case err == nil:
		log.Info("business date settled", "business_date", date.String())
	case errors.Is(err, fetch.ErrFileMissing):
		log.Error("settlement file missing; batch recorded as file-missing", "business_date", date.String(), "err", err)
	case ctx.Err() != nil:
		return
	default:
		log.Error("settlement failed; settle it with `settlement run`", "business_date", date.String(), "err", err)
	}
	d.runDaily(ctx, date)
}

func (d *Daemon) runDaily(ctx context.Context, date calendar.Date) {
	if err := d.retry(ctx, date, func() error { return d.Runner.RunDaily(ctx) }); err != nil && ctx.Err() == nil {
		d.log().Error("RunDaily failed", "business_date", date.String(), "err", err)
	}
}

// retry calls fn until it succeeds, fails for good, or the date's deadline
// leaves no room for another try.
func (d *Daemon) retry(ctx context.Context, date calendar.Date, fn func() error) error {
	interval := d.RetryInterval
	if interval <= 0 {
		interval = fetch.DefaultInterval
	}
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
