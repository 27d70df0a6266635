// Package calendar owns the business day (营业日, SPEC section 4): which
// business date an instant belongs to, when a business date ends at the
// cutover (日切), and when its settlement job runs and stops waiting for the
// file (SPEC section 6).
//
// The rule is internal/businessday's, shared with the server: a business day runs from
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

	"mapfront/internal/businessday"
)

// Date is a civil business date, internal/businessday's, the one type the
// server and the command share.
type Date = businessday.Date

// ParseDate reads a yyyyMMdd date and refuses anything that is not a real
// calendar date, so "20230229" or "20141301" never reach the server.
func ParseDate(s string) (Date, error) { return businessday.ParseDate(s) }

// DateOfTime returns the calendar date of t in t's own location.
func DateOfTime(t time.Time) Date { return businessday.DateOfTime(t) }

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
	if err := c.Rule().Validate(); err != nil {
		return fmt.Errorf("calendar: %w", err)
	}
	switch {
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

// Rule returns the business-day rule of the calendar.
func (c Calendar) Rule() businessday.Rule {
	return businessday.Rule{Zone: c.Zone, Cutover: c.Cutover}
}

// DateOf returns the business date that contains instant t.
func (c Calendar) DateOf(t time.Time) Date { return c.Rule().DateOf(t) }

// Start returns the instant business date d starts (businessday.Rule.Start).
func (c Calendar) Start(d Date) time.Time { return c.Rule().Start(d) }

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
