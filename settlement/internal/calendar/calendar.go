// Package calendar owns the business day (营业日, SPEC section 4): which
// business date an instant belongs to, when a business date ends at the
// cutover (日切), and when its settlement job runs and stops waiting for the
// file (SPEC section 6).
//
// The rule, shared with the server (mapfront.Clock): a business day runs from
// one cutover to the next and is named after the calendar day it mostly
// covers. A cutover before noon (00:00, 02:00) starts business day D on day
// D, so 01:00 belongs to the day before under a 02:00 cutover; a cutover
// from noon on (23:00, as at card schemes) starts business day D on the
// evening of D-1, so 23:30 already belongs to the next day. The job for
// business date D runs at the cutover that ends D, plus an offset.
package calendar

import (
	"fmt"
	"time"
)

// Date is a civil date (no zone, no time of day). Business dates travel as
// yyyyMMdd strings on the wire; Date keeps them checked and comparable.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate reads a yyyyMMdd date and refuses anything that is not a real
// calendar date, so "20230229" or "20141301" never reach the server.
func ParseDate(s string) (Date, error) {
	if len(s) != 8 {
		return Date{}, fmt.Errorf("date %q: want yyyyMMdd", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return Date{}, fmt.Errorf("date %q: want yyyyMMdd", s)
		}
	}
	t, err := time.Parse("20060102", s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q is not a calendar date", s)
	}
	return DateOfTime(t), nil
}

// DateOfTime returns the calendar date of t in t's own location.
func DateOfTime(t time.Time) Date {
	y, m, d := t.Date()
	return Date{Year: y, Month: m, Day: d}
}

// String formats the date as yyyyMMdd, the form of the file name pattern and
// of business_date on the wire.
func (d Date) String() string {
	return fmt.Sprintf("%04d%02d%02d", d.Year, int(d.Month), d.Day)
}

// IsZero reports whether d is the zero Date.
func (d Date) IsZero() bool { return d == Date{} }

// AddDays returns the date n days after d (before it when n < 0).
func (d Date) AddDays(n int) Date {
	// Noon UTC keeps the arithmetic clear of any zone transition.
	return DateOfTime(time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC))
}

// Compare returns -1, 0 or +1 as d is before, equal to or after e.
func (d Date) Compare(e Date) int {
	switch {
	case d.Year != e.Year:
		return cmpInt(d.Year, e.Year)
	case d.Month != e.Month:
		return cmpInt(int(d.Month), int(e.Month))
	default:
		return cmpInt(d.Day, e.Day)
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Calendar holds the business-day settings. The zero value is not usable:
// Zone must be set.
type Calendar struct {
	// Zone is where business dates are counted (default Asia/Shanghai).
	Zone *time.Location
	// Cutover is the time of day at which a business day starts, as a
	// duration since midnight in [0, 24h) (default 00:00).
	Cutover time.Duration
	// Offset is how long after the cutover that ends a business date its
	// settlement job runs (default 30m, SPEC section 4).
	Offset time.Duration
	// Deadline is how long after that cutover the job keeps waiting for a
	// missing file before recording it as missing (default 6h, SPEC section 6).
	Deadline time.Duration
}

// Validate reports settings that would make the schedule meaningless.
func (c Calendar) Validate() error {
	switch {
	case c.Zone == nil:
		return fmt.Errorf("calendar: zone not set")
	case c.Cutover < 0 || c.Cutover >= 24*time.Hour:
		return fmt.Errorf("calendar: cutover %v not within a day", c.Cutover)
	case c.Offset < 0 || c.Offset >= 24*time.Hour:
		return fmt.Errorf("calendar: offset %v must be in [0, 24h)", c.Offset)
	case c.Deadline < c.Offset:
		return fmt.Errorf("calendar: deadline %v is before the job time (offset %v)", c.Deadline, c.Offset)
	case c.Deadline > 24*time.Hour:
		// Past 24h the wait for one date would overlap the next date's job.
		return fmt.Errorf("calendar: deadline %v is more than 24h after the cutover", c.Deadline)
	}
	return nil
}

// DateOf returns the business date that contains instant t.
func (c Calendar) DateOf(t time.Time) Date {
	return DateOfTime(t.Add(-c.shift()).In(c.Zone))
}

// shift is where business day D starts relative to D's midnight: the cutover,
// or, for a cutover from noon on, that time on the evening before.
func (c Calendar) shift() time.Duration {
	if c.Cutover >= 12*time.Hour {
		return c.Cutover - 24*time.Hour
	}
	return c.Cutover
}

// Start returns the instant business date d starts: its local midnight
// shifted to the cutover (the evening before for a cutover from noon on),
// the exact inverse of DateOf. (Asia/Shanghai has no daylight
// saving time; in a zone that has, a day is still one cutover to the next.)
func (c Calendar) Start(d Date) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, c.Zone).Add(c.shift())
}

// End returns the instant business date d ends, the cutover that starts d+1.
func (c Calendar) End(d Date) time.Time { return c.Start(d.AddDays(1)) }

// JobTime returns when the settlement job of business date d runs.
func (c Calendar) JobTime(d Date) time.Time { return c.End(d).Add(c.Offset) }

// GiveUpTime returns when the job of business date d stops waiting for a
// missing file and records it as missing.
func (c Calendar) GiveUpTime(d Date) time.Time { return c.End(d).Add(c.Deadline) }

// LastEnded returns the most recent business date that has ended at now:
// the one whose settlement is due (yesterday, in business days).
func (c Calendar) LastEnded(now time.Time) Date { return c.DateOf(now).AddDays(-1) }

// Ended reports whether business date d has ended at now, so that its file
// can be complete.
func (c Calendar) Ended(d Date, now time.Time) bool { return !now.Before(c.End(d)) }
