package daemon

import (
	"context"
	"errors"
	"fmt"
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

func TestStart(t *testing.T) {
	cal := shanghaiCal(t, 0)
	at := func(m time.Month, d, h, min int) time.Time { return time.Date(2025, m, d, h, min, 0, 0, cal.Zone) }
	cases := []struct {
		now     time.Time
		date    string
		catchUp bool
		next    time.Time // JobTime of the first scheduled date
	}{
		// Before the job time of the day that just ended: wait for it.
		{at(3, 8, 0, 10), "20250307", false, at(3, 8, 0, 30)},
		{at(3, 8, 0, 29), "20250307", false, at(3, 8, 0, 30)},
		// At or after it: catch up that day now, then schedule the next.
		{at(3, 8, 0, 30), "20250307", true, at(3, 9, 0, 30)},
		{at(3, 8, 9, 0), "20250307", true, at(3, 9, 0, 30)},
		{at(3, 8, 23, 59), "20250307", true, at(3, 9, 0, 30)},
		// Month and year ends.
		{at(3, 1, 3, 0), "20250228", true, at(3, 2, 0, 30)},
		{time.Date(2026, 1, 1, 0, 5, 0, 0, cal.Zone), "20251231", false, time.Date(2026, 1, 1, 0, 30, 0, 0, cal.Zone)},
	}
	for _, c := range cases {
		date, catchUp := Start(cal, c.now)
		if date.String() != c.date || catchUp != c.catchUp {
			t.Errorf("Start(%v) = %s, %v; want %s, %v", c.now, date, catchUp, c.date, c.catchUp)
			continue
		}
		next := date
		if catchUp {
			next = date.AddDays(1)
		}
		if got := cal.JobTime(next); !got.Equal(c.next) {
			t.Errorf("Start(%v): next job at %v, want %v", c.now, got, c.next)
		}
	}

	// With a 02:00 cutover, 01:00 still belongs to the day before.
	cal2 := shanghaiCal(t, 2*time.Hour)
	date, catchUp := Start(cal2, at(3, 8, 1, 0))
	if date.String() != "20250306" || !catchUp || !cal2.JobTime(date.AddDays(1)).Equal(at(3, 8, 2, 30)) {
		t.Errorf("02:00 cutover: %s %v", date, catchUp)
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

func runDaemon(t *testing.T, cal calendar.Calendar, start time.Time, r *fakeRunner, days int) string {
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

func TestDaemonSchedulesEachDay(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 0, 10, 0, 0, cal.Zone)
	got := runDaemon(t, cal, start, &fakeRunner{}, 3)
	want := strings.Join([]string{
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
	for _, status := range []string{"", "running"} {
		got := runDaemon(t, cal, start, &fakeRunner{statuses: map[string]string{"20250307": status}}, 2)
		want := strings.Join([]string{
			"03-08 09:00 status 20250307",
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
	got := runDaemon(t, cal, start, &fakeRunner{statuses: map[string]string{"20250307": "settled"}}, 1)
	want := "03-08 00:30 status 20250307\n03-08 00:30 daily"
	if got != want {
		t.Errorf("events\n%s\nwant\n%s", got, want)
	}
}

func TestDaemonRetriesTransientFailures(t *testing.T) {
	cal := shanghaiCal(t, 0)
	start := time.Date(2025, 3, 8, 0, 10, 0, 0, cal.Zone)
	r := &fakeRunner{settleErrs: []error{errUnavailable, fmt.Errorf("submit: %w", errUnavailable)}}
	got := runDaemon(t, cal, start, r, 1)
	want := strings.Join([]string{
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
	got := runDaemon(t, cal, start, &fakeRunner{settleErrs: errs}, 1)
	want := strings.Join([]string{
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
		got := runDaemon(t, cal, start, &fakeRunner{settleErrs: []error{err}}, 2)
		want := strings.Join([]string{
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
