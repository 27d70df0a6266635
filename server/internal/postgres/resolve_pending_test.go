package postgres

import (
	"sync"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// One pending resolution per queue item (migration 0019): the same
// resolution asked again, by its proposer or another operator, or by
// several at once, answers the proposal that waits; another resolution of
// the item is 10003 until a supervisor decides the first; once rejected,
// the item can be proposed again; an expired one is replaced by the
// system. The supervisors' queue never holds two decisions for one item.
func TestOnePendingResolutionPerItem(t *testing.T) {
	e := newEnv(t)
	item, _ := missingPayment(t, e)
	alice, carol, bob := as(e.ctx, "alice", "operator"), as(e.ctx, "carol", "operator"), as(e.ctx, "bob", "supervisor")
	activate := mapfront.Resolution{ID: item.ID, Action: mapfront.ActionActivate, Operator: "alice", Note: "POSP确认已收款"}
	pending := func() int64 {
		return e.scalar(t, `SELECT count(*) FROM proposals WHERE kind = 'resolve_exception' AND state = 'pending'`)
	}

	_, _, p, err := e.admin.SubmitResolution(alice, activate)
	if err != nil || p == nil {
		t.Fatalf("propose: %v %+v", err, p)
	}
	var wg sync.WaitGroup
	ids := make([]int64, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := alice
			if i%2 == 1 {
				ctx = carol
			}
			_, _, q, err := e.admin.SubmitResolution(ctx, activate)
			if err != nil || q == nil {
				t.Errorf("resend %d: %v %+v", i, err, q)
				return
			}
			ids[i] = q.ID
		}()
	}
	wg.Wait()
	for i, id := range ids {
		if id != p.ID {
			t.Errorf("resend %d answered proposal %d, want %d", i, id, p.ID)
		}
	}
	if n := pending(); n != 1 {
		t.Fatalf("%d pending resolutions of one item, want 1", n)
	}

	// Another decision on the same item waits for the first to be decided.
	refund := mapfront.Resolution{ID: item.ID, Action: mapfront.ActionRefundOwed, Operator: "carol"}
	if _, _, q, err := e.admin.SubmitResolution(carol, refund); mapfront.ErrorCode(err) != mapfront.CodeKeyReused || q != nil {
		t.Fatalf("another resolution while one waits: %v %+v, want 10003", err, q)
	}
	if _, _, err := e.admin.RejectProposal(bob, p.ID, "改为退款"); err != nil {
		t.Fatal(err)
	}
	_, _, r, err := e.admin.SubmitResolution(carol, refund)
	if err != nil || r == nil || r.ID == p.ID {
		t.Fatalf("after the rejection: %v %+v", err, r)
	}

	// Expired: replaced by the next proposal of the item, the old one
	// rejected by the system.
	e.clock.now = e.clock.now.Add(30 * 24 * time.Hour)
	_, _, s, err := e.admin.SubmitResolution(alice, activate)
	if err != nil || s == nil || s.ID == r.ID || s.Expired(e.clock.now) {
		t.Fatalf("after expiry: %v %+v", err, s)
	}
	old, err := e.store.GetProposal(e.ctx, r.ID)
	if err != nil || old.State != mapfront.ProposalRejected || old.Decider != "system" {
		t.Fatalf("the expired proposal: %v %+v", err, old)
	}
	if n := pending(); n != 1 {
		t.Fatalf("%d pending resolutions of one item, want 1", n)
	}
	// The database refuses a second pending row, whoever writes it.
	if _, err := e.store.pool.Exec(e.ctx, `INSERT INTO proposals (kind, target, args, proposer, proposer_role, created_at, expires_at)
SELECT kind, target, args, 'dave', proposer_role, created_at, expires_at FROM proposals WHERE proposal_id = $1`, s.ID); err == nil {
		t.Fatal("the database accepted a second pending resolution of one item")
	}
	e.verify(t)
}

// Migration 0019 on the resolutions the code before it filed for each ask:
// per queue item the newest pending one stays, the older ones are rejected
// by the system (by migration.0019 for a proposer named "system"), each
// with its audit record; decided ones and other items are left alone.
func TestMigration0019KeepsOnePendingResolution(t *testing.T) {
	url, clk, keys, e := demoKeyedEnv(t)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := e.store.pool.Exec(e.ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`DROP INDEX proposals_one_pending_resolve`)
	exec(`DELETE FROM schema_migrations WHERE name = '0019_one_pending_resolve.sql'`)
	file := func(proposer string, item int64, state string) int64 {
		t.Helper()
		decided := map[bool]any{true: nil, false: clk.now}[state == "pending"]
		var id int64
		if err := e.store.pool.QueryRow(e.ctx, `INSERT INTO proposals (kind, target, args, proposer, proposer_role, state,
    decider, created_at, expires_at, decided_at)
VALUES ('resolve_exception', 'exception:' || $1::bigint, jsonb_build_object('ID', $1::bigint, 'Action', 'activate'),
        $2, 'operator', $3, CASE WHEN $3 = 'pending' THEN '' ELSE 'bob' END, $4, $5, $6)
RETURNING proposal_id`, item, proposer, state, clk.now, clk.now.Add(time.Hour), decided).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	file("alice", 1, "pending")
	file("carol", 1, "pending")
	kept := file("alice", 1, "pending")
	file("alice", 1, "rejected")
	other := file("alice", 2, "pending")
	bySystem := file("system", 3, "pending")
	keptSystem := file("system", 3, "pending")

	m := keyedEnv(t, url, keys, clk) // applies 0019
	for _, c := range []struct {
		q    string
		args []any
		want int64
	}{
		{`SELECT count(*) FROM proposals WHERE target = 'exception:1' AND state = 'pending' AND proposal_id = $1::bigint`, []any{kept}, 1},
		{`SELECT count(*) FROM proposals WHERE target = 'exception:1' AND state = 'pending'`, nil, 1},
		{`SELECT count(*) FROM proposals WHERE target = 'exception:1' AND state = 'rejected' AND decider = 'system'
AND decision_note LIKE '%' || $1::bigint || '%'`, []any{kept}, 2},
		{`SELECT count(*) FROM proposals WHERE proposal_id = $1::bigint AND state = 'pending'`, []any{other}, 1},
		{`SELECT count(*) FROM proposals WHERE proposal_id = $1::bigint AND state = 'rejected' AND decider = 'migration.0019'`, []any{bySystem}, 1},
		{`SELECT count(*) FROM proposals WHERE proposal_id = $1::bigint AND state = 'pending'`, []any{keptSystem}, 1},
		{`SELECT count(*) FROM audit_log WHERE method = 'migration.0019'`, nil, 3},
	} {
		if n := m.scalar(t, c.q, c.args...); n != c.want {
			t.Errorf("%s %v: %d, want %d", c.q, c.args, n, c.want)
		}
	}
}
