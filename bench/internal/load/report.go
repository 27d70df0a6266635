package load

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"mapfront/bench/internal/stats"
)

// Report is what a run measured.
type Report struct {
	Concurrency int
	Mix         Mix
	BatchNo     string
	Elapsed     time.Duration // first request sent to last answer received
	Total       int
	Overall     stats.Summary
	ByOp        [numOps]OpReport
	Codes       []CodeCount // by operation, then errcode
	PerSecond   []int       // answers received in each second of the run
	Substituted int         // cancels/undos sent as pays for lack of a target
}

// OpReport is one operation's share.
type OpReport struct {
	Count, OK int
	Latency   stats.Summary
}

// CodeCount is how often an operation got an errcode, with the first errmsg.
type CodeCount struct {
	Op      Op
	Errcode int
	Count   int
	Sample  string
}

func newReport(cfg *RunConfig, workers []*worker, elapsed time.Duration) *Report {
	r := &Report{Concurrency: cfg.Concurrency, Mix: cfg.Mix, BatchNo: cfg.BatchNo, Elapsed: elapsed}
	var all []time.Duration
	codes := map[codeKey]*CodeCount{}
	for _, w := range workers {
		r.Substituted += w.substituted
		for op := range numOps {
			all = append(all, w.lat[op]...)
		}
		for k, n := range w.codes {
			c := codes[k]
			if c == nil {
				c = &CodeCount{Op: k.op, Errcode: k.code, Sample: w.samples[k]}
				codes[k] = c
			}
			c.Count += n
		}
		for i, n := range w.perSecond {
			for len(r.PerSecond) <= i {
				r.PerSecond = append(r.PerSecond, 0)
			}
			r.PerSecond[i] += n
		}
	}
	r.Total = len(all)
	r.Overall = stats.Summarize(all)
	for op := range numOps {
		var d []time.Duration
		for _, w := range workers {
			d = append(d, w.lat[op]...)
		}
		r.ByOp[op] = OpReport{Count: len(d), Latency: stats.Summarize(d)}
	}
	for _, c := range codes {
		if c.Errcode == 0 {
			r.ByOp[c.Op].OK += c.Count
		}
		r.Codes = append(r.Codes, *c)
	}
	sort.Slice(r.Codes, func(i, j int) bool {
		if r.Codes[i].Op != r.Codes[j].Op {
			return r.Codes[i].Op < r.Codes[j].Op
		}
		return r.Codes[i].Errcode < r.Codes[j].Errcode
	})
	return r
}

// Unexpected counts the answers other than errcode 0. Every one is
// unexpected: the customers' balances are large (so even 10009 is a fault),
// their password is right, and every terminal key is new.
func (r *Report) Unexpected() int {
	n := 0
	for _, c := range r.Codes {
		if c.Errcode != 0 {
			n += c.Count
		}
	}
	return n
}

// rate is n per second of the run.
func (r *Report) rate(n int) float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(n) / r.Elapsed.Seconds()
}

// PayTPS is approved pays per second: the number compared with pgbench.
func (r *Report) PayTPS() float64 { return r.rate(r.ByOp[OpPay].OK) }

// perSecondRange is the lowest, median and highest count of the whole
// seconds of the run (the last, partial second left out).
func (r *Report) perSecondRange() (lo, med, hi int) {
	full := r.PerSecond
	if n := int(r.Elapsed / time.Second); n < len(full) {
		full = full[:n]
	}
	if len(full) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(full)
	slices.Sort(s)
	return s[0], s[len(s)/2], s[len(s)-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", stats.Millis(d)) }

// Write prints the report for people.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintf(w, "requests   %d in %.2fs: %.1f req/s (approved pays %.1f/s), %d workers, mix %s, batch %s\n",
		r.Total, r.Elapsed.Seconds(), r.rate(r.Total), r.PayTPS(), r.Concurrency, r.Mix, r.BatchNo)
	lo, med, hi := r.perSecondRange()
	fmt.Fprintf(w, "per second min %d, median %d, max %d\n", lo, med, hi)
	o := r.Overall
	fmt.Fprintf(w, "latency    p50 %s  p95 %s  p99 %s  p99.9 %s  max %s  (mean %s, min %s)\n",
		ms(o.P50), ms(o.P95), ms(o.P99), ms(o.P999), ms(o.Max), ms(o.Mean), ms(o.Min))
	fmt.Fprintf(w, "by path    %-17s %8s %8s %9s %10s %10s %10s %10s\n", "", "count", "ok", "req/s", "p50", "p95", "p99", "max")
	for op := range numOps {
		b := r.ByOp[op]
		if b.Count == 0 {
			continue
		}
		l := b.Latency
		fmt.Fprintf(w, "           %-17s %8d %8d %9.1f %10s %10s %10s %10s\n", op.Path(), b.Count, b.OK, r.rate(b.Count),
			ms(l.P50), ms(l.P95), ms(l.P99), ms(l.Max))
	}
	if r.Substituted > 0 {
		fmt.Fprintf(w, "           (%d cancels/undos sent as pays: no earlier pay of theirs to target yet)\n", r.Substituted)
	}
	fmt.Fprintln(w, "by errcode")
	for _, c := range r.Codes {
		line := fmt.Sprintf("           %-17s %-14s %8d", c.Op.Path(), CodeName(c.Errcode), c.Count)
		if c.Errcode != 0 {
			line += "  UNEXPECTED, first errmsg: " + c.Sample
		}
		fmt.Fprintln(w, line)
	}
}

// WriteKV prints the numbers as key=value lines for scripts (compare.sh).
func (r *Report) WriteKV(w io.Writer) {
	o, p := r.Overall, r.ByOp[OpPay].Latency
	fmt.Fprintf(w, "total=%d\nelapsed_s=%.3f\nrps=%.1f\npay_ok=%d\npay_tps=%.1f\n", r.Total, r.Elapsed.Seconds(), r.rate(r.Total), r.ByOp[OpPay].OK, r.PayTPS())
	fmt.Fprintf(w, "p50_ms=%.3f\np95_ms=%.3f\np99_ms=%.3f\nmax_ms=%.3f\n", stats.Millis(o.P50), stats.Millis(o.P95), stats.Millis(o.P99), stats.Millis(o.Max))
	fmt.Fprintf(w, "pay_p50_ms=%.3f\npay_p99_ms=%.3f\n", stats.Millis(p.P50), stats.Millis(p.P99))
	fmt.Fprintf(w, "unexpected=%d\n", r.Unexpected())
	for _, c := range r.Codes {
		fmt.Fprintf(w, "code_%s_%s=%d\n", c.Op.Path(), CodeName(c.Errcode), c.Count)
	}
}
