package mapfront

import (
	"fmt"
	"time"
)

// Clock gives the business calendar: the zone and the daily cutover (日切时间)
// of SPEC section 4. Business day D starts at D's cutover: the business day
// of an instant t is the calendar date, in Zone, of t minus Cutover. With the
// default cutover 00:00 it is simply the local date.
type Clock struct {
	Zone    *time.Location
	Cutover time.Duration // time of day, 0 ≤ Cutover < 24h
	Now     func() time.Time
}

// BusinessDate returns the business date of t as a midnight UTC time, the
// form a PostgreSQL date column takes.
func (c Clock) BusinessDate(t time.Time) time.Time {
	l := t.In(c.Zone).Add(-c.Cutover)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, time.UTC)
}

// Today returns the current business date.
func (c Clock) Today() time.Time { return c.BusinessDate(c.Now()) }

// FormatTime writes t as the contract's payTime: yyyy-MM-dd HH:mm:ss in Zone.
func (c Clock) FormatTime(t time.Time) string {
	return t.In(c.Zone).Format("2006-01-02 15:04:05")
}

// ParseCutover reads a cutover "HH:MM" into a time of day.
func ParseCutover(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("cutover %q is not HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// DateString formats a business date as yyyyMMdd, the settlement file's form.
func DateString(d time.Time) string { return d.Format("20060102") }

// ParseDate reads a yyyyMMdd business date.
func ParseDate(s string) (time.Time, error) {
	d, err := time.Parse("20060102", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q is not yyyyMMdd", s)
	}
	return d, nil
}
