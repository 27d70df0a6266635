// Package stats turns recorded latencies into the numbers a run reports.
//
// Every duration is kept (8 bytes each: a 30-second run at a few thousand
// requests per second is well under a megabyte), so percentiles are exact
// rather than estimated from a histogram.
package stats

import (
	"math"
	"slices"
	"time"
)

// Summary describes one set of latencies.
type Summary struct {
	Count                    int
	Min, Mean                time.Duration
	P50, P95, P99, P999, Max time.Duration
}

// Summarize sorts d in place and summarises it; the zero Summary for none.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	slices.Sort(d)
	var total time.Duration
	for _, v := range d {
		total += v
	}
	return Summary{
		Count: len(d),
		Min:   d[0],
		Mean:  total / time.Duration(len(d)),
		P50:   Percentile(d, 50),
		P95:   Percentile(d, 95),
		P99:   Percentile(d, 99),
		P999:  Percentile(d, 99.9),
		Max:   d[len(d)-1],
	}
}

// Percentile is the nearest-rank percentile of sorted: the smallest value
// such that at least p percent of the values are less than or equal to it
// (rank ceil(p/100 * n)). It is always one of the recorded values, never an
// interpolation. p is clamped to [0, 100]; p = 0 gives the minimum.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	p = max(0, min(100, p))
	// The small epsilon keeps binary floating point from pushing an exact
	// rank (e.g. 0.95*100 = 95.00000000000001) up by one.
	rank := int(math.Ceil(p/100*float64(n) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

// Millis formats d in milliseconds with enough precision for sub-millisecond
// latencies.
func Millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000
}
