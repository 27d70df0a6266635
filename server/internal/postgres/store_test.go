package postgres

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
	"mapfront/server/internal/secret"
)

// testClock is a settable clock for the tests.
type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time { return c.now }

// env is a store on a fresh database with the demo data loaded.
type env struct {
	store *Store
	svc   *mapfront.Service
	admin *mapfront.AdminService
	clock *testClock
	ctx   context.Context
}

const testTPK = "0123456789ABCDEFFEDCBA9876543210"

func newEnv(t *testing.T, mutate ...func(*mapfront.Policy)) *env { return newEnvTB(t, mutate...) }

func newEnvTB(t testing.TB, mutate ...func(*mapfront.Policy)) *env {
	t.Helper()
	url := pgtest.NewDatabase(t)
	keys, err := secret.Parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	if err != nil {
		t.Fatal(err)
	}
	zone, _ := time.LoadLocation("Asia/Shanghai")
	clk := &testClock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, zone)}
	policy := mapfront.DefaultPolicy()
	for _, m := range mutate {
		m(&policy)
	}
	ctx := context.Background()
	clock := mapfront.Clock{Zone: zone, Now: clk.Now}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(ctx, url, Options{
		Clock: clock, Policy: policy, NewCustomerPassword: mapfront.InitialPasswordHasher(policy, keys),
		SealID: mapfront.IDSealer(keys), Log: log, MaxConns: 32,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	admin := mapfront.NewAdminService(s, keys, policy)
	if err := admin.LoadDemo(ctx, testTPK); err != nil {
		t.Fatal(err)
	}
	return &env{store: s, svc: mapfront.NewService(s, keys, clock, policy, log), admin: admin, clock: clk, ctx: ctx}
}

// verify fails the test unless the ledger proves.
func (e *env) verify(t *testing.T) {
	t.Helper()
	r, err := e.store.VerifyLedger(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK {
		t.Fatalf("ledger does not prove: %+v", r)
	}
}

func (e *env) balance(t *testing.T, account string) int64 {
	t.Helper()
	b, _, err := e.store.ListStatement(e.ctx, account, 1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantCode(t *testing.T, err error, want mapfront.Code) {
	t.Helper()
	if got := mapfront.ErrorCode(err); got != want {
		t.Fatalf("errcode = %d (%v), want %d", got, err, want)
	}
}

func TestMigrateTwiceAndDemoTwice(t *testing.T) {
	e := newEnv(t)
	if err := e.store.migrate(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.LoadDemo(e.ctx, testTPK); err != nil {
		t.Fatal(err)
	}
	if got := e.balance(t, "1010123412341234"); got != 300000 {
		t.Fatalf("demo card balance %d, want 300000", got)
	}
	c, err := e.store.GetCustomer(e.ctx, "13912345678")
	if err != nil {
		t.Fatal(err)
	}
	var cash int64
	for _, a := range c.Accounts {
		if a.Kind == "cash" {
			cash = a.Balance
		}
	}
	if cash != 1_000_000 {
		t.Fatalf("demo cash %d, want 1000000", cash)
	}
	e.verify(t)
}
