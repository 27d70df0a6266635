package postgres

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// A valid ID number (GB 11643 check digit) for a new customer.
const (
	newID     = "11010519491231002X"
	newMobile = "13800000001"
	otherID   = "110105194912310021" // fails the check digit
)

func openReq(mobile, id, key string, paySum int64) *mapfront.OpenCardRequest {
	r := &mapfront.OpenCardRequest{
		Origin:  mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "zhangsan"},
		BatchNo: "1234567", TerminalOrderID: key, IDNumber: id, Mobile: mobile, Referrer: "12345678", ProductID: "1010",
	}
	if paySum > 0 {
		r.PaySum, r.HasPaySum = paySum, true
	}
	return r
}

func paidSum(t *testing.T, e *env, orderID string) (int64, string) {
	t.Helper()
	o, err := e.store.GetOrder(e.ctx, orderID)
	if err != nil {
		t.Fatal(err)
	}
	return o.Paid, o.Status
}

// SPEC section 5 split payments: two partials make one fully paid order; a
// repeat answers the same and moves nothing; the key with another paySum is
// 10003; a payment over what is still due is 10015.
func TestOpenCardSplitPayments(t *testing.T) {
	e := newEnv(t)
	first, err := e.svc.OpenCard(e.ctx, openReq(newMobile, "110105194912310038", "k1", 200000))
	if err != nil {
		t.Fatal(err)
	}
	if first.Remark != "已付2000.00元，尚欠2500.00元" {
		t.Errorf("remark %q", first.Remark)
	}
	second, err := e.svc.OpenCard(e.ctx, openReq(newMobile, "110105194912310038", "k2", 250000))
	if err != nil {
		t.Fatal(err)
	}
	if second.OrderID != first.OrderID {
		t.Fatalf("partials went to orders %s and %s, want one", first.OrderID, second.OrderID)
	}
	if paid, status := paidSum(t, e, first.OrderID); paid != 450000 || status != "pending" {
		t.Fatalf("paid %d status %s, want 450000 pending (on_settlement)", paid, status)
	}
	again, err := e.svc.OpenCard(e.ctx, openReq(newMobile, "110105194912310038", "k1", 200000))
	if err != nil {
		t.Fatal(err)
	}
	if *again != *first {
		t.Fatalf("repeat answered %+v, want %+v", again, first)
	}
	if paid, _ := paidSum(t, e, first.OrderID); paid != 450000 {
		t.Fatalf("repeat moved money: paid %d", paid)
	}
	_, err = e.svc.OpenCard(e.ctx, openReq(newMobile, "110105194912310038", "k1", 100000))
	wantCode(t, err, mapfront.CodeKeyReused)

	// The order is full: a new payment starts a second card order; one over
	// the price is 10015 and is stored as the key's outcome.
	_, err = e.svc.OpenCard(e.ctx, openReq(newMobile, "110105194912310038", "k3", 450001))
	wantCode(t, err, mapfront.CodeAmount)
	_, err = e.svc.OpenCard(e.ctx, openReq(newMobile, "110105194912310038", "k3", 450001))
	wantCode(t, err, mapfront.CodeAmount)

	third, err := e.svc.OpenCard(e.ctx, openReq(newMobile, "110105194912310038", "k4", 300000))
	if err != nil {
		t.Fatal(err)
	}
	if third.OrderID == first.OrderID {
		t.Fatal("a payment after the price was reached joined the full order")
	}
	_, err = e.svc.OpenCard(e.ctx, openReq(newMobile, "110105194912310038", "k5", 150001))
	wantCode(t, err, mapfront.CodeAmount)
	e.verify(t)
}

func TestOpenCardDeclines(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		mod  func(r *mapfront.OpenCardRequest)
		want mapfront.Code
	}{
		{"bad ID check digit", func(r *mapfront.OpenCardRequest) { r.IDNumber = otherID }, mapfront.CodeMalformed},
		{"document's 19-char ID", func(r *mapfront.OpenCardRequest) { r.IDNumber = "515411244445444444X" }, mapfront.CodeMalformed},
		{"bad mobile", func(r *mapfront.OpenCardRequest) { r.Mobile = "23912345678" }, mapfront.CodeMalformed},
		{"missing batchNo", func(r *mapfront.OpenCardRequest) { r.BatchNo = "" }, mapfront.CodeMalformed},
		{"id too long", func(r *mapfront.OpenCardRequest) { r.TerminalOrderID = fmt.Sprintf("%033d", 1) }, mapfront.CodeMalformed},
		{"unknown terminal", func(r *mapfront.OpenCardRequest) { r.TerminalID = "NOPE" }, mapfront.CodeTerminal},
		{"terminal of another store", func(r *mapfront.OpenCardRequest) { r.SellerID, r.StoreID = "GM01", "ST01" }, mapfront.CodeTerminal},
		{"unknown product", func(r *mapfront.OpenCardRequest) { r.ProductID = "1234" }, mapfront.CodeProduct},
		{"zero paySum", func(r *mapfront.OpenCardRequest) { r.HasPaySum, r.PaySum = true, 0 }, mapfront.CodeAmount},
		{"mobile of another ID", func(r *mapfront.OpenCardRequest) { r.Mobile = "13912345678"; r.IDNumber = "110105194912310038" }, mapfront.CodeIdentity},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := openReq(newMobile, newID, fmt.Sprintf("d%d", i), 0)
			c.mod(r)
			_, err := e.svc.OpenCard(e.ctx, r)
			wantCode(t, err, c.want)
		})
	}
}

// SPEC section 5 repeal: one partial repealed brings the order back to
// partly paid; repealing it again changes nothing; the open_card repeated
// afterwards does not answer success.
func TestRepealCard(t *testing.T) {
	e := newEnv(t)
	a, err := e.svc.OpenCard(e.ctx, openReq(newMobile, newID, "p1", 200000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.OpenCard(e.ctx, openReq(newMobile, newID, "p2", 250000)); err != nil {
		t.Fatal(err)
	}
	rep := &mapfront.RepealCardRequest{Origin: mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op"},
		BatchNo: "1234567", TerminalOrderID: "p2"}
	r1, err := e.svc.RepealCard(e.ctx, rep)
	if err != nil {
		t.Fatal(err)
	}
	if paid, status := paidSum(t, e, a.OrderID); paid != 200000 || status != "pending" {
		t.Fatalf("after repeal paid %d %s, want 200000 pending", paid, status)
	}
	r2, err := e.svc.RepealCard(e.ctx, rep)
	if err != nil {
		t.Fatal(err)
	}
	if *r1 != *r2 {
		t.Fatalf("second repeal answered %+v, first %+v", r2, r1)
	}
	if paid, _ := paidSum(t, e, a.OrderID); paid != 200000 {
		t.Fatalf("second repeal changed paid to %d", paid)
	}
	_, err = e.svc.OpenCard(e.ctx, openReq(newMobile, newID, "p2", 250000))
	wantCode(t, err, mapfront.CodeAlreadyUndone)

	// The order takes payments again.
	if _, err := e.svc.OpenCard(e.ctx, openReq(newMobile, newID, "p3", 250000)); err != nil {
		t.Fatal(err)
	}
	if paid, _ := paidSum(t, e, a.OrderID); paid != 450000 {
		t.Fatalf("paid %d after new partial, want 450000", paid)
	}
	rep.TerminalOrderID = "nope"
	_, err = e.svc.RepealCard(e.ctx, rep)
	wantCode(t, err, mapfront.CodeNoOriginal)
	rep.TerminalOrderID = "p1"
	rep.SellerID, rep.StoreID, rep.TerminalID = "GM01", "ST01", "POS12345"
	_, err = e.svc.RepealCard(e.ctx, rep)
	wantCode(t, err, mapfront.CodeNoOriginal) // the key names another terminal's payment space
	e.verify(t)
}

// Under the immediate policy a fully paid card is active and credited at
// once; repealing a payment takes the value back and a card with nothing
// paid is closed.
func TestImmediateActivationAndRepeal(t *testing.T) {
	e := newEnv(t, func(p *mapfront.Policy) { p.Activation = mapfront.ActivateImmediate })
	a, err := e.svc.OpenCard(e.ctx, openReq(newMobile, newID, "i1", 0))
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.store.GetCustomer(e.ctx, newMobile)
	if err != nil {
		t.Fatal(err)
	}
	var card mapfront.AccountView
	for _, acc := range c.Accounts {
		if acc.Kind == "card" {
			card = acc
		}
	}
	if card.Status != mapfront.Active || card.Balance != 500000 {
		t.Fatalf("card %+v, want active with face value 500000", card)
	}
	e.verify(t)
	_, err = e.svc.RepealCard(e.ctx, &mapfront.RepealCardRequest{Origin: mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op"},
		BatchNo: "1234567", TerminalOrderID: "i1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, status := paidSum(t, e, a.OrderID); status != "closed" {
		t.Fatalf("order %s after repealing its only payment, want closed", status)
	}
	if b := e.balance(t, card.ID); b != 0 {
		t.Fatalf("card balance %d after repeal, want 0", b)
	}
	e.verify(t)
}

// SPEC section 5: a repeat arriving while the first is still running waits
// for it; many goroutines with one key record exactly one payment.
func TestOpenCardSameKeyConcurrently(t *testing.T) {
	e := newEnv(t)
	const n = 24
	var wg sync.WaitGroup
	answers := make([]*mapfront.CardOrderAnswer, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			answers[i], errs[i] = e.svc.OpenCard(e.ctx, openReq(newMobile, newID, "same", 100000))
		}(i)
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if *answers[i] != *answers[0] {
			t.Fatalf("goroutine %d answered %+v, want %+v", i, answers[i], answers[0])
		}
	}
	var payments int
	if err := e.store.pool.QueryRow(e.ctx, `SELECT count(*) FROM card_payments WHERE terminal_order_id = 'same'`).Scan(&payments); err != nil {
		t.Fatal(err)
	}
	if payments != 1 {
		t.Fatalf("%d payments recorded, want 1", payments)
	}
	if paid, _ := paidSum(t, e, answers[0].OrderID); paid != 100000 {
		t.Fatalf("paid %d, want 100000", paid)
	}
}

// Different keys of one new customer racing to open the same product end in
// one order.
func TestOpenCardNewCustomerConcurrently(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	ids := make([]string, 4)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			a, err := e.svc.OpenCard(e.ctx, openReq(newMobile, newID, fmt.Sprintf("c%d", i), 100000))
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = a.OrderID
		}(i)
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("orders %v, want one", ids)
		}
	}
	if paid, _ := paidSum(t, e, ids[0]); paid != 400000 {
		t.Fatalf("paid %d, want 400000", paid)
	}
}

// A declined open_card leaves nothing behind: no customer, account or order
// for a request the POS was told failed.
func TestDeclinedOpenCardWritesNothing(t *testing.T) {
	e := newEnv(t)
	count := func() (n int) {
		if err := e.store.pool.QueryRow(e.ctx, `SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM accounts)
 + (SELECT count(*) FROM card_orders)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	_, err := e.svc.OpenCard(e.ctx, openReq(newMobile, newID, "too-much", 450001))
	wantCode(t, err, mapfront.CodeAmount)
	if after := count(); after != before {
		t.Fatalf("declined open_card left %d rows", after-before)
	}
}

// An installment card whose later parts were released cannot be repealed:
// its releases stay on record (and its release periods are never reused).
func TestRepealAfterInstallmentRelease(t *testing.T) {
	e := newEnv(t, func(p *mapfront.Policy) { p.Activation = mapfront.ActivateImmediate })
	if _, err := e.admin.UpsertProduct(e.ctx, mapfront.Product{ID: "2020", Name: "分期卡", ShortName: "分期卡",
		Price: 300000, FaceValue: 360000, Kind: mapfront.Installment, Installments: 3, OnSale: true}); err != nil {
		t.Fatal(err)
	}
	r := openReq(newMobile, newID, "inst", 0)
	r.ProductID = "2020"
	if _, err := e.svc.OpenCard(e.ctx, r); err != nil {
		t.Fatal(err)
	}
	e.clock.now = e.clock.now.AddDate(0, 1, 0)
	if _, err := e.store.RunDaily(e.ctx, 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.RepealCard(e.ctx, &mapfront.RepealCardRequest{Origin: r.Origin, BatchNo: r.BatchNo, TerminalOrderID: "inst"})
	wantCode(t, err, mapfront.CodeRepealDenied)
	e.verify(t)
}
