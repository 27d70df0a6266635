package mapfront

import (
	"testing"
	"time"

	"mapfront/internal/businessday"
)

func TestRejectFile(t *testing.T) {
	cases := []struct {
		lines, bad int64
		permille   int
		want       bool
	}{
		{0, 0, 500, false},    // empty: a day without sales
		{1, 1, 1000, true},    // no record at all, whatever the share
		{10, 5, 500, false},   // exactly half
		{10, 6, 500, true},    // more than half
		{1000, 1, 0, true},    // a site that allows none
		{1000, 1, 1, false},   // one in a thousand
		{3, 2, 500, true},     // two of three
		{100, 99, 990, false}, // 99 of 100 under 99%: still has a record
	}
	for _, c := range cases {
		got, why := RejectFile(c.lines, c.bad, c.permille)
		if got != c.want || got != (why != "") {
			t.Errorf("RejectFile(%d, %d, %d) = %v %q, want %v", c.lines, c.bad, c.permille, got, why, c.want)
		}
	}
}

// SPEC section 6, Dates: the batch's business day widened by the tolerance
// around both cutovers, under a midnight and a 23:00 cutover.
func TestCheckRecordDate(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	batch := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		cutover    time.Duration
		date, time string
		want       bool
	}{
		{0, "20261126", "000000", true},
		{0, "20261126", "235959", true},
		{0, "20261125", "234500", true},  // 15 minutes early
		{0, "20261125", "234459", false}, // past the tolerance
		{0, "20261127", "001459", true},
		{0, "20261127", "001500", false},
		{0, "20261125", "120000", false},              // a day early
		{0, "20261129", "120000", false},              // three days late
		{0, "20261131", "120000", false},              // no such date
		{23 * time.Hour, "20261125", "230000", true},  // day 26 starts on the evening of the 25th
		{23 * time.Hour, "20261126", "231000", true},  // inside the tolerance after it ends
		{23 * time.Hour, "20261126", "232000", false}, // past it
		{23 * time.Hour, "20261125", "224000", false},
	}
	for _, c := range cases {
		rule := businessday.Rule{Zone: sh, Cutover: c.cutover}
		d, ok := CheckRecordDate(rule, batch, c.date, c.time, 15*time.Minute)
		if ok != c.want || (!ok && (d.Type != ExDateMismatch || d.Detail == "")) {
			t.Errorf("cutover %v, %s %s: %v %+v, want %v", c.cutover, c.date, c.time, ok, d, c.want)
		}
	}
}

func TestCrossDay(t *testing.T) {
	day := func(n int) time.Time { return time.Date(2026, 11, 26+n, 0, 0, 0, 0, time.UTC) }
	cases := []struct {
		paid        time.Time
		missingOpen bool
		want        bool
	}{
		{day(0), false, true},
		{day(-1), false, true}, // the POSP's cutover is not ours
		{day(1), false, true},
		{day(-2), false, false}, // older, not recorded missing
		{day(-3), true, true},   // missing, within 7 business days
		{day(-7), true, true},
		{day(-8), true, false}, // past the look-back
	}
	for _, c := range cases {
		d, ok := CrossDay(day(0), c.paid, c.missingOpen, 7)
		if ok != c.want || (!ok && d.Type != ExDateMismatch) {
			t.Errorf("paid %s missing %v: %v %+v, want %v", DateString(c.paid), c.missingOpen, ok, d, c.want)
		}
	}
}
