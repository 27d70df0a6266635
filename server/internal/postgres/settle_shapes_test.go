package postgres

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
)

// Settlement's activation through the ledger trigger (migration 0014): every
// shape of card ends with its account active at the order's activation time.

// accOrd is, for the order's card account: status, the
// account's activated_at, the order's activated_at, the order's status and
// credited, and the settlement_activations activated_at (nil when none).
type accOrd struct {
	accStatus, ordStatus string
	accAt, ordAt, actAt  *time.Time
	credited             bool
	balance              int64
}

func loadAccOrd(t *testing.T, e *env, orderID string) accOrd {
	t.Helper()
	var r accOrd
	if err := e.store.pool.QueryRow(e.ctx, `SELECT a.status, a.activated_at, o.activated_at, o.status, o.credited, a.balance,
       (SELECT s.activated_at FROM settlement_activations s WHERE s.order_id = o.order_id)
FROM card_orders o JOIN accounts a USING (account_id) WHERE o.order_id = $1`, orderID).Scan(
		&r.accStatus, &r.accAt, &r.ordAt, &r.ordStatus, &r.credited, &r.balance, &r.actAt); err != nil {
		t.Fatal(err)
	}
	return r
}

func sameAt(a, b *time.Time) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && a.Equal(*b))
}

// Settlement: a one-payment card, a split order (two payments), and an
// installment card whose first part is 0 fen (face 50 fen in 100 parts: no
// leg of its own). Each must end active with the account's activated_at equal
// to the order's and to settlement_activations'; re-runs change nothing.
func TestSettleActivationShapes(t *testing.T) {
	e := newEnv(t)
	if _, err := e.admin.UpsertProduct(e.ctx, mapfront.Product{ID: "2031", Name: "零首期", ShortName: "零首期",
		Price: 50, FaceValue: 50, Kind: mapfront.Installment, Installments: 100, OnSale: true}); err != nil {
		t.Fatal(err)
	}
	idA, idB, idC := stlID("11010519900101061"), stlID("11010519900101062"), stlID("11010519900101063")
	a := stlOpen(t, e, "13800000061", idA, "1012", "000061", 150000)
	b1 := stlOpen(t, e, "13800000062", idB, "1012", "000062", 100000)
	b2 := stlOpen(t, e, "13800000062", idB, "1012", "000063", 50000)
	if b1.OrderID != b2.OrderID {
		t.Fatalf("split payments in two orders %s %s", b1.OrderID, b2.OrderID)
	}
	c := stlOpen(t, e, "13800000063", idC, "2031", "000064", 50)
	recs := []mapfront.SettlementRecord{
		stlRec(1, "P1", 150000, "000061", idA, "13800000061", "1012"),
		stlRec(2, "P2", 100000, "000062", idB, "13800000062", "1012"),
		stlRec(3, "P3", 50000, "000063", idB, "13800000062", "1012"),
		stlRec(4, "P4", 50, "000064", idC, "13800000063", "2031"),
	}
	e.dayOver(t, "20261126")
	r, err := e.submit("20261126", "probe", false, recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: matched %d opened %d merged %d activated %d exceptions %v", r.Matched, r.Opened, r.Merged, r.Activated, counts(r))
	if r.Activated != 3 || r.Merged != 1 {
		t.Errorf("report %+v", r)
	}
	for _, o := range []struct {
		id      string
		balance int64
	}{{a.OrderID, 200000}, {b1.OrderID, 200000}, {c.OrderID, 0}} {
		x := loadAccOrd(t, e, o.id)
		t.Logf("order %s: account %s at %v, order %s credited %v at %v, activation at %v, balance %d",
			o.id, x.accStatus, x.accAt, x.ordStatus, x.credited, x.ordAt, x.actAt, x.balance)
		if x.accStatus != "active" || x.ordStatus != "active" || !x.credited || x.balance != o.balance ||
			x.accAt == nil || !sameAt(x.accAt, x.ordAt) || !sameAt(x.accAt, x.actAt) || !x.accAt.Equal(e.clock.now) {
			t.Errorf("order %s: %+v", o.id, x)
		}
	}
	before := e.scalar(t, `SELECT count(*) FROM postings`)
	// The same file again, then another file forced with the same records.
	if r2, err := e.submit("20261126", "probe", false, recs, nil); err != nil || !r2.Repeated || r2.Activated != 3 {
		t.Errorf("same file again: %v %+v", err, r2)
	}
	e.clock.now = e.clock.now.Add(time.Hour)
	if r3, err := e.submit("20261126", "probe2", true, recs, nil); err != nil || r3.Activated != 3 {
		t.Errorf("forced: %v %+v", err, r3)
	} else {
		t.Logf("forced report: activated %d exceptions %v", r3.Activated, counts(r3))
	}
	if after := e.scalar(t, `SELECT count(*) FROM postings`); after != before {
		t.Errorf("re-runs posted %d legs", after-before)
	}
	e.verify(t)
}

// A credited order whose account is not pending (a writer that broke the
// pairing of order and account; none does today) is not activated by the
// ledger trigger (0014): settlement refuses the slice rather than credit a
// card no one can spend while the report says activated, and nothing moves.
func TestSettleRefusesToCreditAnAccountNotPending(t *testing.T) {
	e := newEnv(t)
	id := stlID("11010519900101071")
	o := stlOpen(t, e, "13800000071", id, "1012", "000071", 150000)
	if _, err := e.store.pool.Exec(e.ctx, `UPDATE accounts SET status = 'frozen'
WHERE account_id = (SELECT account_id FROM card_orders WHERE order_id = $1)`, o.OrderID); err != nil {
		t.Fatal(err)
	}
	postings := e.scalar(t, `SELECT count(*) FROM postings`)
	e.dayOver(t, "20261126")
	_, err := e.submit("20261126", "frozen", false, []mapfront.SettlementRecord{
		stlRec(1, "P1", 150000, "000071", id, "13800000071", "1012")}, nil)
	if err == nil || !strings.Contains(err.Error(), "is not active") {
		t.Fatalf("settlement of a card whose account is frozen: %v, want refused", err)
	}
	if got := e.scalar(t, `SELECT count(*) FROM postings`); got != postings {
		t.Fatalf("%d legs posted by a refused settlement", got-postings)
	}
	if x := loadAccOrd(t, e, o.OrderID); x.ordStatus != "pending" || x.credited || x.balance != 0 {
		t.Fatalf("after the refusal: %+v", x)
	}
	e.verify(t)
}

// Orders are settled behind the matching (activateEarly) only when no later
// record of the run can change their verdict: every paid payment confirmed
// and the order not filling. The pass after matching settles the rest and
// skips what the run already counted: no order is credited twice.
func TestSettleEarlyTakesOnlyFinalOrders(t *testing.T) {
	e := newEnv(t)
	idA, idB, idC := stlID("11010519900101081"), stlID("11010519900101082"), stlID("11010519900101083")
	a := stlOpen(t, e, "13800000081", idA, "1012", "000081", 150000)  // one payment, confirmed
	b1 := stlOpen(t, e, "13800000082", idB, "1012", "000082", 100000) // split: one half confirmed first
	b2 := stlOpen(t, e, "13800000082", idB, "1012", "000083", 50000)
	c := stlOpen(t, e, "13800000083", idC, "1012", "000084", 100000) // filling: 1000.00 of 1500.00
	if b1.OrderID != b2.OrderID {
		t.Fatalf("split payments in two orders %s %s", b1.OrderID, b2.OrderID)
	}
	e.dayOver(t, "20261126")
	d, _ := mapfront.ParseDate("20261126")
	set := mapfront.DefaultSettings()
	r, _, err := e.store.startRun(e.ctx, &mapfront.BatchHeader{BusinessDate: d, FileName: "early",
		SHA256: strings.Repeat("ab", 32), Settings: &set})
	if err != nil {
		t.Fatal(err)
	}
	confirm := func(terminalOrderIDs ...string) {
		t.Helper()
		if _, err := e.store.pool.Exec(e.ctx, `UPDATE card_payments SET settled = true WHERE terminal_order_id = ANY($1)`,
			terminalOrderIDs); err != nil {
			t.Fatal(err)
		}
	}
	settle := func(early bool, ids ...string) {
		t.Helper()
		if err := e.store.settleTx(e.ctx, func(tx pgx.Tx) error { return e.store.settleOrders(e.ctx, tx, r, ids, early) }); err != nil {
			t.Fatal(err)
		}
	}
	activations := func(id string) int64 {
		return e.scalar(t, `SELECT count(*) FROM settlement_activations WHERE order_id = $1`, id)
	}
	confirm("000081", "000082", "000084")
	postings := e.scalar(t, `SELECT count(*) FROM postings`)
	settle(true, a.OrderID, b1.OrderID, c.OrderID)
	legs := e.scalar(t, `SELECT count(*) FROM postings`) - postings // one activation's
	if activations(a.OrderID) != 1 || activations(b1.OrderID) != 0 || activations(c.OrderID) != 0 {
		t.Fatalf("early: activations a %d b %d c %d, want 1 0 0", activations(a.OrderID), activations(b1.OrderID),
			activations(c.OrderID))
	}
	if x := loadAccOrd(t, e, b1.OrderID); x.ordStatus != "pending" || x.credited || x.balance != 0 {
		t.Fatalf("early took the split order with a half unconfirmed: %+v", x)
	}
	postings += legs
	confirm("000083")
	settle(false, a.OrderID, b1.OrderID, c.OrderID)
	if got := e.scalar(t, `SELECT count(*) FROM postings`) - postings; legs == 0 || got != legs {
		t.Fatalf("the pass after matching posted %d legs, want %d (the split order's activation only)", got, legs)
	}
	if n := e.scalar(t, `SELECT payments FROM settlement_activations WHERE order_id = $1`, b1.OrderID); n != 2 {
		t.Fatalf("split order counted with %d payments, want 2", n)
	}
	for _, o := range []string{a.OrderID, b1.OrderID} {
		if x := loadAccOrd(t, e, o); x.accStatus != "active" || !x.credited || x.balance != 200000 {
			t.Fatalf("order %s: %+v", o, x)
		}
	}
	if x := loadAccOrd(t, e, c.OrderID); x.ordStatus != "pending" || x.credited || activations(c.OrderID) != 0 {
		t.Fatalf("filling order: %+v", x)
	}
	e.verify(t)
}
