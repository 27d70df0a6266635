package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"mapfront/settlement/internal/calendar"
	"mapfront/settlement/internal/fetch"
)

func shanghaiCal(t *testing.T, cutover time.Duration) calendar.Calendar {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return calendar.Calendar{Zone: loc, Cutover: cutover, Offset: 30 * time.Minute, Deadline: 6 * time.Hour}
}

func TestLastDue(t *testing.T) {
	cal := shanghaiCal(t, 0)
	at := func(m time.Month, d, h, min int) time.Time { return time.Date(2025, m, d, h, min, 0, 0, cal.Zone) }
	cases := []struct {
		now time.Time
		due string
	}{
		// Before the job time of the day that just ended: the day before.
		{at(3, 8, 0, 10), "20250306"},
		{at(3, 8, 0, 29), "20250306"},
		// At or after it: the day that just ended.
		{at(3, 8, 0, 30), "20250307"},
		{at(3, 8, 9, 0), "20250307"},
		{at(3, 8, 23, 59), "20250307"},
		// Month and year ends.
		{at(3, 1, 3, 0), "20250228"},
		{at(3, 1, 0, 10), "20250227"},
		{time.Date(2026, 1, 1, 0, 5, 0, 0, cal.Zone), "20251230"},
		{time.Date(2026, 1, 1, 0, 30, 0, 0, cal.Zone), "20251231"},
	}
	for _, c := range cases {
		due := LastDue(cal, c.now)
		if due.String() != c.due {
			t.Errorf("LastDue(%v) = %s, want %s", c.now, due, c.due)
			continue
		}
		// The next date's job time is still to come.
		if next := cal.JobTime(due.AddDays(1)); !next.After(c.now) || cal.JobTime(due).After(c.now) {
			t.Errorf("LastDue(%v) = %s: its job time %v, the next one %v", c.now, due, cal.JobTime(due), next)
		}
	}

	// With a 02:00 cutover, 01:00 still belongs to the day before.
	cal2 := shanghaiCal(t, 2*time.Hour)
	if due := LastDue(cal2, at(3, 8, 1, 0)); due.String() != "20250306" {
		t.Errorf("02:00 cutover: %s", due)
	}
	if due := LastDue(cal2, at(3, 8, 2, 30)); due.String() != "20250307" {
		t.Errorf("02:00 cutover, at the job time: %s", due)
	}
}

func TestNeedsSettlement(t *testing.T) {
	for status, want := range map[string]bool{"": true, "running": true, "settled": false, "file_missing": false} {
		if NeedsSettlement(status) != want {
			t.Errorf("NeedsSettlement(%q) != %v", status, want)
		}
	}
}

// fakeRunner records what the daemon asks, at what (fake) time.
type fakeRunner struct {
	mu       sync.Mutex
	clock    *fakeClock
	statuses map[string]string
	// settleErrs are returned by successive Settle calls, then nil.
	settleErrs []error
	events     []string
	// stopAfter cancels the daemon after this many RunDaily calls.
	stopAfter int
	cancel    context.CancelFunc
	dailies   int
	// jumpAfterDaily moves the clock this far after the first RunDaily.
	jumpAfterDaily time.Duration
}

func (r *fakeRunner) note(format string, args ...any) {
	r.events = append(r.events, r.clock.Now().Format("01-02 15:04")+" "+fmt.Sprintf(format, args...))
}

func (r *fakeRunner) Status(_ context.Context, d calendar.Date) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note("status %s", d)
	return r.statuses[d.String()], nil
}

func (r *fakeRunner) Settle(_ context.Context, d calendar.Date) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note("settle %s", d)
	if len(r.settleErrs) > 0 {
		err := r.settleErrs[0]
		r.settleErrs = r.settleErrs[1:]
		if errors.Is(err, fetch.ErrFileMissing) {
			// As settle.Job does: the batch is recorded as file-missing.
			r.statuses[d.String()] = "file_missing"
		}
		return err
	}
	r.statuses[d.String()] = "settled"
	return nil
}

func (r *fakeRunner) RunDaily(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.note("daily")
	r.dailies++
	if r.jumpAfterDaily != 0 {
		// The machine is suspended: the wall clock jumps.
		r.clock.mu.Lock()
		r.clock.now = r.clock.now.Add(r.jumpAfterDaily)
		r.clock.mu.Unlock()
		r.jumpAfterDaily = 0
	}
	if r.dailies >= r.stopAfter {
		r.cancel()
	}
	return nil
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return nil
}

var errUnavailable = errors.New("server unavailable")

// runDaemon runs a daemon on the fake clock from start until r has done its
// daily work days times, and returns r's events; opts adjust the daemon.
func runDaemon(t *testing.T, cal calendar.Calendar, start time.Time, r *fakeRunner, days int, opts ...func(*Daemon)) string {
	t.Helper()
	clock := &fakeClock{now: start}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.clock, r.cancel, r.stopAfter = clock, cancel, days
	if r.statuses == nil {
		r.statuses = map[string]string{}
	}
	d := &Daemon{
		Calendar:      cal,
		Runner:        r,
		Now:           clock.Now,
		Sleep:         clock.Sleep,
		RetryInterval: 5 * time.Minute,
		Retryable:     func(err error) bool { return errors.Is(err, errUnavailable) },
	}
	for _, o := range opts {
		o(d)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop")
	}
	return strings.Join(r.events, "\n")
}

// The daemon's state is the server's: each test says which business dates
// are settled when it starts. Most start with the day before the first
// scheduled one settled, as on any night but the first.

func TestDaemonSchedulesEachDay(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 0, 10, 0, 0, cal.Zone)
	got := runDaemon(t, cal, start, &fakeRunner{statuses: map[string]string{"20250306": "settled"}}, 3)
	want := strings.Join([]string{
		// On start: the last date due (20250306) is done.
		"03-08 00:10 status 20250306",
		"03-08 00:30 status 20250307",
		"03-08 00:30 settle 20250307",
		"03-08 00:30 daily",
		"03-09 00:30 status 20250308",
		"03-09 00:30 settle 20250308",
		"03-09 00:30 daily",
		"03-10 00:30 status 20250309",
		"03-10 00:30 settle 20250309",
		"03-10 00:30 daily",
	}, "\n")
	if got != want {
		t.Errorf("events\n%s\nwant\n%s", got, want)
	}
}

func TestDaemonCatchesUp(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 9, 0, 0, 0, cal.Zone)
	for _, status := range []string{"", "running", "failed", "rejected"} {
		got := runDaemon(t, cal, start, &fakeRunner{statuses: map[string]string{"20250306": "settled", "20250307": status}}, 2)
		want := strings.Join([]string{
			"03-08 09:00 status 20250307",
			"03-08 09:00 status 20250306",
			"03-08 09:00 settle 20250307",
			"03-08 09:00 daily",
			"03-09 00:30 status 20250308",
			"03-09 00:30 settle 20250308",
			"03-09 00:30 daily",
		}, "\n")
		if got != want {
			t.Errorf("status %q: events\n%s\nwant\n%s", status, got, want)
		}
	}
}

// Down from the evening of 03-05 to 03-08 09:00, with 20250304 the last
// date settled: 20250305, 20250306 and 20250307 are settled on start, oldest
// first, and the daily work runs once after them. A date settled by hand in
// between (20250306 here, in the second case) is left alone.
func TestDaemonCatchesUpEveryMissedDate(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 9, 0, 0, 0, cal.Zone)
	got := runDaemon(t, cal, start, &fakeRunner{statuses: map[string]string{"20250304": "settled"}}, 2)
	want := strings.Join([]string{
		"03-08 09:00 status 20250307",
		"03-08 09:00 status 20250306",
		"03-08 09:00 status 20250305",
		"03-08 09:00 status 20250304",
		"03-08 09:00 settle 20250305",
		"03-08 09:00 settle 20250306",
		"03-08 09:00 settle 20250307",
		"03-08 09:00 daily",
		"03-09 00:30 status 20250308",
		"03-09 00:30 settle 20250308",
		"03-09 00:30 daily",
	}, "\n")
	if got != want {
		t.Errorf("events\n%s\nwant\n%s", got, want)
	}

	// Started before 03-08's job time: the dates missed up to 20250306 are
	// caught up on start; 20250307 waits for its job time.
	start = time.Date(2025, 3, 8, 0, 10, 0, 0, cal.Zone)
	got = runDaemon(t, cal, start, &fakeRunner{statuses: map[string]string{"20250304": "settled"}}, 2)
	want = strings.Join([]string{
		"03-08 00:10 status 20250306",
		"03-08 00:10 status 20250305",
		"03-08 00:10 status 20250304",
		"03-08 00:10 settle 20250305",
		"03-08 00:10 settle 20250306",
		"03-08 00:10 daily",
		"03-08 00:30 status 20250307",
		"03-08 00:30 settle 20250307",
		"03-08 00:30 daily",
	}, "\n")
	if got != want {
		t.Errorf("before the job time: events\n%s\nwant\n%s", got, want)
	}
}

func TestDaemonNoCatchUpWhenDone(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 9, 0, 0, 0, cal.Zone)
	for _, status := range []string{"settled", "file_missing"} {
		got := runDaemon(t, cal, start, &fakeRunner{statuses: map[string]string{"20250307": status}}, 1)
		want := strings.Join([]string{
			"03-08 09:00 status 20250307",
			"03-09 00:30 status 20250308",
			"03-09 00:30 settle 20250308",
			"03-09 00:30 daily",
		}, "\n")
		if got != want {
			t.Errorf("status %q: events\n%s\nwant\n%s", status, got, want)
		}
	}
}

func TestDaemonSettledByHandOnlyDaily(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 0, 10, 0, 0, cal.Zone)
	got := runDaemon(t, cal, start, &fakeRunner{statuses: map[string]string{"20250306": "settled", "20250307": "settled"}}, 1)
	want := "03-08 00:10 status 20250306\n03-08 00:30 status 20250307\n03-08 00:30 daily"
	if got != want {
		t.Errorf("events\n%s\nwant\n%s", got, want)
	}
}

func TestDaemonRetriesTransientFailures(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 0, 10, 0, 0, cal.Zone)
	r := &fakeRunner{statuses: map[string]string{"20250306": "settled"},
		settleErrs: []error{errUnavailable, fmt.Errorf("submit: %w", errUnavailable)}}
	got := runDaemon(t, cal, start, r, 1)
	want := strings.Join([]string{
		"03-08 00:10 status 20250306",
		"03-08 00:30 status 20250307",
		"03-08 00:30 settle 20250307",
		"03-08 00:35 settle 20250307",
		"03-08 00:40 settle 20250307",
		"03-08 00:40 daily",
	}, "\n")
	if got != want {
		t.Errorf("events\n%s\nwant\n%s", got, want)
	}
}

func TestDaemonGivesUpAtDeadline(t *testing.T) {
	cal := shanghaiCal(t, 0)
	cal.Deadline = 45 * time.Minute // give up at 00:45
	start := time.Date(2025, 3, 8, 0, 10, 0, 0, cal.Zone)
	errs := make([]error, 100)
	for i := range errs {
		errs[i] = errUnavailable
	}
	got := runDaemon(t, cal, start, &fakeRunner{statuses: map[string]string{"20250306": "settled"}, settleErrs: errs}, 1)
	want := strings.Join([]string{
		"03-08 00:10 status 20250306",
		"03-08 00:30 status 20250307",
		"03-08 00:30 settle 20250307",
		"03-08 00:35 settle 20250307",
		"03-08 00:40 settle 20250307",
		"03-08 00:45 settle 20250307",
		"03-08 00:45 daily",
	}, "\n")
	if got != want {
		t.Errorf("events\n%s\nwant\n%s", got, want)
	}
}

func TestDaemonDoesNotRetryPermanentOrMissing(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 0, 10, 0, 0, cal.Zone)
	for _, err := range []error{fmt.Errorf("x: %w", fetch.ErrFileMissing), errors.New("refused")} {
		got := runDaemon(t, cal, start, &fakeRunner{statuses: map[string]string{"20250306": "settled"}, settleErrs: []error{err}}, 2)
		want := strings.Join([]string{
			"03-08 00:10 status 20250306",
			"03-08 00:30 status 20250307",
			"03-08 00:30 settle 20250307",
			"03-08 00:30 daily",
			"03-09 00:30 status 20250308",
			"03-09 00:30 settle 20250308",
			"03-09 00:30 daily",
		}, "\n")
		if got != want {
			t.Errorf("%v: events\n%s\nwant\n%s", err, got, want)
		}
	}
}

// logTo makes the daemon log to buf, as text.
func logTo(buf *bytes.Buffer) func(*Daemon) {
	return func(d *Daemon) { d.Log = slog.New(slog.NewTextHandler(buf, nil)) }
}

// Down for a week with a catch-up horizon of 3 business dates: the three
// newest dates due are settled; each unsettled date before them, back to
// the last one settled, is logged as an error and not settled.
func TestDaemonCatchUpHorizon(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 9, 0, 0, 0, cal.Zone)
	var logs bytes.Buffer
	got := runDaemon(t, cal, start, &fakeRunner{statuses: map[string]string{"20250301": "settled", "20250303": "rejected"}}, 1,
		func(d *Daemon) { d.CatchUpDays = 3 }, logTo(&logs))
	want := strings.Join([]string{
		"03-08 09:00 status 20250307",
		"03-08 09:00 status 20250306",
		"03-08 09:00 status 20250305",
		"03-08 09:00 status 20250304",
		"03-08 09:00 status 20250303",
		"03-08 09:00 status 20250302",
		"03-08 09:00 status 20250301",
		"03-08 09:00 settle 20250305",
		"03-08 09:00 settle 20250306",
		"03-08 09:00 settle 20250307",
		"03-08 09:00 daily",
	}, "\n")
	if got != want {
		t.Errorf("events\n%s\nwant\n%s", got, want)
	}
	for _, date := range []string{"20250302", "20250303", "20250304"} {
		if !strings.Contains(logs.String(), "level=ERROR msg=\"business date not settled by the daemon: beyond the catch-up horizon; settle it with `settlement run --date`\" business_date="+date+" catch_up_days=3") {
			t.Errorf("no error logged for %s, skipped beyond the horizon:\n%s", date, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "beyond the catch-up horizon"); n != 3 {
		t.Errorf("%d dates logged as beyond the horizon, want 3:\n%s", n, logs.String())
	}
}

// A missed date whose file never came is tried once (its deadline is long
// past) and recorded as file-missing by the runner; so is a date whose try
// fails with the server unreachable (not retried past its deadline). Neither
// stops the later dates, and neither is tried again at the next job time.
func TestDaemonCatchUpGoesOnAfterAFailedDate(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 9, 0, 0, 0, cal.Zone)
	for _, err := range []error{fmt.Errorf("x: %w", fetch.ErrFileMissing), errUnavailable} {
		r := &fakeRunner{statuses: map[string]string{"20250304": "settled"}, settleErrs: []error{err}}
		got := runDaemon(t, cal, start, r, 2)
		want := strings.Join([]string{
			"03-08 09:00 status 20250307",
			"03-08 09:00 status 20250306",
			"03-08 09:00 status 20250305",
			"03-08 09:00 status 20250304",
			"03-08 09:00 settle 20250305",
			"03-08 09:00 settle 20250306",
			"03-08 09:00 settle 20250307",
			"03-08 09:00 daily",
			"03-09 00:30 status 20250308",
			"03-09 00:30 settle 20250308",
			"03-09 00:30 daily",
		}, "\n")
		if got != want {
			t.Errorf("%v: events\n%s\nwant\n%s", err, got, want)
		}
	}
}

// The wall clock jumps three days while the daemon runs (a suspended
// machine): at the next wake-up every date it has not handled is settled,
// oldest first, and the daily work runs once.
func TestDaemonCatchesUpAfterClockJump(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 0, 10, 0, 0, cal.Zone)
	r := &fakeRunner{statuses: map[string]string{"20250306": "settled"}, jumpAfterDaily: 72 * time.Hour}
	got := runDaemon(t, cal, start, r, 3)
	want := strings.Join([]string{
		"03-08 00:10 status 20250306",
		"03-08 00:30 status 20250307",
		"03-08 00:30 settle 20250307",
		"03-08 00:30 daily",
		"03-11 00:30 status 20250310",
		"03-11 00:30 status 20250309",
		"03-11 00:30 status 20250308",
		"03-11 00:30 settle 20250308",
		"03-11 00:30 settle 20250309",
		"03-11 00:30 settle 20250310",
		"03-11 00:30 daily",
		"03-12 00:30 status 20250311",
		"03-12 00:30 settle 20250311",
		"03-12 00:30 daily",
	}, "\n")
	if got != want {
		t.Errorf("events\n%s\nwant\n%s", got, want)
	}
}

// No batch final anywhere it looks (a new installation): only the date that
// last ended is settled, as on the first night, with a warning; before that
// date's job time, nothing until it.
func TestDaemonNewInstallation(t *testing.T) {
	cal := shanghaiCal(t, 0)
	var logs bytes.Buffer
	got := runDaemon(t, cal, time.Date(2025, 3, 8, 9, 0, 0, 0, cal.Zone), &fakeRunner{}, 1, logTo(&logs))
	lines := strings.Split(got, "\n")
	if n := strings.Count(got, "09:00 status "); n != DefaultCatchUpDays+lookBeyond {
		t.Errorf("%d statuses asked, want %d", n, DefaultCatchUpDays+lookBeyond)
	}
	if tail := strings.Join(lines[len(lines)-2:], "\n"); strings.Count(got, "settle") != 1 ||
		tail != "03-08 09:00 settle 20250307\n03-08 09:00 daily" {
		t.Errorf("events\n%s\nwant only 20250307 settled", got)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "new installation") {
		t.Errorf("no warning:\n%s", logs.String())
	}

	got = runDaemon(t, cal, time.Date(2025, 3, 8, 0, 10, 0, 0, cal.Zone), &fakeRunner{}, 1)
	if i := strings.Index(got, "settle"); i < 0 || !strings.HasPrefix(got[i-12:], "03-08 00:30 settle 20250307\n03-08 00:30 daily") ||
		strings.Count(got, "settle") != 1 {
		t.Errorf("before the job time: events\n%s\nwant 20250307 settled at 00:30 only", got)
	}
}

// statusDownRunner is fakeRunner with the server not yet listening for the
// first down Status calls.
type statusDownRunner struct {
	*fakeRunner
	down int
}

func (r *statusDownRunner) Status(ctx context.Context, d calendar.Date) (string, error) {
	r.mu.Lock()
	if r.down > 0 {
		r.down--
		r.note("status %s unavailable", d)
		r.mu.Unlock()
		return "", errUnavailable
	}
	r.mu.Unlock()
	return r.fakeRunner.Status(ctx, d)
}

// Started after a long stop, a moment before the server listens: every
// status read of the start fails (past each date's deadline, so none is
// retried). That says nothing about the missed dates: the daemon looks
// again after the retry interval and catches them all up, where it took
// itself for a new installation and skipped them for good (found by a
// review).
func TestDaemonStartWhileServerDown(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 9, 0, 0, 0, cal.Zone)
	fr := &fakeRunner{statuses: map[string]string{"20250304": "settled"}}
	got := runDaemon(t, cal, start, fr, 1, func(d *Daemon) {
		d.Runner = &statusDownRunner{fakeRunner: fr, down: DefaultCatchUpDays + lookBeyond}
	})
	for _, want := range []string{"03-08 09:05 settle 20250305", "03-08 09:05 settle 20250306", "03-08 09:05 settle 20250307"} {
		if !strings.Contains(got, want) {
			t.Errorf("events lack %q:\n%s", want, got)
		}
	}
}
