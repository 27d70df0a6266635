package postgres

import (
	"strings"
	"testing"
	"time"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// TestAuditEveryChange: each AdminService and queue change leaves exactly
// one record naming the actor, in its transaction; a refused one leaves one
// with its errcode; no record holds a password, a key or a whole ID number.
func TestAuditEveryChange(t *testing.T) {
	e := newEnv(t)
	actor := audit.Actor{Identity: "ops1", Role: "operator", Method: "/mapfront.v1.AdminService/X"}
	ctx := audit.WithActor(e.ctx, actor)
	const mobile = "13912345678"
	const newID = "110105194912310038"
	cases := []struct {
		op, target, outcome string
		errcode             int
		do                  func() error
	}{
		{"CreateCustomer", "customer:13800000009", audit.OK, 0, func() error {
			_, err := e.admin.CreateCustomer(ctx, "13800000009", newID)
			return err
		}},
		{"SetPaymentPassword", "customer:" + mobile, audit.OK, 0, func() error { return e.admin.SetPaymentPassword(ctx, mobile, "654321") }},
		{"ResetPaymentPassword", "customer:" + mobile, audit.OK, 0, func() error { return e.admin.ResetPaymentPassword(ctx, mobile) }},
		{"UnlockPaymentPassword", "customer:" + mobile, audit.OK, 0, func() error { return e.admin.UnlockPaymentPassword(ctx, mobile) }},
		{"TopUpCash", "customer:" + mobile, audit.OK, 0, func() error {
			_, _, err := e.admin.TopUpCash(ctx, mobile, 100, "audit-1")
			return err
		}},
		{"TopUpCash", "customer:13700000000", audit.Refused, int(mapfront.CodeNotFound), func() error {
			_, _, err := e.admin.TopUpCash(ctx, "13700000000", 100, "audit-2")
			return err
		}},
		{"FreezeAccount", "account:1010123412341234", audit.OK, 0, func() error { return e.admin.SetAccountFrozen(ctx, "1010123412341234", true) }},
		{"UnfreezeAccount", "account:1010123412341234", audit.OK, 0, func() error { return e.admin.SetAccountFrozen(ctx, "1010123412341234", false) }},
		{"UpsertSeller", "seller:SH99", audit.OK, 0, func() error { return e.admin.UpsertSeller(ctx, "SH99", "s", true) }},
		{"UpsertStore", "store:SH99/ST99", audit.OK, 0, func() error { return e.admin.UpsertStore(ctx, "SH99", "ST99", "s", true) }},
		{"UpsertTerminal", "terminal:POS99", audit.OK, 0, func() error {
			_, err := e.admin.UpsertTerminal(ctx, mapfront.TerminalSpec{TerminalID: "POS99", SellerID: "SH99", StoreID: "ST99", Enabled: true, TPKHex: testTPK})
			return err
		}},
		{"UpsertProduct", "product:2020", audit.OK, 0, func() error {
			_, err := e.admin.UpsertProduct(ctx, mapfront.Product{ID: "2020", Name: "p", ShortName: "p", Price: 100, FaceValue: 100, Kind: mapfront.Discount, OnSale: true})
			return err
		}},
		{"ResolveException", "exception:999", audit.Refused, int(mapfront.CodeNoOriginal), func() error {
			_, _, err := e.admin.ResolveException(ctx, mapfront.Resolution{ID: 999, Action: mapfront.ActionIgnore, Operator: "ops1"})
			return err
		}},
	}
	for _, c := range cases {
		before, err := e.store.ListAudit(e.ctx, audit.Filter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		err = c.do()
		if (err == nil) != (c.outcome == audit.OK) {
			t.Fatalf("%s: %v", c.op, err)
		}
		after, err := e.store.ListAudit(e.ctx, audit.Filter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before)+1 {
			t.Fatalf("%s: %d records added, want 1", c.op, len(after)-len(before))
		}
		r := after[0]
		if r.Identity != actor.Identity || r.Role != actor.Role || r.Method != actor.Method || r.Target != c.target ||
			r.Outcome != c.outcome || r.Errcode != c.errcode || !r.At.Equal(e.clock.now) {
			t.Errorf("%s: record %+v", c.op, r)
		}
		for _, secret := range []string{"654321", testTPK, newID, "0123456789"} {
			if strings.Contains(r.Args, secret) {
				t.Errorf("%s: args %s hold a secret", c.op, r.Args)
			}
		}
	}

	// Filters: by identity, by target, by time.
	byTarget, err := e.store.ListAudit(e.ctx, audit.Filter{Identity: "ops1", Target: "customer:" + mobile})
	if err != nil || len(byTarget) != 4 {
		t.Errorf("target filter: %d records, %v; want 4", len(byTarget), err)
	}
	if got, _ := e.store.ListAudit(e.ctx, audit.Filter{Identity: "nobody"}); len(got) != 0 {
		t.Errorf("identity filter: %d records for nobody", len(got))
	}
	if got, _ := e.store.ListAudit(e.ctx, audit.Filter{Identity: "ops1", Since: e.clock.now.Add(time.Second)}); len(got) != 0 {
		t.Errorf("since filter: %d records after the clock", len(got))
	}
	if got, _ := e.store.ListAudit(e.ctx, audit.Filter{Identity: "ops1", Until: e.clock.now.Add(time.Second), Limit: 3}); len(got) != 3 {
		t.Errorf("until filter with limit 3: %d records", len(got))
	}
	// A change without an RPC (the demo loader) is recorded as local.
	if got, _ := e.store.ListAudit(e.ctx, audit.Filter{Identity: audit.Local, Limit: 1000}); len(got) == 0 {
		t.Error("the demo loader's changes are not in the audit trail")
	}
}

// TestAuditAppendOnly: the database refuses to change or remove a record,
// whoever asks.
func TestAuditAppendOnly(t *testing.T) {
	e := newEnv(t)
	if err := e.admin.UnlockPaymentPassword(e.ctx, "13912345678"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE audit_log SET identity = 'someone else'`,
		`DELETE FROM audit_log`,
		`TRUNCATE audit_log`,
	} {
		if _, err := e.store.Pool().Exec(e.ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want a refusal", q, err)
		}
	}
	var n int
	if err := e.store.Pool().QueryRow(e.ctx, `SELECT count(*) FROM audit_log WHERE identity <> 'someone else'`).Scan(&n); err != nil || n == 0 {
		t.Errorf("records after the attempts: %d, %v", n, err)
	}
}
