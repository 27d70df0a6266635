package postgres

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pinblock"
)

// stlID completes 17 digits with their GB 11643 check character.
func stlID(body string) string {
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(body[i]-'0') * weights[i]
	}
	return body + string("10X98765432"[sum%11])
}

// stlSHA is a stand-in file digest: what matters is same or different.
func stlSHA(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:])
}

// stlRec is a file record of terminal SH01/POS01, batch 000001.
func stlRec(line int64, trade string, amount int64, termOrder, id, mobile, product string) mapfront.SettlementRecord {
	return mapfront.SettlementRecord{LineNo: line, TradeID: trade, CardNo: "6225380083477614", Amount: amount,
		TerminalOrderID: termOrder, ReferenceNo: "152412390951", SellerID: "SH01", TerminalID: "POS01",
		BatchNo: "000001", TradeDate: "20261126", TradeTime: "152412", IDNumber: id, Mobile: mobile,
		Referrer: "R1", ProductID: product}
}

// stlOpen is an open_card on SH01/ST01/POS01, batch 000001.
func stlOpen(t *testing.T, e *env, mobile, id, product, termOrder string, paySum int64) *mapfront.CardOrderAnswer {
	t.Helper()
	a, err := e.svc.OpenCard(e.ctx, &mapfront.OpenCardRequest{
		Origin:  mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op1"},
		BatchNo: "000001", TerminalOrderID: termOrder, IDNumber: id, Mobile: mobile, ProductID: product,
		PaySum: paySum, HasPaySum: true,
	})
	if err != nil {
		t.Fatalf("open_card %s: %v", termOrder, err)
	}
	return a
}

// submit streams records and bad lines to SubmitBatch two at a time, so
// that every test crosses chunk boundaries.
func (e *env) submit(day, file string, force bool, recs []mapfront.SettlementRecord, bad []mapfront.BadLine) (*mapfront.BatchReport, error) {
	d, err := mapfront.ParseDate(day)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, r := range recs {
		total += r.Amount
	}
	h := mapfront.BatchHeader{BusinessDate: d, FileName: file + ".txt", SHA256: stlSHA(file),
		RecordCount: int64(len(recs) + len(bad)), TotalFen: total, Force: force}
	i, j := 0, 0
	next := func() (*mapfront.BatchChunk, error) {
		if i >= len(recs) && j >= len(bad) {
			return nil, io.EOF
		}
		c := &mapfront.BatchChunk{}
		for k := 0; k < 2 && i < len(recs); k++ {
			c.Records = append(c.Records, recs[i])
			i++
		}
		if len(c.Records) < 2 && j < len(bad) {
			c.BadLines = append(c.BadLines, bad[j])
			j++
		}
		return c, nil
	}
	return e.store.SubmitBatch(e.ctx, h, next)
}

// dayOver moves the clock to 00:30 after business day day, when its
// settlement runs: a day still going cannot be settled.
func (e *env) dayOver(t *testing.T, day string) {
	t.Helper()
	d, err := mapfront.ParseDate(day)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.now = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 30, 0, 0, e.clock.now.Location())
}

// counts is a report's exceptions as type → [count, amount].
func counts(r *mapfront.BatchReport) map[mapfront.ExceptionType][2]int64 {
	m := map[mapfront.ExceptionType][2]int64{}
	for _, c := range r.Exceptions {
		if c.Count != 0 {
			m[c.Type] = [2]int64{c.Count, c.Amount}
		}
	}
	return m
}

func (e *env) scalar(t *testing.T, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.store.pool.QueryRow(e.ctx, q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// cardOf returns the customer's card account of a product.
func (e *env) cardOf(t *testing.T, mobile, product string) mapfront.AccountView {
	t.Helper()
	c, err := e.store.GetCustomer(e.ctx, mobile)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Accounts {
		if a.Kind == "card" && a.ProductID == product {
			return a
		}
	}
	t.Fatalf("customer %s has no card of %s", mobile, product)
	return mapfront.AccountView{}
}

// stlPay pays sum from consumer on ZJ000001 with the customer's password.
func stlPay(t *testing.T, e *env, consumer, password, key string, sum int64) (*mapfront.PaymentAnswer, error) {
	t.Helper()
	tpk, _ := hex.DecodeString(testTPK)
	block, err := pinblock.Build(password, consumer, tpk, pinblock.DoubleLength)
	if err != nil {
		t.Fatal(err)
	}
	return e.svc.Pay(e.ctx, &mapfront.PayRequest{
		Origin:  mapfront.Origin{SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", OperatorID: "op1"},
		BatchNo: "000009", TerminalOrderID: key, ConsumerID: consumer, PINBlock: block, Sum: sum,
	})
}

// lastSix is the initial password of policy id-last6: X read as 0.
func lastSix(id string) string {
	return mapfront.DefaultPolicy().InitialPassword(id)
}

// One batch with every outcome of SPEC section 6: matched and activated,
// opened from the file, two partials merged and activated, an amount
// mismatch, a duplicate 交易id, a payment missing from the file and a bad
// line; then the queue, the same file again, another file unforced and
// forced.
func TestSettleEveryOutcome(t *testing.T) {
	e := newEnv(t)
	var (
		id1, id2, id3 = stlID("11010519900101001"), stlID("11010519900101002"), stlID("11010519900101003")
		id4, id5      = stlID("11010519900101004"), stlID("11010519900101005")
	)
	const m1, m2, m3, m4, m5 = "13800000011", "13800000012", "13800000013", "13800000014", "13800000015"
	stlOpen(t, e, m1, id1, "1012", "000001", 150000)
	partA := stlOpen(t, e, m3, id3, "1010", "000003", 225000)
	partB := stlOpen(t, e, m3, id3, "1010", "000004", 225000)
	if partA.OrderID != partB.OrderID {
		t.Fatal("partials in two orders")
	}
	mismatch := stlOpen(t, e, m4, id4, "1012", "000005", 150000)
	missing := stlOpen(t, e, m5, id5, "1012", "000006", 150000)

	recs := []mapfront.SettlementRecord{
		stlRec(1, "T1", 150000, "000001", id1, m1, "1012"),
		stlRec(2, "T2", 350000, "000002", id2, m2, "1011"), // paid, never opened
		stlRec(3, "T3", 225000, "000003", id3, m3, "1010"),
		stlRec(4, "T4", 225000, "000004", id3, m3, "1010"),
		stlRec(5, "T5", 149900, "000005", id4, m4, "1012"),
		stlRec(6, "T1", 150000, "000001", id1, m1, "1012"), // the same 交易id again
	}
	bad := []mapfront.BadLine{{LineNo: 7, Reason: "field_count: 12 fields", Text: "a|b|c"}}
	e.dayOver(t, "20261126")
	r, err := e.submit("20261126", "f1", false, recs, bad)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != "settled" || r.Records != 7 || r.TotalFen != 1249900 || r.Matched != 3 || r.Opened != 1 ||
		r.Merged != 1 || r.Activated != 3 || r.Repeated || r.SettledAt == nil {
		t.Fatalf("report %+v", r)
	}
	want := map[mapfront.ExceptionType][2]int64{
		mapfront.ExAmountMismatch: {1, 149900}, mapfront.ExDuplicate: {1, 150000},
		mapfront.ExMissing: {1, 150000}, mapfront.ExBadLine: {1, 0},
	}
	if got := counts(r); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("exceptions %v, want %v", got, want)
	}
	if len(r.Exceptions) != len(mapfront.ExceptionTypes()) {
		t.Errorf("report lists %d types, want all %d", len(r.Exceptions), len(mapfront.ExceptionTypes()))
	}
	e.verify(t)

	// Activated cards hold their face value and can pay; the card opened
	// from the file belongs to a customer created with the policy's
	// initial password.
	for _, c := range []struct {
		mobile, product string
		face            int64
		status          mapfront.AccountStatus
	}{{m1, "1012", 200000, mapfront.Active}, {m2, "1011", 400000, mapfront.Active}, {m3, "1010", 500000, mapfront.Active},
		{m4, "1012", 0, mapfront.Pending}, {m5, "1012", 0, mapfront.Pending}} {
		if a := e.cardOf(t, c.mobile, c.product); a.Balance != c.face || a.Status != c.status {
			t.Errorf("%s card %s: %d %s, want %d %s", c.mobile, a.ID, a.Balance, a.Status, c.face, c.status)
		}
	}
	opened := e.cardOf(t, m2, "1011")
	p, err := stlPay(t, e, opened.ID, lastSix(id2), "p1", 12345)
	if err != nil || *p.Balance != 400000-12345 {
		t.Fatalf("pay from the opened card: %v %+v", err, p)
	}
	if p, err := stlPay(t, e, m3, lastSix(id3), "p2", 1000); err != nil || p.AccountID != e.cardOf(t, m3, "1010").ID {
		t.Fatalf("pay from the merged card by mobile: %v %+v", err, p)
	}
	if _, err := stlPay(t, e, m4, lastSix(id4), "p3", 1000); mapfront.ErrorCode(err) != mapfront.CodeInsufficient {
		t.Fatalf("the mismatched card must not pay yet: %v", err)
	}
	// The payments the file confirmed are settled: they can no longer be
	// repealed (SPEC section 5).
	_, err = e.svc.RepealCard(e.ctx, &mapfront.RepealCardRequest{
		Origin:  mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op1"},
		BatchNo: "000001", TerminalOrderID: "000003"})
	wantCode(t, err, mapfront.CodeRepealDenied)

	// The queue: four open items, in file order within the date.
	d := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	open, err := e.store.ListExceptions(e.ctx, mapfront.ExceptionFilter{State: "open", BusinessDate: d})
	if err != nil {
		t.Fatal(err)
	}
	byType := map[mapfront.ExceptionType]mapfront.Exception{}
	for _, x := range open {
		byType[x.Type] = x
	}
	if len(open) != 4 || len(byType) != 4 {
		t.Fatalf("open items %+v", open)
	}
	if x := byType[mapfront.ExAmountMismatch]; x.OrderID != mismatch.OrderID || x.Amount != 149900 || x.Expected != 150000 ||
		x.LineNo != 5 || x.TradeID != "T5" || x.TerminalOrderID != "000005" {
		t.Errorf("amount mismatch item %+v", x)
	}
	if x := byType[mapfront.ExDuplicate]; x.LineNo != 6 || x.TradeID != "T1" {
		t.Errorf("duplicate item %+v", x)
	}
	if x := byType[mapfront.ExMissing]; x.OrderID != missing.OrderID || x.Expected != 150000 || x.TerminalOrderID != "000006" {
		t.Errorf("missing item %+v", x)
	}
	if x := byType[mapfront.ExBadLine]; x.LineNo != 7 || x.Detail == "" {
		t.Errorf("bad line item %+v", x)
	}

	// Resolving: activate the missing payment's order once, however often
	// asked; a refund owed moves no money.
	txns := e.scalar(t, `SELECT count(*) FROM ledger_txns`)
	miss := byType[mapfront.ExMissing]
	got, already, err := e.store.ResolveException(e.ctx, mapfront.Resolution{ID: miss.ID, Action: mapfront.ActionActivate,
		Operator: "ops1", Note: "POSP确认已收款"})
	if err != nil || already || got.State != "resolved" || got.Action != mapfront.ActionActivate || got.Operator != "ops1" ||
		got.ResolvedAt == nil || got.LinkedOrderID != missing.OrderID {
		t.Fatalf("resolve: %v %v %+v", err, already, got)
	}
	again, already, err := e.store.ResolveException(e.ctx, mapfront.Resolution{ID: miss.ID, Action: mapfront.ActionIgnore, Operator: "ops2"})
	if err != nil || !already || again.Action != mapfront.ActionActivate || again.Operator != "ops1" {
		t.Fatalf("second resolve: %v %v %+v", err, already, again)
	}
	if a := e.cardOf(t, m5, "1012"); a.Balance != 200000 || a.Status != mapfront.Active {
		t.Fatalf("manually activated card %+v", a)
	}
	if n := e.scalar(t, `SELECT count(*) FROM ledger_txns`); n != txns+1 {
		t.Fatalf("ledger transactions %d, want %d: one activation", n, txns+1)
	}
	if _, _, err := e.store.ResolveException(e.ctx, mapfront.Resolution{ID: byType[mapfront.ExAmountMismatch].ID,
		Action: mapfront.ActionRefundOwed, Operator: "ops1", Note: "多收1元待退"}); err != nil {
		t.Fatal(err)
	}
	if n := e.scalar(t, `SELECT count(*) FROM ledger_txns`); n != txns+1 {
		t.Fatal("refund_owed moved money")
	}
	_, _, err = e.store.ResolveException(e.ctx, mapfront.Resolution{ID: byType[mapfront.ExDuplicate].ID,
		Action: mapfront.ActionLinkOrder, Operator: "ops1", OrderID: "20990101000000000000"})
	wantCode(t, err, mapfront.CodeNoOriginal)
	x, err := e.store.GetException(e.ctx, byType[mapfront.ExAmountMismatch].ID)
	if err != nil || x.Action != mapfront.ActionRefundOwed || x.Note != "多收1元待退" {
		t.Fatalf("get %v %+v", err, x)
	}
	_, err = e.store.GetException(e.ctx, 999999)
	wantCode(t, err, mapfront.CodeNoOriginal)
	e.verify(t)

	// The same file again: the earlier report, and nothing changes.
	txns = e.scalar(t, `SELECT count(*) FROM ledger_txns`)
	items := e.scalar(t, `SELECT count(*) FROM settlement_exceptions`)
	again2, err := e.submit("20261126", "f1", false, recs, bad)
	if err != nil || !again2.Repeated {
		t.Fatalf("same file: %v %+v", err, again2)
	}
	again2.Repeated = false
	if fmt.Sprintf("%+v", *again2) != fmt.Sprintf("%+v", *r) {
		t.Fatalf("same file answered\n%+v\nwant\n%+v", *again2, *r)
	}
	if e.scalar(t, `SELECT count(*) FROM ledger_txns`) != txns || e.scalar(t, `SELECT count(*) FROM settlement_exceptions`) != items {
		t.Fatal("the same file changed something")
	}

	// Another file for the settled date: refused unless forced.
	_, err = e.submit("20261126", "f2", false, recs, bad)
	if !errors.Is(err, mapfront.ErrSettledDifferentFile) {
		t.Fatalf("different file: %v", err)
	}
	// Forced, with the missing payment now in it: only the new record is
	// applied; no 交易id twice, no card credited twice.
	forced := append(append([]mapfront.SettlementRecord{}, recs...), stlRec(8, "T6", 150000, "000006", id5, m5, "1012"))
	r2, err := e.submit("20261126", "f2", true, forced, bad)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Matched != 4 || r2.Opened != 1 || r2.Activated != 3 || r2.Merged != 1 || r2.Records != 8 || r2.SHA256 != stlSHA("f2") {
		t.Fatalf("forced report %+v", r2)
	}
	if n := e.scalar(t, `SELECT count(*) FROM settlement_trades`); n != 5 {
		t.Fatalf("%d trades applied, want 5", n)
	}
	if n := e.scalar(t, `SELECT count(*) FROM ledger_txns`); n != txns {
		t.Fatalf("forced re-run moved money: %d transactions, want %d", n, txns)
	}
	if n := e.scalar(t, `SELECT count(*) FROM settlement_exceptions`); n != items {
		t.Fatalf("forced re-run filed %d items again", n-items)
	}
	for _, c := range []struct {
		mobile, product string
		balance         int64
	}{{m1, "1012", 200000}, {m2, "1011", 400000 - 12345}, {m3, "1010", 500000 - 1000}, {m5, "1012", 200000}} {
		if a := e.cardOf(t, c.mobile, c.product); a.Balance != c.balance {
			t.Errorf("%s card %d after forced re-run, want %d", c.mobile, a.Balance, c.balance)
		}
	}
	b, err := e.store.GetBatch(e.ctx, d)
	if err != nil || b.SHA256 != stlSHA("f2") || b.Status != "settled" {
		t.Fatalf("batch %v %+v", err, b)
	}
	e.verify(t)
}

// The partner document's sample line (13 fields: no referrer) names a
// product that does not exist and an ID whose check digit is wrong: it is
// queued as not openable, and no card or customer appears. So are a bad ID
// on a real product and a mobile that belongs to another customer. (The
// sample is dated 20141211; it is given the batch's date here, since a record
// outside the batch's day is a date_mismatch before anything else.) A record
// over the product's price is overpaid, with no order to name.
func TestSettleNotOpenable(t *testing.T) {
	e := newEnv(t)
	sample := mapfront.SettlementRecord{LineNo: 1, TradeID: "2020030744015541000101023952001524000539",
		CardNo: "6225380083477614", Amount: 1, TerminalOrderID: "000539", ReferenceNo: "152412390951",
		SellerID: "307440155410001", TerminalID: "01023952", BatchNo: "001524", TradeDate: "20141211",
		TradeTime: "152412", IDNumber: "123456789123456788", Mobile: "15017513750", ProductID: "1234"}
	sample.TradeDate = "20261126"
	good := stlID("11010519900101001")
	wrong := "1"
	if good[17] == '1' {
		wrong = "2"
	}
	badID := stlRec(2, "T2", 150000, "000002", good[:17]+wrong, "13800000021", "1012")
	if mapfront.ValidIDNumber(badID.IDNumber) {
		t.Fatal("test ID should fail the check digit")
	}
	otherCustomer := stlRec(3, "T3", 150000, "000003", stlID("11010519900101009"), "13912345678", "1012")
	unregistered := stlRec(4, "T4", 150000, "000004", stlID("11010519900101008"), "13800000024", "1012")
	unregistered.TerminalID = "NOPE"
	over := stlRec(5, "T5", 150001, "000005", stlID("11010519900101007"), "13800000025", "1012")
	e.dayOver(t, "20261126")
	r, err := e.submit("20261126", "sample", false, []mapfront.SettlementRecord{sample, badID, otherCustomer, unregistered, over}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Opened != 0 || r.Activated != 0 || r.Matched != 0 {
		t.Fatalf("report %+v", r)
	}
	if got := counts(r)[mapfront.ExNotOpenable]; got != [2]int64{4, 1 + 3*150000} {
		t.Fatalf("not openable %v, want 4 items", got)
	}
	if got := counts(r)[mapfront.ExOverpaid]; got != [2]int64{1, 150001} {
		t.Fatalf("overpaid %v, want 1 item", got)
	}
	for _, m := range []string{"15017513750", "13800000021", "13800000024", "13800000025"} {
		_, err := e.store.GetCustomer(e.ctx, m)
		wantCode(t, err, mapfront.CodeNotFound)
	}
	items, err := e.store.ListExceptions(e.ctx, mapfront.ExceptionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 5 || items[0].TradeID != sample.TradeID || items[0].Type != mapfront.ExNotOpenable {
		t.Fatalf("items %+v", items)
	}
	for _, x := range items {
		if x.Detail == "" || containsAny(x.Detail, sample.IDNumber, badID.IDNumber) {
			t.Errorf("detail %q must explain and mask the ID", x.Detail)
		}
	}
	if n := e.scalar(t, `SELECT count(*) FROM card_orders`); n != 1 { // the demo card
		t.Fatalf("%d card orders, want only the demo's", n)
	}
	e.verify(t)
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		for i := 0; i+len(x) <= len(s); i++ {
			if s[i:i+len(x)] == x {
				return true
			}
		}
	}
	return false
}

// A record for a payment that was repealed: the POSP collected money that
// no order counts (overpaid); the card is not activated. A record for a key
// the file already opened is a duplicate, and the POS that retransmits the
// open_card of a card opened from the file is told its key is used.
func TestSettleRepealedAndReopened(t *testing.T) {
	e := newEnv(t)
	id := stlID("11010519900101031")
	stlOpen(t, e, "13800000031", id, "1012", "000001", 150000)
	if _, err := e.svc.RepealCard(e.ctx, &mapfront.RepealCardRequest{
		Origin:  mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op1"},
		BatchNo: "000001", TerminalOrderID: "000001"}); err != nil {
		t.Fatal(err)
	}
	id2 := stlID("11010519900101032")
	e.dayOver(t, "20261126")
	r, err := e.submit("20261126", "f", false, []mapfront.SettlementRecord{
		stlRec(1, "T1", 150000, "000001", id, "13800000031", "1012"),
		stlRec(2, "T2", 150000, "000002", id2, "13800000032", "1012"),
		stlRec(3, "T3", 150000, "000002", id2, "13800000032", "1012"), // same terminal key, another 交易id
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[mapfront.ExceptionType][2]int64{mapfront.ExOverpaid: {1, 150000}, mapfront.ExDuplicate: {1, 150000}}
	if got := counts(r); fmt.Sprint(got) != fmt.Sprint(want) || r.Opened != 1 || r.Activated != 1 {
		t.Fatalf("report %+v exceptions %v", r, counts(r))
	}
	if a := e.cardOf(t, "13800000032", "1012"); a.Balance != 200000 {
		t.Fatalf("opened card %+v", a)
	}
	_, err = e.svc.OpenCard(e.ctx, &mapfront.OpenCardRequest{
		Origin:  mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op1"},
		BatchNo: "000001", TerminalOrderID: "000002", IDNumber: id2, Mobile: "13800000032", ProductID: "1012"})
	wantCode(t, err, mapfront.CodeKeyReused)
	if a := e.cardOf(t, "13800000032", "1012"); a.Balance != 200000 {
		t.Fatal("retransmitted open_card changed the card")
	}
	e.verify(t)
}

// Under the immediate policy the card is credited at open_card; settlement
// verifies it and credits nothing more.
func TestSettleImmediatePolicyVerifiesOnly(t *testing.T) {
	e := newEnv(t, func(p *mapfront.Policy) { p.Activation = mapfront.ActivateImmediate })
	id := stlID("11010519900101041")
	o := stlOpen(t, e, "13800000041", id, "1012", "000001", 150000)
	if a := e.cardOf(t, "13800000041", "1012"); a.Balance != 200000 || a.Status != mapfront.Active {
		t.Fatalf("immediate card %+v", a)
	}
	e.dayOver(t, "20261126")
	r, err := e.submit("20261126", "f", false, []mapfront.SettlementRecord{
		stlRec(1, "T1", 150000, "000001", id, "13800000041", "1012")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Matched != 1 || r.Activated != 1 || len(counts(r)) != 0 {
		t.Fatalf("report %+v", r)
	}
	if a := e.cardOf(t, "13800000041", "1012"); a.Balance != 200000 {
		t.Fatalf("card credited twice: %+v", a)
	}
	if n := e.scalar(t, `SELECT count(*) FROM ledger_txns WHERE order_id = $1`, o.OrderID); n != 1 {
		t.Fatalf("%d ledger transactions for the order, want 1", n)
	}
	e.verify(t)
}

// SPEC sections 4 and 6: a 3-part installment card activated on Jan 31
// releases on the last day of February and on Mar 31, each part once,
// however often and however concurrently RunDaily runs.
func TestSettleInstallments(t *testing.T) {
	e := newEnv(t)
	if _, err := e.admin.UpsertProduct(e.ctx, mapfront.Product{ID: "2020", Name: "分期卡3期", ShortName: "分期卡3期",
		Price: 300000, FaceValue: 360000, Kind: mapfront.Installment, Installments: 3, OnSale: true}); err != nil {
		t.Fatal(err)
	}
	zone := e.clock.now.Location()
	e.clock.now = time.Date(2027, 1, 30, 10, 0, 0, 0, zone)
	id := stlID("11010519900101051")
	const mobile = "13800000051"
	stlOpen(t, e, mobile, id, "2020", "000001", 300000)
	rec := stlRec(1, "T1", 300000, "000001", id, mobile, "2020")
	rec.TradeDate = "20270130"
	// Sold on Jan 30, settled and so activated on Jan 31 at 00:30.
	e.dayOver(t, "20270130")
	if r, err := e.submit("20270130", "jan30", false, []mapfront.SettlementRecord{rec}, nil); err != nil || r.Activated != 1 {
		t.Fatalf("settle: %v %+v", err, r)
	}
	card := e.cardOf(t, mobile, "2020")
	if card.Balance != 120000 {
		t.Fatalf("first part %d, want 120000", card.Balance)
	}
	steps := []struct {
		day      time.Time
		released int64
		balance  int64
	}{
		{time.Date(2027, 2, 1, 9, 0, 0, 0, zone), 0, 120000},
		{time.Date(2027, 2, 27, 23, 59, 0, 0, zone), 0, 120000},
		{time.Date(2027, 2, 28, 0, 1, 0, 0, zone), 1, 240000},
		{time.Date(2027, 2, 28, 12, 0, 0, 0, zone), 0, 240000},
		{time.Date(2027, 3, 30, 12, 0, 0, 0, zone), 0, 240000},
		{time.Date(2027, 3, 31, 0, 30, 0, 0, zone), 1, 360000},
		{time.Date(2027, 4, 30, 0, 30, 0, 0, zone), 0, 360000},
	}
	for _, s := range steps {
		e.clock.now = s.day
		// Four RunDaily at once release the due part once between them.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var released int64
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.store.RunDaily(e.ctx, 0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				released += res.InstallmentsReleased
				mu.Unlock()
			}()
		}
		wg.Wait()
		if released != s.released {
			t.Fatalf("%s: released %d, want %d", s.day.Format("2006-01-02 15:04"), released, s.released)
		}
		if b := e.balance(t, card.ID); b != s.balance {
			t.Fatalf("%s: balance %d, want %d", s.day.Format("2006-01-02"), b, s.balance)
		}
	}
	var dues []time.Time
	rows, err := e.store.pool.Query(e.ctx, `SELECT due_date FROM installment_releases ORDER BY part`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d time.Time
		if err := rows.Scan(&d); err != nil {
			t.Fatal(err)
		}
		dues = append(dues, d)
	}
	if len(dues) != 2 || mapfront.DateString(dues[0]) != "20270228" || mapfront.DateString(dues[1]) != "20270331" {
		t.Fatalf("releases due %v", dues)
	}
	e.verify(t)
}

// SPEC section 6: an order still short of its price after the window
// becomes an exception, once.
func TestSettleIncompleteAfterWindow(t *testing.T) {
	e := newEnv(t)
	id := stlID("11010519900101061")
	stlOpen(t, e, "13800000061", id, "1010", "000001", 225000)
	e.dayOver(t, "20261126")
	r, err := e.submit("20261126", "f", false, []mapfront.SettlementRecord{
		stlRec(1, "T1", 225000, "000001", id, "13800000061", "1010")}, nil)
	if err != nil || r.Matched != 1 || r.Activated != 0 {
		t.Fatalf("partial: %v %+v", err, r)
	}
	zone := e.clock.now.Location()
	for _, s := range []struct {
		day  time.Time
		want int64
	}{
		{time.Date(2026, 12, 2, 23, 0, 0, 0, zone), 0},
		{time.Date(2026, 12, 3, 1, 0, 0, 0, zone), 1},
		{time.Date(2026, 12, 4, 1, 0, 0, 0, zone), 0},
	} {
		e.clock.now = s.day
		res, err := e.store.RunDaily(e.ctx, 0)
		if err != nil || res.IncompleteFlagged != s.want {
			t.Fatalf("%s: %v %+v, want %d flagged", s.day, err, res, s.want)
		}
	}
	items, err := e.store.ListExceptions(e.ctx, mapfront.ExceptionFilter{State: "open"})
	if err != nil || len(items) != 1 || items[0].Type != mapfront.ExIncomplete || items[0].Amount != 225000 || items[0].Expected != 450000 {
		t.Fatalf("items %v %+v", err, items)
	}
	// In yuan, as every other item's detail.
	if d := items[0].Detail; d != "超过完成期限仍未生效：已付2250.00元，已对账2250.00元，价格4500.00元" {
		t.Errorf("detail %q", d)
	}
	// The operator cannot activate what is not paid in full.
	_, _, err = e.store.ResolveException(e.ctx, mapfront.Resolution{ID: items[0].ID, Action: mapfront.ActionActivate, Operator: "ops"})
	wantCode(t, err, mapfront.CodeAmount)
	e.verify(t)
}

// One run per date at a time: concurrent submissions of the same file end
// in one settlement; the others are told to retry or get its report.
func TestSettleConcurrentSubmissions(t *testing.T) {
	e := newEnv(t)
	var recs []mapfront.SettlementRecord
	for i := 1; i <= 20; i++ {
		id := stlID(fmt.Sprintf("110105199001%05d", i))
		mobile := fmt.Sprintf("138000%05d", i)
		stlOpen(t, e, mobile, id, "1012", fmt.Sprintf("%06d", i), 150000)
		recs = append(recs, stlRec(int64(i), fmt.Sprintf("T%d", i), 150000, fmt.Sprintf("%06d", i), id, mobile, "1012"))
	}
	e.dayOver(t, "20261126")
	var wg sync.WaitGroup
	results := make([]error, 4)
	reports := make([]*mapfront.BatchReport, 4)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			reports[i], results[i] = e.submit("20261126", "f", false, recs, nil)
		}(i)
	}
	wg.Wait()
	settled := 0
	for i, err := range results {
		switch {
		case err == nil && !reports[i].Repeated:
			settled++
		case err == nil:
		case errors.Is(err, mapfront.ErrSettlementRunning):
		default:
			t.Fatalf("submission %d: %v", i, err)
		}
	}
	if settled != 1 {
		t.Fatalf("%d submissions settled, want 1", settled)
	}
	if n := e.scalar(t, `SELECT count(*) FROM settlement_activations`); n != 20 {
		t.Fatalf("%d activations, want 20", n)
	}
	e.verify(t)
}

// A stream that ends short of what its header announced never settles, and
// the next submission of the date starts over. A date whose file never came
// is recorded; the file may still come later.
func TestSettleTruncatedAndMissingFile(t *testing.T) {
	e := newEnv(t)
	d := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	_, err := e.store.MarkFileMissing(e.ctx, d, "too early")
	wantCode(t, err, mapfront.CodeMalformed)
	id := stlID("11010519900101071")
	stlOpen(t, e, "13800000071", id, "1012", "000001", 150000)
	e.dayOver(t, "20261126")
	_, err = e.submit("20261127", "today", false, nil, nil)
	wantCode(t, err, mapfront.CodeMalformed)
	r, err := e.store.MarkFileMissing(e.ctx, d, "FTP上没有20261126.txt")
	if err != nil || r.Status != "file_missing" {
		t.Fatalf("mark missing: %v %+v", err, r)
	}
	rec := stlRec(1, "T1", 150000, "000001", id, "13800000071", "1012")
	h := mapfront.BatchHeader{BusinessDate: d, FileName: "20261126.txt", SHA256: stlSHA("f"), RecordCount: 2, TotalFen: 300000}
	sent := false
	_, err = e.store.SubmitBatch(e.ctx, h, func() (*mapfront.BatchChunk, error) {
		if sent {
			return nil, io.EOF
		}
		sent = true
		return &mapfront.BatchChunk{Records: []mapfront.SettlementRecord{rec}}, nil
	})
	wantCode(t, err, mapfront.CodeMalformed)
	if b, err := e.store.GetBatch(e.ctx, d); err != nil || b.Status != "file_missing" {
		t.Fatalf("after a truncated stream: %v %+v", err, b)
	}
	r, err = e.submit("20261126", "f", false, []mapfront.SettlementRecord{rec}, nil)
	if err != nil || r.Status != "settled" || r.Activated != 1 {
		t.Fatalf("late file: %v %+v", err, r)
	}
	_, err = e.store.MarkFileMissing(e.ctx, d, "late")
	wantCode(t, err, mapfront.CodeMalformed)
	list, err := e.store.ListBatches(e.ctx, 10)
	if err != nil || len(list) != 1 || list[0].Status != "settled" {
		t.Fatalf("list %v %+v", err, list)
	}
	_, err = e.store.GetBatch(e.ctx, d.AddDate(0, 0, 1))
	wantCode(t, err, mapfront.CodeNoOriginal)
	if n := e.scalar(t, `SELECT count(*) FROM settlement_staging`); n != 0 {
		t.Fatalf("%d staged rows left behind", n)
	}
	e.verify(t)
}

// A settlement's bulk activation posts exactly what activate posts.
func TestActivationLegsMatchActivate(t *testing.T) {
	e := newEnv(t, func(p *mapfront.Policy) { p.Activation = mapfront.ActivateImmediate })
	if _, err := e.admin.UpsertProduct(e.ctx, mapfront.Product{ID: "2021", Name: "分期卡7期", ShortName: "分期卡7期",
		Price: 300001, FaceValue: 360007, Kind: mapfront.Installment, Installments: 7, OnSale: true}); err != nil {
		t.Fatal(err)
	}
	o := stlOpen(t, e, "13800000081", stlID("11010519900101081"), "2021", "000001", 300001)
	rows, err := e.store.pool.Query(e.ctx, `SELECT p.account_id, p.amount FROM postings p JOIN ledger_txns t USING (txn_id)
WHERE t.order_id = $1 AND t.kind = 'activate' ORDER BY p.account_id`, o.OrderID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for rows.Next() {
		var a string
		var n int64
		if err := rows.Scan(&a, &n); err != nil {
			t.Fatal(err)
		}
		got[a] = n
	}
	co, err := scanCardOrder(e.store.pool.QueryRow(e.ctx, `SELECT `+cardOrderColumns+` FROM card_orders WHERE order_id = $1`, o.OrderID))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for _, l := range activationLegs(co) {
		if l.amount != 0 {
			want[l.account] += l.amount
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("activate posted %v, activationLegs gives %v", got, want)
	}
}

// The statement-level reference checks of settlement_trades and
// settlement_activations (migrations 0012, 0014) refuse a row naming an
// unknown run, payment or order, as the foreign keys they replaced did.
func TestSettlementReferencesRefused(t *testing.T) {
	e := newEnv(t)
	a := stlOpen(t, e, "13800000092", stlID("11010519900101092"), "1012", "000092", 150000)
	b := stlOpen(t, e, "13800000093", stlID("11010519900101093"), "1012", "000093", 150000)
	var run, payment, paymentB int64
	if err := e.store.pool.QueryRow(e.ctx, `INSERT INTO settlement_runs (business_date, file_name, sha256, status, started_at)
VALUES ('2026-11-26', 'refs', repeat('a', 64), 'applying', now()) RETURNING run_id`).Scan(&run); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		order string
		id    *int64
	}{{a.OrderID, &payment}, {b.OrderID, &paymentB}} {
		if err := e.store.pool.QueryRow(e.ctx, `SELECT payment_id FROM card_payments WHERE order_id = $1`, p.order).Scan(p.id); err != nil {
			t.Fatal(err)
		}
	}
	const trade = `INSERT INTO settlement_trades (trade_id, business_date, run_id, line_no, outcome, payment_id, order_id, amount, applied_at)
SELECT 'R' || g, '2026-11-26', CASE WHEN g = 2 THEN $1::bigint ELSE $4::bigint END, g, 'matched',
       CASE WHEN g = 2 THEN $2::bigint ELSE $5::bigint END, CASE WHEN g = 2 THEN $3::text ELSE $6::text END, 1, now()
FROM generate_series(1, 2) g`
	const activation = `INSERT INTO settlement_activations (order_id, business_date, run_id, payments, credited, activated_at)
SELECT CASE WHEN g = 2 THEN $1::text ELSE $3::text END, '2026-11-26', CASE WHEN g = 2 THEN $2::bigint ELSE $4::bigint END,
       1, true, now()
FROM generate_series(1, 2) g`
	for _, c := range []struct {
		what string
		q    string
		args []any
	}{
		// The second row of each statement is the bad one.
		{"trade of an unknown run", trade, []any{run + 1, paymentB, b.OrderID, run, payment, a.OrderID}},
		{"trade of an unknown payment", trade, []any{run, paymentB + 1000, b.OrderID, run, payment, a.OrderID}},
		{"trade of an unknown order", trade, []any{run, paymentB, "20261126999999999999", run, payment, a.OrderID}},
		{"activation of an unknown order", activation, []any{"20261126999999999999", run, a.OrderID, run}},
		{"activation of an unknown run", activation, []any{b.OrderID, run + 1, a.OrderID, run}},
	} {
		_, err := e.store.pool.Exec(e.ctx, c.q, c.args...)
		wantRefused(t, c.what, err, "23503", "")
	}
	// The same rows with every reference known are accepted (one of each:
	// the trade's payment is unique).
	if _, err := e.store.pool.Exec(e.ctx, `INSERT INTO settlement_trades (trade_id, business_date, run_id, line_no, outcome,
    payment_id, order_id, amount, applied_at) VALUES ('R1', '2026-11-26', $1, 1, 'matched', $2, $3, 1, now())`,
		run, payment, a.OrderID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.pool.Exec(e.ctx, `INSERT INTO settlement_activations (order_id, business_date, run_id, payments,
    credited, activated_at) VALUES ($1, '2026-11-26', $2, 1, true, now())`, a.OrderID, run); err != nil {
		t.Fatal(err)
	}
}
