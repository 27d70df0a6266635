package mapfront

import (
	"time"

	"mapfront/internal/businessday"
)

// Clock gives the business calendar: the zone and the daily cutover (日切时间)
// of SPEC section 4. A business day runs from one cutover to the next and is
// named after the calendar day it mostly covers: under a cutover before noon
// (00:00, 02:00) business day D starts on day D at the cutover, so 01:00
// still belongs to the day before a 02:00 cutover; under a cutover from noon
// on (23:00, as at card schemes) it starts on the evening of D-1, so 23:30
// already belongs to the next day. With the default 00:00 it is the local
// date. The rule itself is internal/businessday, shared with the settlement
// command.
type Clock struct {
	Zone    *time.Location
	Cutover time.Duration // time of day, 0 ≤ Cutover < 24h
	Now     func() time.Time
}

// BusinessDate returns the business date of t as a midnight UTC time, the
// form a PostgreSQL date column takes.
func (c Clock) BusinessDate(t time.Time) time.Time {
	return c.Rule().DateOf(t).Midnight()
}

// Rule returns the clock's business-day rule.
func (c Clock) Rule() businessday.Rule {
	return businessday.Rule{Zone: c.Zone, Cutover: c.Cutover}
}

// Today returns the current business date.
func (c Clock) Today() time.Time { return c.BusinessDate(c.Now()) }

// FormatTime writes t as the contract's payTime: yyyy-MM-dd HH:mm:ss in Zone.
func (c Clock) FormatTime(t time.Time) string {
	return t.In(c.Zone).Format("2006-01-02 15:04:05")
}

// ParseCutover reads a cutover "HH:MM" into a time of day.
func ParseCutover(s string) (time.Duration, error) { return businessday.ParseCutover(s) }

// DateString formats a business date as yyyyMMdd, the settlement file's form.
func DateString(d time.Time) string { return d.Format("20060102") }

// ParseDate reads a yyyyMMdd business date (businessday.ParseDate) as
// midnight UTC.
func ParseDate(s string) (time.Time, error) {
	d, err := businessday.ParseDate(s)
	if err != nil {
		return time.Time{}, err
	}
	return d.Midnight(), nil
}
