package settle

import (
	"fmt"
	"io"
	"time"
)

// progress writes a one-line, overwritten progress report, at most a few
// times a second so that a fast stream is not slowed by the terminal.
type progress struct {
	w     io.Writer
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, start time.Time) *progress {
	return &progress{w: w, start: start}
}

func (p *progress) update(sent, total int64) {
	if p.w == nil {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < 250*time.Millisecond {
		return
	}
	p.last = now
	p.print(now, sent, total)
}

func (p *progress) done(sent, total int64) {
	if p.w == nil {
		return
	}
	p.print(time.Now(), sent, total)
	fmt.Fprintln(p.w)
}

func (p *progress) print(now time.Time, sent, total int64) {
	rate := 0.0
	if secs := now.Sub(p.start).Seconds(); secs > 0 {
		rate = float64(sent) / secs
	}
	fmt.Fprintf(p.w, "\rsent %d/%d lines (%.0f lines/s)   ", sent, total, rate)
}
