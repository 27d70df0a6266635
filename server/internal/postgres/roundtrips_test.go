package postgres

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/secret"
)

// roundTrips counts what a connection sends: pipelined batches and single
// statements, each one round trip to the server.
type roundTrips struct {
	mu               sync.Mutex
	batches, queries int
	statements       []string
}

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries++
	r.statements = append(r.statements, d.SQL)
	return ctx
}

func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches++
	return ctx
}

func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (r *roundTrips) reset() (batches, queries int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	batches, queries = r.batches, r.queries
	r.batches, r.queries, r.statements = 0, 0, nil
	return batches, queries
}

// The pay path is one transaction in two round trips, as before the
// service layer: the load is one pipelined batch (BEGIN, key lock, locked
// reads), the persist one pipelined batch (writes and COMMIT). Repeats and
// declines too.
func TestPayIsTwoRoundTrips(t *testing.T) {
	e := newEnv(t)
	cfg := e.store.pool.Config()
	cfg.MaxConns = 1 // one connection: its statements are prepared by the warm-up
	trace := &roundTrips{}
	cfg.ConnConfig.Tracer = trace
	pool, err := pgxpool.NewWithConfig(e.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	keys, err := secret.Parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{pool: pool, clock: e.store.clock, policy: e.store.policy, newPW: e.store.newPW, sealID: e.store.sealID, log: e.store.log}
	svc := mapfront.NewService(s, keys, e.store.clock, e.store.policy, slog.New(slog.NewTextHandler(io.Discard, nil)))

	warm := payReq(t, demoMobile, "123456", "warm", 100)
	if _, err := svc.Pay(e.ctx, warm); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Pay(e.ctx, payReq(t, demoMobile, "000000", "warm-decline", 100)); mapfront.ErrorCode(err) != mapfront.CodeWrongPassword {
		t.Fatal(err)
	}
	if _, err := svc.Pay(e.ctx, warm); err != nil {
		t.Fatal(err)
	}
	trace.reset()
	for _, c := range []struct {
		name string
		r    *mapfront.PayRequest
		code mapfront.Code
		want int
	}{
		{"approved pay", payReq(t, demoMobile, "123456", "p1", 100), mapfront.OK, 2},
		{"repeat of it (answered from the load, rolled back)", payReq(t, demoMobile, "123456", "p1", 100), mapfront.OK, 2},
		{"wrong password (declined, count kept)", payReq(t, demoMobile, "000000", "p2", 100), mapfront.CodeWrongPassword, 2},
	} {
		_, err := svc.Pay(e.ctx, c.r)
		if mapfront.ErrorCode(err) != c.code {
			t.Fatalf("%s: %v", c.name, err)
		}
		batches, queries := trace.reset()
		if batches+queries != c.want {
			t.Errorf("%s: %d batches and %d statements, want %d round trips", c.name, batches, queries, c.want)
		}
	}
}
