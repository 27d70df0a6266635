// Package businessday owns the business-day rule (营业日, SPEC sections 4 and
// 6) shared by the server and the settlement command, so that both name the
// same instant with the same business date: which date an instant belongs
// to, and when a business date starts and ends at the cutover (日切时间).
//
// The rule: a business day runs from one cutover to the next and is named
// after the calendar day it mostly covers. A cutover before noon (00:00,
// 02:00) starts business day D on day D, so 01:00 belongs to the day before
// under a 02:00 cutover; a cutover from noon on (23:00, as at card schemes)
// starts business day D on the evening of D-1, so 23:30 already belongs to
// the next day. With the default 00:00 the business date is the local date.
package businessday

import (
	"fmt"
	"time"
)

// Date is a civil date (no zone, no time of day). Business dates travel as
// yyyyMMdd strings on the wire and as PostgreSQL date columns; Date keeps
// them checked and comparable.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate reads a yyyyMMdd date and refuses anything that is not a real
// calendar date, so "20230229" or "20141301" never reach the database.
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

// String formats the date as yyyyMMdd, the form of the settlement file's
// name and of business_date on the wire.
func (d Date) String() string {
	return fmt.Sprintf("%04d%02d%02d", d.Year, int(d.Month), d.Day)
}

// IsZero reports whether d is the zero Date.
func (d Date) IsZero() bool { return d == Date{} }

// Midnight returns d as midnight UTC, the form a PostgreSQL date column
// takes through pgx.
func (d Date) Midnight() time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
}

// AddDays returns the date n days after d (before it when n < 0).
func (d Date) AddDays(n int) Date {
	// Noon UTC keeps the arithmetic clear of any zone transition.
	return DateOfTime(time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC))
}

// Compare returns -1, 0 or +1 as d is before, equal to or after e.
func (d Date) Compare(e Date) int {
	return d.Midnight().Compare(e.Midnight())
}

// Rule is the business calendar: the zone and the daily cutover. The zero
// value is not usable: Zone must be set.
type Rule struct {
	// Zone is where business dates are counted (default Asia/Shanghai).
	Zone *time.Location
	// Cutover is the time of day at which a business day starts, as a
	// duration since midnight in [0, 24h) (default 00:00).
	Cutover time.Duration
}

// ParseCutover reads a cutover "HH:MM" (00:00 to 23:59, two digits each)
// into a time of day.
func ParseCutover(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, fmt.Errorf("cutover %q is not HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// Validate reports a rule that names no day.
func (r Rule) Validate() error {
	switch {
	case r.Zone == nil:
		return fmt.Errorf("business day: zone not set")
	case r.Cutover < 0 || r.Cutover >= 24*time.Hour:
		return fmt.Errorf("business day: cutover %v not within a day", r.Cutover)
	}
	return nil
}

// shift is where business day D starts relative to D's midnight: the
// cutover, or, for a cutover from noon on, that time on the evening before.
func (r Rule) shift() time.Duration {
	if r.Cutover >= 12*time.Hour {
		return r.Cutover - 24*time.Hour
	}
	return r.Cutover
}

// DateOf returns the business date that contains instant t.
func (r Rule) DateOf(t time.Time) Date {
	return DateOfTime(t.In(r.Zone).Add(-r.shift()))
}

// Start returns the instant business date d starts: its local midnight
// shifted to the cutover (the evening before for a cutover from noon on),
// the exact inverse of DateOf. (Asia/Shanghai has no daylight saving time;
// in a zone that has, a day is still one cutover to the next.)
func (r Rule) Start(d Date) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, r.Zone).Add(r.shift())
}

// End returns the instant business date d ends, the cutover that starts d+1.
func (r Rule) End(d Date) time.Time { return r.Start(d.AddDays(1)) }

// Contains reports whether instant t falls within business date d widened
// by tolerance on both sides: [Start(d) - tolerance, End(d) + tolerance).
// The settlement file's record times are checked this way (SPEC section 6,
// Dates): the POSP's clock and cutover are not exactly ours.
func (r Rule) Contains(d Date, t time.Time, tolerance time.Duration) bool {
	return !t.Before(r.Start(d).Add(-tolerance)) && t.Before(r.End(d).Add(tolerance))
}
