package postgres

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// A NUL byte (valid in a proto3 string, refused by PostgreSQL text) in an
// admin argument that reaches the store without the gRPC edge (the console,
// in-process callers) is the caller's mistake, 10001, never 10000; nothing
// moves, and a refused change keeps its audit record (the NUL written as
// U+FFFD).
func TestAdminNULArgumentMalformed(t *testing.T) {
	e := newEnv(t)
	adm := as(e.ctx, "alice", "admin")
	op := as(e.ctx, "olga", "operator")
	const mobile = "13912345678"
	c, err := e.store.GetCustomer(e.ctx, mobile)
	if err != nil {
		t.Fatal(err)
	}
	cash := c.Accounts[0].ID
	before := e.balance(t, cash)

	cases := []struct {
		name string
		call func() error
	}{
		{"TopUpCash reference", func() error {
			_, _, _, err := e.admin.SubmitTopUp(adm, mobile, 100, "ref\x00x")
			return err
		}},
		{"GetCustomer mobileNum", func() error { _, err := e.admin.GetCustomer(op, "139\x00"); return err }},
		{"UnlockPaymentPassword mobileNum", func() error { return e.admin.UnlockPaymentPassword(op, "139\x00") }},
		{"ResetPaymentPassword mobileNum", func() error { return e.admin.ResetPaymentPassword(op, "139\x00") }},
		{"SetPaymentPassword mobileNum", func() error { return e.admin.SetPaymentPassword(op, "139\x00", "123456") }},
		{"FreezeAccount accountId", func() error { return e.admin.SetAccountFrozen(op, "10\x00", true) }},
		{"GetOrder orderId", func() error { _, err := e.admin.GetOrder(op, "ud\x00"); return err }},
		{"ListStatement accountId", func() error { _, _, err := e.admin.ListStatement(op, "10\x00", 10); return err }},
		{"LiftTerminalSuspension terminalId", func() error { _, err := e.admin.LiftTerminalSuspension(adm, "POS\x00"); return err }},
		{"UpsertSeller name", func() error { return e.admin.UpsertSeller(adm, "SHX", "n\x00", true) }},
		{"UpsertStore sellerId", func() error { return e.admin.UpsertStore(adm, "SH\x00", "STX", "n", true) }},
		{"UpsertTerminal storeId", func() error {
			_, err := e.admin.UpsertTerminal(adm, mapfront.TerminalSpec{TerminalID: "TX1", SellerID: "SH01", StoreID: "S\x00", Enabled: true})
			return err
		}},
		{"ListAudit target", func() error { _, err := e.admin.ListAudit(adm, audit.Filter{Target: "x\x00"}); return err }},
		{"ListProposals target", func() error {
			_, err := e.admin.ListProposals(adm, mapfront.ProposalFilter{Target: "x\x00"})
			return err
		}},
	}
	for _, c := range cases {
		if err := c.call(); mapfront.ErrorCode(err) != mapfront.CodeMalformed {
			t.Errorf("%s with a NUL byte: %v (errcode %d), want 10001", c.name, err, mapfront.ErrorCode(err))
		}
	}
	if b := e.balance(t, cash); b != before {
		t.Fatalf("balance moved: %d -> %d", before, b)
	}
	trail, err := e.store.ListAudit(e.ctx, audit.Filter{Target: "customer:" + mobile, Identity: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(trail) != 1 || trail[0].Method != "test" || trail[0].Outcome != audit.Refused ||
		trail[0].Errcode != int(mapfront.CodeMalformed) || !strings.Contains(trail[0].Args, `"reference": "ref`+"\uFFFD"+`x"`) {
		t.Fatalf("audit of the refused top-up: %+v", trail)
	}
	// The refused freeze is recorded on its target, the NUL as U+FFFD.
	trail, err = e.store.ListAudit(e.ctx, audit.Filter{Target: "account:10\uFFFD"})
	if err != nil || len(trail) != 1 || trail[0].Identity != "olga" || trail[0].Errcode != int(mapfront.CodeMalformed) {
		t.Fatalf("audit of the refused freeze: %v %+v", err, trail)
	}
}

// The audit writer never fails on U+0000: in the target, in a string
// argument, in a key, nested; other values keep their text.
func TestAuditWriterNUL(t *testing.T) {
	e := newEnv(t)
	ctx := audit.WithActor(e.ctx, audit.Actor{Identity: "ops\x00x", Role: "operator", Method: "/mapfront.v1.AdminService/X"})
	c := audit.Change{Op: "X", Target: "customer:139\x00", Args: map[string]any{
		"reference": "a\x00b", "k\x00": 1, "big": int64(1) << 60, "literal": `\u0000`,
		"nested": map[string]any{"list": []any{"x\x00", 2.5}},
		"action": mapfront.TopUp{Mobile: "139\x00", Amount: 7, Reference: "r"},
	}}
	if err := e.store.inTx(e.ctx, func(tx pgx.Tx) error { return e.store.writeAudit(ctx, tx, c, nil) }); err != nil {
		t.Fatalf("audit record with NUL args: %v", err)
	}
	e.store.AuditRefusal(ctx, c, mapfront.Invalid("reference", "含有控制字符U+0000"))
	trail, err := e.store.ListAudit(e.ctx, audit.Filter{Target: "customer:139\uFFFD"})
	if err != nil || len(trail) != 2 {
		t.Fatalf("records: %v %+v", err, trail)
	}
	if r := trail[0]; r.Outcome != audit.Refused || r.Errcode != int(mapfront.CodeMalformed) || r.Identity != "ops\uFFFDx" {
		t.Errorf("refusal record %+v", r)
	}
	for _, want := range []string{`"reference": "a` + "\uFFFD" + `b"`, `"k` + "\uFFFD" + `": 1`, `"big": 1152921504606846976`,
		`"literal": "\\u0000"`, `"list": ["x` + "\uFFFD" + `", 2.5]`, `"mobile": "139` + "\uFFFD" + `"`} {
		if !strings.Contains(trail[1].Args, want) {
			t.Errorf("args %s: want %s", trail[1].Args, want)
		}
	}
}
