package postgres

import (
	"fmt"
	"strings"
	"testing"

	"mapfront/server/internal/mapfront"
)

// Settlement with the orders settled behind the matching and staging as one
// COPY: the early settling credits each order once, as the serial order
// would, fails a run cleanly, and staging refuses bad streams as before.

// Split orders whose two payments fall in different matching parts are sent
// to the early workers by both parts; single orders and a filling order
// ride along. Every order is credited once, the report counts are the
// serial ones, and re-runs (same file, forced other file) change nothing.
func TestSettleEarlySplitAcrossParts(t *testing.T) {
	e := newEnv(t)
	var recs []mapfront.SettlementRecord
	line := int64(0)
	cross := 0
	n := 40
	for i := 0; i < n; i++ {
		id := stlID(fmt.Sprintf("110105199001%05d", i))
		mobile := fmt.Sprintf("138%08d", i)
		t1, t2 := fmt.Sprintf("1%05d", i), fmt.Sprintf("2%05d", i)
		a := stlOpen(t, e, mobile, id, "1012", t1, 100000)
		b := stlOpen(t, e, mobile, id, "1012", t2, 50000)
		if a.OrderID != b.OrderID {
			t.Fatal("split in two orders")
		}
		r1 := stlRec(0, "A"+t1, 100000, t1, id, mobile, "1012")
		r2 := stlRec(0, "A"+t2, 50000, t2, id, mobile, "1012")
		if keyPart(&r1) != keyPart(&r2) {
			cross++
		}
		line++
		r1.LineNo = line
		recs = append(recs, r1)
		line++
		r2.LineNo = line
		recs = append(recs, r2)
		// a later duplicate line naming the first payment again (new 交易id)
		if i%5 == 0 {
			line++
			d := stlRec(line, "D"+t1, 100000, t1, id, mobile, "1012")
			recs = append(recs, d)
		}
	}
	t.Logf("%d of %d split orders cross the parts", cross, n)
	e.dayOver(t, "20261126")
	postings := e.scalar(t, `SELECT count(*) FROM postings`)
	r1, err := e.submit("20261126", "split", false, recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report %+v", *r1)
	if r1.Activated != int64(n) || r1.Merged != int64(n) || r1.Matched != int64(2*n) {
		t.Fatalf("report %+v", *r1)
	}
	if got := e.scalar(t, `SELECT count(*) FROM ledger_txns WHERE kind = 'activate'`); got != int64(n) {
		t.Fatalf("%d activation txns, want %d", got, n)
	}
	legs := e.scalar(t, `SELECT count(*) FROM postings`) - postings
	e.verify(t)
	r2, err := e.submit("20261126", "split", false, recs, nil)
	if err != nil || r2.Activated != r1.Activated || r2.Merged != r1.Merged || r2.Matched != r1.Matched {
		t.Fatalf("same file again: %v %+v", err, r2)
	}
	r3, err := e.submit("20261126", "split-forced", true, recs, nil)
	if err != nil || r3.Activated != r1.Activated || r3.Merged != r1.Merged || r3.Matched != r1.Matched {
		t.Fatalf("forced: %v %+v", err, r3)
	}
	if got := e.scalar(t, `SELECT count(*) FROM postings`) - postings; got != legs {
		t.Fatalf("re-runs posted %d more legs", got-legs)
	}
	e.verify(t)
}

// An error in the early settling (an order whose account is not pending:
// checkActivated refuses it) must fail the run with the early error, not
// the cancellation it caused, leave no partial money, and the run must be
// re-runnable once fixed.
func TestSettleEarlyErrorFailsRunCleanly(t *testing.T) {
	e := newEnv(t)
	var recs []mapfront.SettlementRecord
	var bad string
	for i := 0; i < 30; i++ {
		id := stlID(fmt.Sprintf("110105199002%05d", i))
		mobile := fmt.Sprintf("139%08d", i)
		term := fmt.Sprintf("3%05d", i)
		a := stlOpen(t, e, mobile, id, "1012", term, 150000)
		if i == 7 {
			bad = a.OrderID
		}
		recs = append(recs, stlRec(int64(i+1), "E"+term, 150000, term, id, mobile, "1012"))
	}
	if _, err := e.store.pool.Exec(e.ctx, `UPDATE accounts SET status = 'frozen'
WHERE account_id = (SELECT account_id FROM card_orders WHERE order_id = $1)`, bad); err != nil {
		t.Fatal(err)
	}
	e.dayOver(t, "20261126")
	_, err := e.submit("20261126", "err", false, recs, nil)
	t.Logf("first run: %v", err)
	if err == nil {
		t.Fatal("run with a frozen pending card settled")
	}
	if mapfront.ErrorCode(err) == mapfront.CodeBusy {
		t.Fatalf("reported as busy: %v", err)
	}
	t.Logf("credited so far: %d orders", e.scalar(t, `SELECT count(*) FROM card_orders WHERE credited`))
	e.verify(t)
	if _, err := e.store.pool.Exec(e.ctx, `UPDATE accounts SET status = 'pending'
WHERE account_id = (SELECT account_id FROM card_orders WHERE order_id = $1)`, bad); err != nil {
		t.Fatal(err)
	}
	r, err := e.submit("20261126", "err", false, recs, nil)
	if err != nil || r.Activated != 30 || r.Matched != 30 {
		t.Fatalf("re-run: %v %+v", err, r)
	}
	if got := e.scalar(t, `SELECT count(*) FROM ledger_txns WHERE kind = 'activate'`); got != 30 {
		t.Fatalf("%d activations", got)
	}
	e.verify(t)
}

// Orders whose other payment is opened from the file (the open pass) and a
// customer whose first order settles early while a second card of the same
// product is opened from the file.
func TestSettleEarlyVersusOpenPass(t *testing.T) {
	e := newEnv(t)
	idA, idB := stlID("11010519900401001"), stlID("11010519900401002")
	stlOpen(t, e, "13600000001", idA, "1012", "500001", 100000) // filling, rest opened from the file
	stlOpen(t, e, "13600000002", idB, "1012", "500002", 150000) // full, settles early
	e.dayOver(t, "20261126")
	recs := []mapfront.SettlementRecord{
		stlRec(1, "O1", 100000, "500001", idA, "13600000001", "1012"),
		stlRec(2, "O2", 150000, "500002", idB, "13600000002", "1012"),
		stlRec(3, "O3", 50000, "599991", idA, "13600000001", "1012"),  // joins A's filling order
		stlRec(4, "O4", 150000, "599992", idB, "13600000002", "1012"), // B's second card
		stlRec(5, "O5", 50000, "599993", idB, "13600000002", "1012"),  // overpays nothing: new filling order?
	}
	r, err := e.submit("20261126", "openpass", false, recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("matched %d opened %d merged %d activated %d ex %v", r.Matched, r.Opened, r.Merged, r.Activated, counts(r))
	t.Logf("activate txns %d", e.scalar(t, `SELECT count(*) FROM ledger_txns WHERE kind = 'activate'`))
	e.verify(t)
}

// Bad input to staging (one COPY for the whole stream): 10001 naming the
// fault, nothing credited, and the date settles afterwards with a good file.
func TestSettleStageBadInput(t *testing.T) {
	e := newEnv(t)
	var recs []mapfront.SettlementRecord
	for i := 0; i < 12; i++ {
		id := stlID(fmt.Sprintf("110105199003%05d", i))
		mobile := fmt.Sprintf("137%08d", i)
		term := fmt.Sprintf("4%05d", i)
		stlOpen(t, e, mobile, id, "1012", term, 150000)
		recs = append(recs, stlRec(int64(i+1), "B"+term, 150000, term, id, mobile, "1012"))
	}
	e.dayOver(t, "20261126")
	base := e.scalar(t, `SELECT count(*) FROM card_orders WHERE credited`)
	dup := append([]mapfront.SettlementRecord(nil), recs...)
	dup[9].LineNo = 3
	_, err := e.submit("20261126", "dup", false, dup, nil)
	wantBadStream(t, "duplicate line", err, "行号重复")
	zero := append([]mapfront.SettlementRecord(nil), recs...)
	zero[9].LineNo = 0
	_, err = e.submit("20261126", "zero", false, zero, nil)
	wantBadStream(t, "line 0", err, "须为正整数")
	_, err = e.submit("20261126", "bl", false, recs, []mapfront.BadLine{{LineNo: -1, Reason: "x", Text: "y"}})
	wantBadStream(t, "bad line -1", err, "须为正整数")
	if n := e.scalar(t, `SELECT count(*) FROM card_orders WHERE credited`); n != base {
		t.Fatalf("%d credited after failed runs", n)
	}
	r, err := e.submit("20261126", "good", false, recs, nil)
	if err != nil || r.Activated != 12 {
		t.Fatalf("good file: %v %+v", err, r)
	}
	e.verify(t)
}

// wantBadStream fails unless err is 10001 with why in its message.
func wantBadStream(t *testing.T, what string, err error, why string) {
	t.Helper()
	if mapfront.ErrorCode(err) != mapfront.CodeMalformed || !strings.Contains(err.Error(), why) {
		t.Fatalf("%s: %v, want 10001 %s", what, err, why)
	}
}
