package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// Issue 15: a file of nothing but bad lines is a rejected batch (nothing
// applied, nothing filed) and the corrected file then settles without
// force; a NUL byte in a bad line's text is stored, not fatal.
func TestSettleRejectedThenCorrected(t *testing.T) {
	e := newEnv(t)
	id := stlID("11010519900101061")
	stlOpen(t, e, "13800000061", id, "1012", "000061", 150000)
	e.dayOver(t, "20261126")
	bad := []mapfront.BadLine{
		{LineNo: 1, Reason: "field_count: 3 fields", Text: "a|b\x00|c"},
		{LineNo: 2, Reason: "bad_amount: x", Text: "garbage"},
	}
	r, err := e.submit("20261126", "garbage", false, nil, bad)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != mapfront.BatchRejected || r.BadLines != 2 || r.Records != 2 || !strings.Contains(r.Detail, "2行") {
		t.Fatalf("report %+v, want rejected", r)
	}
	for q, want := range map[string]int64{
		`SELECT count(*) FROM settlement_exceptions`: 0, `SELECT count(*) FROM settlement_trades`: 0,
		`SELECT count(*) FROM settlement_staging`:                                            0,
		`SELECT count(*) FROM settlement_batches WHERE status = 'rejected' AND detail <> ''`: 1,
	} {
		if n := e.scalar(t, q); n != want {
			t.Errorf("%s: %d, want %d", q, n, want)
		}
	}
	if b, err := e.store.GetBatch(e.ctx, r.BusinessDate); err != nil || b.Status != mapfront.BatchRejected {
		t.Fatalf("GetBatch: %v %+v", err, b)
	}
	// The corrected file: one record, and one line still bad (with a NUL),
	// which is under the share that rejects.
	good := []mapfront.SettlementRecord{stlRec(1, "T61", 150000, "000061", id, "13800000061", "1012")}
	r, err = e.submit("20261126", "corrected", false, good, []mapfront.BadLine{{LineNo: 2, Reason: "bad_field: x", Text: "T|\x00|y"}})
	if err != nil {
		t.Fatalf("corrected file without force: %v", err)
	}
	if r.Status != mapfront.BatchSettled || r.Matched != 1 || r.Activated != 1 || r.BadLines != 1 {
		t.Fatalf("report %+v", r)
	}
	items, err := e.store.ListExceptions(e.ctx, mapfront.ExceptionFilter{})
	if err != nil || len(items) != 1 || items[0].Type != mapfront.ExBadLine || items[0].LineNo != 2 ||
		!strings.Contains(items[0].Detail, "T|\uFFFD|y") {
		t.Fatalf("items %v %+v", err, items)
	}
	e.verify(t)
}

// Issue 13: each record's time must fall within the batch's business day
// widened by the tolerance; a record outside it is date_mismatch, applied
// to nothing.
func TestSettleRecordDates(t *testing.T) {
	e := newEnv(t)
	type line struct {
		date, time string
		want       mapfront.ExceptionType // "" = confirmed
	}
	lines := []line{
		{"20261126", "120000", ""},
		{"20261125", "235000", ""},                      // 10 minutes before the cutover that starts the day
		{"20261127", "001000", ""},                      // 10 minutes past the cutover that ends it
		{"20261125", "120000", mapfront.ExDateMismatch}, // a day early
		{"20261129", "120000", mapfront.ExDateMismatch}, // three days late
	}
	var recs []mapfront.SettlementRecord
	for i, l := range lines {
		serial := "00007" + string(rune('0'+i))
		mobile := "1380000007" + string(rune('0'+i))
		id := stlID("1101051990010107" + string(rune('0'+i)))
		stlOpen(t, e, mobile, id, "1012", serial, 150000)
		r := stlRec(int64(i+1), "T7"+string(rune('0'+i)), 150000, serial, id, mobile, "1012")
		r.TradeDate, r.TradeTime = l.date, l.time
		recs = append(recs, r)
	}
	e.dayOver(t, "20261126")
	r, err := e.submit("20261126", "dates", false, recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Matched != 3 || r.Activated != 3 || counts(r)[mapfront.ExDateMismatch] != [2]int64{2, 300000} {
		t.Fatalf("report %+v", r)
	}
	items, err := e.store.ListExceptions(e.ctx, mapfront.ExceptionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]mapfront.ExceptionType{}
	for _, x := range items {
		got[x.LineNo] = x.Type
	}
	for i, l := range lines {
		if got[int64(i+1)] != l.want {
			t.Errorf("line %d (%s %s): %q, want %q", i+1, l.date, l.time, got[int64(i+1)], l.want)
		}
	}
	if n := e.scalar(t, `SELECT count(*) FROM card_payments WHERE settled`); n != 3 {
		t.Errorf("%d payments settled, want 3", n)
	}
	e.verify(t)
}

// Issue 13: a payment made at 23:59:30 of D-1, missing from D-1's file and
// present in D's, is confirmed on D; its D-1 item is resolved by the system
// naming D's batch, and the card is credited exactly once.
func TestSettleCrossDay(t *testing.T) {
	e := newEnv(t)
	zone := e.clock.now.Location()
	e.clock.now = time.Date(2026, 11, 25, 23, 59, 30, 0, zone)
	id := stlID("11010519900101081")
	const mobile = "13800000081"
	stlOpen(t, e, mobile, id, "1012", "000081", 150000)
	e.dayOver(t, "20261125")
	r, err := e.submit("20261125", "d1", false, nil, nil)
	if err != nil || counts(r)[mapfront.ExMissing] != [2]int64{1, 150000} {
		t.Fatalf("D-1: %v %+v", err, r)
	}
	rec := stlRec(1, "T81", 150000, "000081", id, mobile, "1012")
	rec.TradeDate, rec.TradeTime = "20261125", "235930"
	e.dayOver(t, "20261126")
	r, err = e.submit("20261126", "d", false, []mapfront.SettlementRecord{rec}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Matched != 1 || r.Activated != 1 || r.AutoResolved != 1 || len(counts(r)) != 0 {
		t.Fatalf("D: %+v", r)
	}
	items, err := e.store.ListExceptions(e.ctx, mapfront.ExceptionFilter{})
	if err != nil || len(items) != 1 {
		t.Fatalf("items %v %+v", err, items)
	}
	x := items[0]
	if x.Type != mapfront.ExMissing || x.State != mapfront.ExceptionResolved || x.Operator != mapfront.SystemOperator ||
		x.ResolvedByBatch == nil || mapfront.DateString(*x.ResolvedByBatch) != "20261126" || !strings.Contains(x.Note, "20261126") {
		t.Fatalf("D-1 item %+v", x)
	}
	if a := e.cardOf(t, mobile, "1012"); a.Balance != 200000 || a.Status != mapfront.Active {
		t.Fatalf("card %+v", a)
	}
	// The automatic resolution is in the audit trail, by the system, naming
	// the batch that resolved it.
	trail, err := e.store.ListAudit(e.ctx, audit.Filter{Target: fmt.Sprintf("exception:%d", x.ID)})
	if err != nil || len(trail) != 1 || trail[0].Identity != mapfront.SystemOperator ||
		trail[0].Method != "settlement.AutoResolve" || !strings.Contains(trail[0].Args, "20261126") {
		t.Fatalf("audit of the automatic resolution: %v %+v", err, trail)
	}
	// The same record in a forced re-run of D, and D-1 re-run with it: the
	// card is still credited once.
	if _, err := e.submit("20261126", "d-again", true, []mapfront.SettlementRecord{rec}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.submit("20261125", "d1-again", true, []mapfront.SettlementRecord{rec}, nil); err != nil {
		t.Fatal(err)
	}
	if n := e.scalar(t, `SELECT count(*) FROM settlement_activations`); n != 1 {
		t.Fatalf("%d activations, want 1", n)
	}
	if a := e.cardOf(t, mobile, "1012"); a.Balance != 200000 {
		t.Fatalf("card %+v after re-runs", a)
	}
	e.verify(t)
}

// Issue 13: a record for a payment never opened that would take the
// customer's pending order past its price is one overpaid item naming the
// order, with what the order could still take; the order keeps what it had.
func TestSettleOverpaidOrder(t *testing.T) {
	e := newEnv(t)
	id := stlID("11010519900101091")
	const mobile = "13800000091"
	a := stlOpen(t, e, mobile, id, "1012", "000091", 100000) // 1500.00 card, 1000.00 paid
	recs := []mapfront.SettlementRecord{
		stlRec(1, "T91", 100000, "000091", id, mobile, "1012"),
		stlRec(2, "T92", 100000, "000092", id, mobile, "1012"), // never opened: 2000.00 in all
	}
	e.dayOver(t, "20261126")
	r, err := e.submit("20261126", "over", false, recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Matched != 1 || r.Opened != 0 || r.Activated != 0 || counts(r)[mapfront.ExOverpaid] != [2]int64{1, 100000} {
		t.Fatalf("report %+v", r)
	}
	items, err := e.store.ListExceptions(e.ctx, mapfront.ExceptionFilter{})
	if err != nil || len(items) != 1 {
		t.Fatalf("items %v %+v", err, items)
	}
	if x := items[0]; x.Type != mapfront.ExOverpaid || x.OrderID != a.OrderID || x.Expected != 50000 ||
		x.LineNo != 2 || !strings.Contains(x.Detail, "超出500.00元") {
		t.Fatalf("item %+v", x)
	}
	if n := e.scalar(t, `SELECT paid FROM card_orders WHERE order_id = $1`, a.OrderID); n != 100000 {
		t.Fatalf("order paid %d, want 100000", n)
	}
	if n := e.scalar(t, `SELECT count(*) FROM card_payments WHERE order_id = $1`, a.OrderID); n != 1 {
		t.Fatalf("%d payments on the order, want 1", n)
	}
	e.verify(t)
}
