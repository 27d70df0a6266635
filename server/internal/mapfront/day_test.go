package mapfront

import (
	"testing"
	"time"
)

// The business date of an instant under the cutovers of SPEC section 4, as a
// date column: internal/businessday's rule at midnight UTC.
func TestBusinessDate(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	at := func(d, h, m int) time.Time { return time.Date(2025, 3, d, h, m, 0, 0, sh) }
	cases := []struct {
		cutover time.Duration
		t       time.Time
		want    string
	}{
		{0, at(8, 12, 0), "20250308"},
		{0, at(7, 23, 59), "20250307"},
		{2 * time.Hour, at(8, 1, 0), "20250307"},
		{2 * time.Hour, at(8, 2, 0), "20250308"},
		{23 * time.Hour, at(7, 23, 30), "20250308"},
		{23 * time.Hour, at(7, 22, 59), "20250307"},
		{12 * time.Hour, at(7, 9, 0), "20250307"},
		{12 * time.Hour, at(7, 12, 0), "20250308"},
	}
	for _, c := range cases {
		got := DateString(Clock{Zone: sh, Cutover: c.cutover}.BusinessDate(c.t.UTC()))
		if got != c.want {
			t.Errorf("cutover %v, %s: %s, want %s", c.cutover, c.t.Format("01-02 15:04"), got, c.want)
		}
	}
}
