package stats

import (
	"math/rand/v2"
	"testing"
	"time"
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	// 1..100 ms: the p-th percentile is exactly p ms.
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, c := range []struct {
		p    float64
		want int
	}{{0, 1}, {1, 1}, {50, 50}, {95, 95}, {99, 99}, {99.5, 100}, {100, 100}, {150, 100}, {-3, 1}} {
		if got := Percentile(d, c.p); got != time.Duration(c.want)*time.Millisecond {
			t.Errorf("p%v = %v, want %dms", c.p, got, c.want)
		}
	}
	// The textbook example: 15, 20, 35, 40, 50.
	e := ms(15, 20, 35, 40, 50)
	for _, c := range []struct {
		p    float64
		want int
	}{{5, 15}, {30, 20}, {40, 20}, {50, 35}, {100, 50}} {
		if got := Percentile(e, c.p); got != time.Duration(c.want)*time.Millisecond {
			t.Errorf("textbook p%v = %v, want %dms", c.p, got, c.want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty set")
	}
	if got := Percentile(ms(7), 99); got != 7*time.Millisecond {
		t.Errorf("single value: %v", got)
	}
}

func TestSummarize(t *testing.T) {
	d := ms(5, 1, 4, 2, 3, 10, 6, 9, 7, 8)
	rand.Shuffle(len(d), func(i, j int) { d[i], d[j] = d[j], d[i] })
	s := Summarize(d)
	want := Summary{Count: 10, Min: 1 * time.Millisecond, Mean: 5500 * time.Microsecond,
		P50: 5 * time.Millisecond, P95: 10 * time.Millisecond, P99: 10 * time.Millisecond,
		P999: 10 * time.Millisecond, Max: 10 * time.Millisecond}
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	if (Summarize(nil) != Summary{}) {
		t.Error("empty summary")
	}
}

func TestMillis(t *testing.T) {
	if got := Millis(1234567 * time.Nanosecond); got != 1.235 {
		t.Errorf("Millis = %v", got)
	}
}
