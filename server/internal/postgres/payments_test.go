package postgres

import (
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pinblock"
)

const (
	demoMobile = "13912345678"
	demoCard   = "1010123412341234"
)

func pinFor(t *testing.T, pin, consumer string) string { return pinForTB(t, pin, consumer) }

func pinForTB(t testing.TB, pin, consumer string) string {
	t.Helper()
	key, _ := hex.DecodeString(testTPK)
	b, err := pinblock.Build(pin, consumer, key, pinblock.DoubleLength)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func payReq(t *testing.T, consumer, pin, key string, sum int64) *mapfront.PayRequest {
	return &mapfront.PayRequest{
		Origin:  mapfront.Origin{SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", OperatorID: "zhangsan"},
		BatchNo: "123123123122132", TerminalOrderID: key, ConsumerID: consumer, PINBlock: pinFor(t, pin, consumer),
		Sum: sum, ProductName: "0号柴油", ProductPrice: 500, ProductQuantity: "1.55",
	}
}

func undoReq(p *mapfront.PayRequest) *mapfront.UndoPayRequest {
	return &mapfront.UndoPayRequest{Origin: p.Origin, BatchNo: p.BatchNo, TerminalOrderID: p.TerminalOrderID}
}

func queryReq(t *testing.T, consumer, pin string) *mapfront.AccountQuery {
	return &mapfront.AccountQuery{
		Origin:  mapfront.Origin{SellerID: "GM01", StoreID: "ST01", TerminalID: "POS12345", OperatorID: "zhangsan"},
		BatchNo: "123123123122132", TerminalOrderID: "q1", ConsumerID: consumer, PINBlock: pinFor(t, pin, consumer),
	}
}

// Issue 3, shows 1 and 2: card-first pay by mobile, balance query, repeat,
// reversal once however often, cancel from another terminal.
func TestPayCardFirstRepeatUndo(t *testing.T) {
	e := newEnv(t)
	p := payReq(t, demoMobile, "123456", "1234567890123456789", 5000)
	a, err := e.svc.Pay(e.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if a.AccountID != demoCard || a.Status != mapfront.StatusPaid || *a.Balance != 295000 || len(a.OrderID) != 22 || a.OrderID[:2] != "ud" {
		t.Fatalf("pay answer %+v", a)
	}
	if a.PayTime != "2026-11-26 10:00:00" {
		t.Fatalf("payTime %q", a.PayTime)
	}
	info, err := e.svc.GetAccountInfo(e.ctx, queryReq(t, demoCard, "123456"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Balance != 295000 || info.Status != mapfront.Active {
		t.Fatalf("account info %+v", info)
	}
	again, err := e.svc.Pay(e.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if again.OrderID != a.OrderID || *again.Balance != *a.Balance {
		t.Fatalf("repeat answered %+v", again)
	}
	if b := e.balance(t, demoCard); b != 295000 {
		t.Fatalf("repeat moved money: %d", b)
	}
	for i := 0; i < 3; i++ {
		u, err := e.svc.UndoPay(e.ctx, undoReq(p))
		if err != nil {
			t.Fatal(err)
		}
		if u.Status != mapfront.StatusReversed || u.Sum != 5000 || u.ConsumerID != demoMobile {
			t.Fatalf("undo answer %+v", u)
		}
		if b := e.balance(t, demoCard); b != 300000 {
			t.Fatalf("after undo %d: balance %d, want 300000", i, b)
		}
	}
	// The reversed pay sent again is declined and moves nothing.
	_, err = e.svc.Pay(e.ctx, p)
	wantCode(t, err, mapfront.CodeAlreadyUndone)

	// pay_cancel of a pay from another terminal: 10012.
	p2 := payReq(t, demoMobile, "123456", "p2", 1000)
	a2, err := e.svc.Pay(e.ctx, p2)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.CancelPay(e.ctx, &mapfront.CancelPayRequest{
		Origin:  mapfront.Origin{SellerID: "GM01", StoreID: "ST01", TerminalID: "POS12345", OperatorID: "x"},
		BatchNo: "1", TerminalOrderID: "c1", OrderID: a2.OrderID})
	wantCode(t, err, mapfront.CodeCancelDenied)
	e.verify(t)
}

// SPEC section 5 pay_cancel: same terminal, same business day, once; the
// clock crossing the cutover ends the right to cancel.
func TestCancelPay(t *testing.T) {
	e := newEnv(t)
	p := payReq(t, demoCard, "123456", "t1", 7000)
	a, err := e.svc.Pay(e.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	c := &mapfront.CancelPayRequest{Origin: p.Origin, BatchNo: p.BatchNo, TerminalOrderID: "t1-cancel", OrderID: a.OrderID}
	ca, err := e.svc.CancelPay(e.ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Status != mapfront.StatusCancelled || ca.OrderID == a.OrderID || *ca.Balance != 300000 {
		t.Fatalf("cancel answer %+v", ca)
	}
	again, err := e.svc.CancelPay(e.ctx, c)
	if err != nil || again.OrderID != ca.OrderID {
		t.Fatalf("repeat cancel: %+v %v", again, err)
	}
	c2 := *c
	c2.TerminalOrderID = "t1-cancel-2"
	_, err = e.svc.CancelPay(e.ctx, &c2)
	wantCode(t, err, mapfront.CodeAlreadyUndone)
	// Reversing a cancelled pay moves nothing and says so.
	u, err := e.svc.UndoPay(e.ctx, undoReq(p))
	if err != nil || u.Status != mapfront.StatusWasCancelled {
		t.Fatalf("undo of cancelled: %+v %v", u, err)
	}
	if b := e.balance(t, demoCard); b != 300000 {
		t.Fatalf("balance %d, want 300000", b)
	}
	c3 := *c
	c3.TerminalOrderID, c3.OrderID = "t1-cancel-3", "ud00000000000000000000"
	_, err = e.svc.CancelPay(e.ctx, &c3)
	wantCode(t, err, mapfront.CodeNoOriginal)

	// A pay of yesterday's business day cannot be cancelled.
	p2 := payReq(t, demoCard, "123456", "t2", 100)
	a2, err := e.svc.Pay(e.ctx, p2)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.now = e.clock.now.Add(14 * time.Hour) // 2026-11-27 00:00 Shanghai
	_, err = e.svc.CancelPay(e.ctx, &mapfront.CancelPayRequest{Origin: p2.Origin, BatchNo: p2.BatchNo, TerminalOrderID: "t2-c", OrderID: a2.OrderID})
	wantCode(t, err, mapfront.CodeCancelDenied)
	e.verify(t)
}

// Issue 3, show 3: a reversal of a key that never paid answers 0 and makes a
// later pay with that key decline without moving money.
func TestUndoTombstone(t *testing.T) {
	e := newEnv(t)
	p := payReq(t, demoMobile, "123456", "ghost", 5000)
	u, err := e.svc.UndoPay(e.ctx, undoReq(p))
	if err != nil {
		t.Fatal(err)
	}
	if u.Status != mapfront.StatusReversed || u.AccountID != "" {
		t.Fatalf("tombstone answer %+v", u)
	}
	u2, err := e.svc.UndoPay(e.ctx, undoReq(p))
	if err != nil || u2.OrderID != u.OrderID {
		t.Fatalf("repeat tombstone: %+v %v", u2, err)
	}
	_, err = e.svc.Pay(e.ctx, p)
	wantCode(t, err, mapfront.CodeAlreadyUndone)
	if b := e.balance(t, demoCard); b != 300000 {
		t.Fatalf("balance %d", b)
	}
	// A declined pay reversed: nothing to refund, success.
	bad := payReq(t, demoMobile, "123456", "declined", 99_000_000)
	_, err = e.svc.Pay(e.ctx, bad)
	wantCode(t, err, mapfront.CodeAmount) // over the limit: malformed-class, not stored
	bad.Sum = 4_000_000                   // more than any account holds
	_, err = e.svc.Pay(e.ctx, bad)
	wantCode(t, err, mapfront.CodeInsufficient)
	u3, err := e.svc.UndoPay(e.ctx, undoReq(bad))
	if err != nil || u3.Status != mapfront.StatusReversed {
		t.Fatalf("undo of declined: %+v %v", u3, err)
	}
	e.verify(t)
}

// Issue 3, show 4: 50 concurrent pays of 100 at an account holding 1000.
func TestConcurrentPaysNeverOverdraw(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.OpenCard(e.ctx, openReq(newMobile, newID, "fund", 0)); err != nil {
		t.Fatal(err)
	}
	c, _ := e.store.GetCustomer(e.ctx, newMobile)
	cash := c.Accounts[0].ID
	if _, _, err := e.store.TopUpCash(e.ctx, newMobile, 1000, "t-1000"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	codes := make([]mapfront.Code, 50)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := e.svc.Pay(e.ctx, payReq(t, cash, "31002X"[0:5]+"0", fmt.Sprintf("cc%d", i), 100))
			codes[i] = mapfront.ErrorCode(err)
		}(i)
	}
	wg.Wait()
	ok, insufficient := 0, 0
	for _, c := range codes {
		switch c {
		case mapfront.OK:
			ok++
		case mapfront.CodeInsufficient:
			insufficient++
		default:
			t.Errorf("unexpected errcode %d", c)
		}
	}
	if ok != 10 || insufficient != 40 {
		t.Fatalf("%d succeeded, %d insufficient; want 10 and 40", ok, insufficient)
	}
	if b := e.balance(t, cash); b != 0 {
		t.Fatalf("balance %d, want 0", b)
	}
	e.verify(t)
}

// Issue 3, show 4: pays and reversals of the same keys racing end as
// approved-then-reversed or tombstoned-then-declined, never money moved and
// reversal lost.
func TestPayUndoRace(t *testing.T) {
	e := newEnv(t)
	const n = 40
	var wg sync.WaitGroup
	payErr := make([]error, n)
	for i := 0; i < n; i++ {
		p := payReq(t, demoMobile, "123456", fmt.Sprintf("race%d", i), 100)
		wg.Add(2)
		go func(i int) { defer wg.Done(); _, payErr[i] = e.svc.Pay(e.ctx, p) }(i)
		go func() {
			defer wg.Done()
			if _, err := e.svc.UndoPay(e.ctx, undoReq(p)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	approvedReversed, tombstoned := 0, 0
	for i := 0; i < n; i++ {
		var state, status string
		err := e.store.pool.QueryRow(e.ctx, `SELECT r.state, coalesce(p.status, '')
FROM terminal_requests r LEFT JOIN pay_orders p ON p.kind = 'pay' AND p.terminal_id = r.terminal_id
 AND p.batch_no = r.batch_no AND p.terminal_order_id = r.terminal_order_id
WHERE r.kind = 'pay' AND r.terminal_order_id = $1`, fmt.Sprintf("race%d", i)).Scan(&state, &status)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case payErr[i] == nil && state == "reversed" && status == "reversed":
			approvedReversed++
		case mapfront.ErrorCode(payErr[i]) == mapfront.CodeAlreadyUndone && state == "tombstone" && status == "":
			tombstoned++
		default:
			t.Errorf("key %d: pay err %v, state %s, order %q", i, payErr[i], state, status)
		}
	}
	if b := e.balance(t, demoCard); b != 300000 {
		t.Fatalf("card balance %d, want 300000 (every approved pay reversed)", b)
	}
	t.Logf("%d approved-then-reversed, %d tombstoned-then-declined", approvedReversed, tombstoned)
	e.verify(t)
}

// Issue 3, show 5: five wrong passwords lock (10008 on the sixth, even with
// the right one); a malformed PIN block is 10017 and does not count; unlock
// restores.
func TestPasswordLock(t *testing.T) {
	e := newEnv(t)
	bad := payReq(t, demoMobile, "123456", "m0", 100)
	bad.PINBlock = "ZZ" + bad.PINBlock[2:]
	_, err := e.svc.Pay(e.ctx, bad)
	wantCode(t, err, mapfront.CodePINBlock)
	bad.TerminalOrderID, bad.PINBlock = "m1", "0123456789ABCDEF" // decrypts to garbage
	_, err = e.svc.Pay(e.ctx, bad)
	wantCode(t, err, mapfront.CodePINBlock)
	for i := 1; i <= 5; i++ {
		_, err := e.svc.Pay(e.ctx, payReq(t, demoMobile, "654321", fmt.Sprintf("w%d", i), 100))
		if i < 5 {
			wantCode(t, err, mapfront.CodeWrongPassword)
		} else {
			wantCode(t, err, mapfront.CodePasswordLocked) // the fifth locks, and says so
		}
	}
	_, err = e.svc.Pay(e.ctx, payReq(t, demoMobile, "123456", "w6", 100))
	wantCode(t, err, mapfront.CodePasswordLocked)
	_, err = e.svc.GetAccountInfo(e.ctx, queryReq(t, demoMobile, "123456"))
	wantCode(t, err, mapfront.CodePasswordLocked)
	if err := e.store.UnlockPaymentPassword(e.ctx, demoMobile); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Pay(e.ctx, payReq(t, demoMobile, "123456", "w7", 100)); err != nil {
		t.Fatal(err)
	}
	// Four wrong, one right: the count resets.
	for i := 0; i < 4; i++ {
		_, err := e.svc.GetAccountInfo(e.ctx, queryReq(t, demoMobile, "000000"))
		wantCode(t, err, mapfront.CodeWrongPassword)
	}
	if _, err := e.svc.GetAccountInfo(e.ctx, queryReq(t, demoMobile, "123456")); err != nil {
		t.Fatal(err)
	}
	c, _ := e.store.GetCustomer(e.ctx, demoMobile)
	if c.Failures != 0 || c.Locked {
		t.Fatalf("customer after success: %+v", c)
	}
}

func TestPayAccountRules(t *testing.T) {
	e := newEnv(t)
	// More than the card holds: cash pays, never split.
	a, err := e.svc.Pay(e.ctx, payReq(t, demoMobile, "123456", "big", 400000))
	if err != nil {
		t.Fatal(err)
	}
	if a.AccountID[:4] != mapfront.CashPrefix || *a.Balance != 600000 {
		t.Fatalf("big pay took %s leaving %d", a.AccountID, *a.Balance)
	}
	_, err = e.svc.Pay(e.ctx, payReq(t, demoMobile, "123456", "huge", 700000))
	wantCode(t, err, mapfront.CodeInsufficient)
	if err := e.store.SetAccountFrozen(e.ctx, demoCard, true); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Pay(e.ctx, payReq(t, demoCard, "123456", "frozen", 100))
	wantCode(t, err, mapfront.CodeAccountState)
	a, err = e.svc.Pay(e.ctx, payReq(t, demoMobile, "123456", "skip-frozen", 100))
	if err != nil || a.AccountID[:4] != mapfront.CashPrefix {
		t.Fatalf("pay with frozen card: %+v %v", a, err)
	}
	_, err = e.svc.Pay(e.ctx, payReq(t, "13700000000", "123456", "nobody", 100))
	wantCode(t, err, mapfront.CodeNotFound)
	_, err = e.svc.Pay(e.ctx, payReq(t, "1234", "123456", "badid", 100))
	wantCode(t, err, mapfront.CodeMalformed)

	cf := newEnv(t, func(p *mapfront.Policy) { p.Accounts = mapfront.CashFirst })
	a, err = cf.svc.Pay(cf.ctx, payReq(t, demoMobile, "123456", "cf", 100))
	if err != nil || a.AccountID[:4] != mapfront.CashPrefix {
		t.Fatalf("cash-first took %+v %v", a, err)
	}
	e.verify(t)
}

// A reversal of a declined pay moves nothing and leaves the pay's stored
// answer as it was: a repeat of the pay is declined as before.
func TestUndoOfDeclinedKeepsTheDecline(t *testing.T) {
	e := newEnv(t)
	p := payReq(t, demoMobile, "123456", "poor", 4_000_000)
	_, err := e.svc.Pay(e.ctx, p)
	wantCode(t, err, mapfront.CodeInsufficient)
	if _, err := e.svc.UndoPay(e.ctx, undoReq(p)); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Pay(e.ctx, p)
	wantCode(t, err, mapfront.CodeInsufficient)
}

// The reversal of an approved pay answers with the pay's own orderId, which
// the back office finds with status reversed.
func TestUndoAnswersThePaysOrder(t *testing.T) {
	e := newEnv(t)
	p := payReq(t, demoMobile, "123456", "u1", 300)
	a, err := e.svc.Pay(e.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	u, err := e.svc.UndoPay(e.ctx, undoReq(p))
	if err != nil {
		t.Fatal(err)
	}
	if u.OrderID != a.OrderID {
		t.Fatalf("undo orderId %s, pay %s", u.OrderID, a.OrderID)
	}
	o, err := e.store.GetOrder(e.ctx, a.OrderID)
	if err != nil || o.Status != "reversed" {
		t.Fatalf("order %+v %v", o, err)
	}
}

// A top-up reference is used once: the same reference with another amount is
// 10003, not a silent success.
func TestTopUpReference(t *testing.T) {
	e := newEnv(t)
	_, b1, err := e.store.TopUpCash(e.ctx, demoMobile, 1000, "ref-1")
	if err != nil {
		t.Fatal(err)
	}
	_, b2, err := e.store.TopUpCash(e.ctx, demoMobile, 1000, "ref-1")
	if err != nil || b2 != b1 {
		t.Fatalf("repeat: %d %v, want %d", b2, err, b1)
	}
	_, _, err = e.store.TopUpCash(e.ctx, demoMobile, 500000, "ref-1")
	wantCode(t, err, mapfront.CodeKeyReused)
	e.verify(t)
}
