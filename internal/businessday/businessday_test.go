package businessday

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

func TestParseDate(t *testing.T) {
	good := map[string]Date{
		"20141211": {2014, time.December, 11},
		"20240229": {2024, time.February, 29},
		"20251231": {2025, time.December, 31},
	}
	for in, want := range good {
		got, err := ParseDate(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseDate(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "2014121", "201412111", "20230229", "20141301", "20141200", "2014-12-", "２０１４１２１１", "+2014121"} {
		if _, err := ParseDate(in); err == nil {
			t.Errorf("ParseDate(%q) accepted", in)
		}
	}
}

func TestAddDaysAndCompare(t *testing.T) {
	d := Date{2024, time.February, 28}
	if got := d.AddDays(1).String(); got != "20240229" {
		t.Errorf("got %s", got)
	}
	if got := d.AddDays(2).String(); got != "20240301" {
		t.Errorf("got %s", got)
	}
	if got := (Date{2025, time.January, 1}).AddDays(-1).String(); got != "20241231" {
		t.Errorf("got %s", got)
	}
	if d.Compare(d.AddDays(1)) != -1 || d.AddDays(1).Compare(d) != 1 || d.Compare(d) != 0 {
		t.Error("Compare")
	}
	if m := d.Midnight(); !m.Equal(time.Date(2024, 2, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Midnight = %v", m)
	}
}

// The business date of an instant, and the instants a date starts, under
// the cutovers of SPEC section 4.
func TestRule(t *testing.T) {
	sh := shanghai(t)
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, sh) }
	cases := []struct {
		name    string
		cutover time.Duration
		t       time.Time
		date    string
		start   time.Time
	}{
		{"midnight cutover, mid-day", 0, at(2025, 3, 8, 12, 0), "20250308", at(2025, 3, 8, 0, 0)},
		{"midnight cutover, at cutover", 0, at(2025, 3, 8, 0, 0), "20250308", at(2025, 3, 8, 0, 0)},
		{"midnight cutover, just before", 0, at(2025, 3, 7, 23, 59), "20250307", at(2025, 3, 7, 0, 0)},
		{"23:00 cutover, after it: already the next day", 23 * time.Hour, at(2025, 3, 7, 23, 30), "20250308", at(2025, 3, 7, 23, 0)},
		{"23:00 cutover, before it", 23 * time.Hour, at(2025, 3, 7, 22, 59), "20250307", at(2025, 3, 6, 23, 0)},
		{"12:00 cutover, morning", 12 * time.Hour, at(2025, 3, 7, 9, 0), "20250307", at(2025, 3, 6, 12, 0)},
		{"12:00 cutover, noon", 12 * time.Hour, at(2025, 3, 7, 12, 0), "20250308", at(2025, 3, 7, 12, 0)},
		{"02:00 cutover, after midnight", 2 * time.Hour, at(2025, 3, 8, 1, 0), "20250307", at(2025, 3, 7, 2, 0)},
		{"02:00 cutover, at it", 2 * time.Hour, at(2025, 3, 8, 2, 0), "20250308", at(2025, 3, 8, 2, 0)},
		{"year end", 0, at(2025, 12, 31, 23, 0), "20251231", at(2025, 12, 31, 0, 0)},
		{"leap day", 0, at(2024, 2, 29, 8, 0), "20240229", at(2024, 2, 29, 0, 0)},
		{"UTC instant, Shanghai date", 0, time.Date(2025, 3, 7, 16, 30, 0, 0, time.UTC), "20250308", at(2025, 3, 8, 0, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Rule{Zone: sh, Cutover: c.cutover}
			if err := r.Validate(); err != nil {
				t.Fatal(err)
			}
			d := r.DateOf(c.t)
			if d.String() != c.date {
				t.Fatalf("DateOf = %s, want %s", d, c.date)
			}
			if s := r.Start(d); !s.Equal(c.start) {
				t.Errorf("Start = %v, want %v", s, c.start)
			}
			if r.DateOf(r.Start(d)) != d || r.DateOf(r.End(d)) != d.AddDays(1) || r.DateOf(r.End(d).Add(-time.Nanosecond)) != d {
				t.Error("Start/End do not bound DateOf")
			}
		})
	}
}

// Contains widens the day by the tolerance on both sides and no further.
func TestContains(t *testing.T) {
	sh := shanghai(t)
	r := Rule{Zone: sh}
	d := Date{2025, time.March, 7}
	tol := 15 * time.Minute
	at := func(day, h, m int) time.Time { return time.Date(2025, 3, day, h, m, 0, 0, sh) }
	cases := []struct {
		t    time.Time
		want bool
	}{
		{at(7, 12, 0), true},
		{at(6, 23, 45), true},  // tolerance before the cutover that starts d
		{at(6, 23, 44), false}, // past it
		{at(8, 0, 14), true},   // tolerance after the cutover that ends d
		{at(8, 0, 15), false},
		{at(6, 12, 0), false},
		{at(10, 12, 0), false},
	}
	for _, c := range cases {
		if got := r.Contains(d, c.t, tol); got != c.want {
			t.Errorf("Contains(%s) = %v, want %v", c.t.Format(time.DateTime), got, c.want)
		}
	}
}

func TestValidateAndParseCutover(t *testing.T) {
	sh := shanghai(t)
	for _, r := range []Rule{{}, {Zone: sh, Cutover: -time.Minute}, {Zone: sh, Cutover: 24 * time.Hour}} {
		if r.Validate() == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	if c, err := ParseCutover("23:30"); err != nil || c != 23*time.Hour+30*time.Minute {
		t.Errorf("ParseCutover = %v, %v", c, err)
	}
	for _, s := range []string{"", "24:00", "7", "07:60", "7:00"} {
		if _, err := ParseCutover(s); err == nil {
			t.Errorf("ParseCutover(%q) accepted", s)
		}
	}
}
