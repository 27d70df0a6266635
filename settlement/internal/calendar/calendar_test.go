package calendar

import (
	"testing"
	"time"
)

func shanghai(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestBusinessDay(t *testing.T) {
	sh := shanghai(t)
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, sh) }
	cases := []struct {
		name    string
		cutover time.Duration
		now     time.Time
		date    string // DateOf(now)
		start   time.Time
		job     time.Time // JobTime(DateOf(now))
	}{
		{"midnight cutover, mid-day", 0, at(2025, 3, 8, 12, 0), "20250308", at(2025, 3, 8, 0, 0), at(2025, 3, 9, 0, 30)},
		{"midnight cutover, at cutover", 0, at(2025, 3, 8, 0, 0), "20250308", at(2025, 3, 8, 0, 0), at(2025, 3, 9, 0, 30)},
		{"midnight cutover, just before", 0, at(2025, 3, 7, 23, 59), "20250307", at(2025, 3, 7, 0, 0), at(2025, 3, 8, 0, 30)},
		{"23:00 cutover, after it: already the next day", 23 * time.Hour, at(2025, 3, 7, 23, 30), "20250308", at(2025, 3, 7, 23, 0), at(2025, 3, 8, 23, 30)},
		{"23:00 cutover, before it", 23 * time.Hour, at(2025, 3, 7, 22, 59), "20250307", at(2025, 3, 6, 23, 0), at(2025, 3, 7, 23, 30)},
		{"12:00 cutover, morning", 12 * time.Hour, at(2025, 3, 7, 9, 0), "20250307", at(2025, 3, 6, 12, 0), at(2025, 3, 7, 12, 30)},
		{"02:00 cutover, after midnight", 2 * time.Hour, at(2025, 3, 8, 1, 0), "20250307", at(2025, 3, 7, 2, 0), at(2025, 3, 8, 2, 30)},
		{"year end", 0, at(2025, 12, 31, 23, 0), "20251231", at(2025, 12, 31, 0, 0), at(2026, 1, 1, 0, 30)},
		{"leap day", 0, at(2024, 2, 29, 8, 0), "20240229", at(2024, 2, 29, 0, 0), at(2024, 3, 1, 0, 30)},
		{"UTC instant, Shanghai date", 0, time.Date(2025, 3, 7, 16, 30, 0, 0, time.UTC), "20250308", at(2025, 3, 8, 0, 0), at(2025, 3, 9, 0, 30)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cal := Calendar{Zone: sh, Cutover: c.cutover, Offset: 30 * time.Minute, Deadline: 6 * time.Hour}
			if err := cal.Validate(); err != nil {
				t.Fatal(err)
			}
			d := cal.DateOf(c.now)
			if d.String() != c.date {
				t.Fatalf("DateOf = %s, want %s", d, c.date)
			}
			if s := cal.Start(d); !s.Equal(c.start) {
				t.Errorf("Start = %v, want %v", s, c.start)
			}
			if j := cal.JobTime(d); !j.Equal(c.job) {
				t.Errorf("JobTime = %v, want %v", j, c.job)
			}
			if g := cal.GiveUpTime(d); !g.Equal(c.job.Add(-30 * time.Minute).Add(6 * time.Hour)) {
				t.Errorf("GiveUpTime = %v", g)
			}
			// A business day starts at its cutover and ends at the next.
			if cal.DateOf(cal.Start(d)) != d || cal.DateOf(cal.End(d)) != d.AddDays(1) || cal.DateOf(cal.End(d).Add(-time.Nanosecond)) != d {
				t.Error("Start/End do not bound DateOf")
			}
			if cal.LastEnded(c.now) != d.AddDays(-1) || cal.Ended(d, c.now) || !cal.Ended(d.AddDays(-1), c.now) {
				t.Error("LastEnded/Ended")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	sh := shanghai(t)
	bad := []Calendar{
		{},
		{Zone: sh, Cutover: -time.Minute, Deadline: time.Hour},
		{Zone: sh, Cutover: 24 * time.Hour, Deadline: time.Hour},
		{Zone: sh, Offset: -time.Minute, Deadline: time.Hour},
		{Zone: sh, Offset: 2 * time.Hour, Deadline: time.Hour},
		{Zone: sh, Offset: 30 * time.Minute, Deadline: 25 * time.Hour},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
