package mapfront

import (
	"context"
	"testing"
	"time"
)

// The pipelined round trip carries a batch's COMMIT and the next batch's
// load: it ends at the later of the two batches' deadlines, or never when
// either has none.
func TestLaterContext(t *testing.T) {
	base := time.Now()
	at := func(d time.Duration) context.Context {
		ctx, cancel := context.WithDeadline(context.Background(), base.Add(d))
		t.Cleanup(cancel)
		return ctx
	}
	calls := func(ctxs ...context.Context) []*payCall {
		cs := make([]*payCall, len(ctxs))
		for i, c := range ctxs {
			cs[i] = &payCall{ctx: c}
		}
		return cs
	}
	for _, c := range []struct {
		name  string
		batch context.Context
		next  []*payCall
		want  time.Duration // 0: no deadline
	}{
		{"next later", at(time.Second), calls(at(2*time.Second), at(5*time.Second)), 5 * time.Second},
		{"next earlier", at(5 * time.Second), calls(at(time.Second)), 5 * time.Second},
		{"next without one", at(time.Second), calls(at(2*time.Second), context.Background()), 0},
		{"batch without one", context.Background(), calls(at(time.Second)), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := laterContext(c.batch, c.next)
			defer cancel()
			d, ok := ctx.Deadline()
			switch {
			case c.want == 0 && ok:
				t.Fatalf("deadline %v, want none", d.Sub(base))
			case c.want != 0 && (!ok || !d.Equal(base.Add(c.want))):
				t.Fatalf("deadline %v (%v), want %v", d.Sub(base), ok, c.want)
			}
			if ctx.Err() != nil {
				t.Fatal("the round trip's context ended at once")
			}
		})
	}
}
