package mapfront

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var fpA, fpB = []byte("fingerprint A"), []byte("fingerprint B")

func TestKeyRecordRepeat(t *testing.T) {
	decline := &Error{Code: CodeInsufficient, Msg: "余额不足"}
	for _, r := range []struct {
		name string
		k    KeyRecord
		fp   []byte
		code Code
		msg  string
	}{
		{"approved, same request", KeyRecord{Fingerprint: fpA, State: KeyApproved}, fpA, OK, ""},
		{"approved, another request", KeyRecord{Fingerprint: fpA, State: KeyApproved}, fpB, CodeKeyReused, "另一笔"},
		{"declined, same request: the decline again", KeyRecord{Fingerprint: fpA, State: KeyDeclined, Decline: decline}, fpA, CodeInsufficient, "余额不足"},
		{"declined, another request", KeyRecord{Fingerprint: fpA, State: KeyDeclined, Decline: decline}, fpB, CodeKeyReused, ""},
		{"tombstone, any pay", KeyRecord{State: KeyTombstone}, fpA, CodeAlreadyUndone, "冲正"},
		{"reversed, same request", KeyRecord{Fingerprint: fpA, State: KeyReversed}, fpA, CodeAlreadyUndone, ""},
		{"reversed, another request", KeyRecord{Fingerprint: fpA, State: KeyReversed}, fpB, CodeKeyReused, ""},
		{"opened by the settlement file", KeyRecord{State: KeyDeclined, Decline: &Error{Code: CodeKeyReused, Msg: "该笔开卡已由日切文件开通"}}, fpA, CodeKeyReused, ""},
	} {
		t.Run(r.name, func(t *testing.T) {
			err := r.k.Repeat(r.fp)
			wantCode(t, err, r.code)
			if r.msg != "" && !strings.Contains(err.Error(), r.msg) {
				t.Fatalf("message %q", err)
			}
		})
	}
}

func TestDeclinedRecord(t *testing.T) {
	for _, r := range []struct {
		err    error
		stored bool
	}{
		{Errorf(CodeInsufficient, "余额不足"), true},
		{Errorf(CodeTerminal, "终端停用"), true},
		{Errorf(CodeKeyReused, "x"), true},
		{Errorf(CodeMalformed, "x"), false}, // there may be no key to keep it under
		{ErrBusy, false},                    // nothing happened
		{errors.New("internal"), false},
	} {
		rec, err := Declined(fpA, r.err)
		if (err == nil) != r.stored {
			t.Errorf("Declined(%v): %v", r.err, err)
		}
		if rec != nil && (rec.State != KeyDeclined || rec.Decline.Code != ErrorCode(r.err)) {
			t.Errorf("record %+v", rec)
		}
	}
}

func approvedPay(c Clock) *PayOrder {
	return &PayOrder{ID: "ud20261126100000000007", Status: PaySuccess, AccountID: "1010123412341234",
		SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", BatchNo: "123123123122132",
		TerminalOrderID: "1234567890123456789", OperatorID: "zhangsan", ConsumerID: "13912345678", Amount: 5000,
		BalanceAfter: 295000, BusinessDate: c.BusinessDate(time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)),
		PayTime: time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC), ProductName: "0号柴油", ProductPrice: 500,
		ProductQuantity: "1.55", Fingerprint: fpA}
}

func TestReplayPay(t *testing.T) {
	c := shanghai(t)
	paid := approvedPay(c)
	for _, r := range []struct {
		name   string
		st     PayState
		fp     []byte
		done   bool
		code   Code
		answer bool
	}{
		{"new key", PayState{}, fpA, false, OK, false},
		{"approved: the same answer", PayState{Paid: paid}, fpA, true, OK, true},
		{"approved, cancelled, then reversed: still its answer", PayState{Paid: paid, Key: &KeyRecord{Fingerprint: fpA, State: KeyApproved}}, fpA, true, OK, true},
		{"approved: another request", PayState{Paid: paid}, fpB, true, CodeKeyReused, false},
		{"reversed", PayState{Paid: paid, Key: &KeyRecord{Fingerprint: fpA, State: KeyReversed}}, fpA, true, CodeAlreadyUndone, false},
		{"tombstone: declined, no money", PayState{Key: &KeyRecord{State: KeyTombstone}}, fpA, true, CodeAlreadyUndone, false},
		{"declined", PayState{Key: &KeyRecord{Fingerprint: fpA, State: KeyDeclined, Decline: Errorf(CodeInsufficient, "余额不足")}}, fpA, true, CodeInsufficient, false},
		{"approval without order is internal", PayState{Key: &KeyRecord{Fingerprint: fpA, State: KeyApproved}}, fpA, true, CodeInternal, false},
	} {
		t.Run(r.name, func(t *testing.T) {
			a, err, done := ReplayPay(&r.st, r.fp, c)
			if done != r.done {
				t.Fatalf("done %v", done)
			}
			wantCode(t, err, r.code)
			if (a != nil) != r.answer {
				t.Fatalf("answer %+v", a)
			}
			if a != nil && (a.OrderID != paid.ID || a.PayTime != "2026-11-26 10:00:00" || *a.Balance != 295000 || a.Status != StatusPaid) {
				t.Fatalf("answer %+v", a)
			}
		})
	}
}

func TestDecidePay(t *testing.T) {
	c := shanghai(t)
	now := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	term := TerminalState{Found: true, Enabled: true}
	cust := &Customer{ID: 9, Mobile: "13912345678", PwHash: []byte{1}, Failures: 1}
	card := AccountChoice{ID: "1010123412341234", Kind: "card", Status: Active, Balance: 300000}
	cash := AccountChoice{ID: "9999000000000012", Kind: "cash", Status: Active, Balance: 1000000}
	good := Credentials{PINOpened: true, PasswordOK: true}
	for _, r := range []struct {
		name      string
		consumer  string
		sum       int64
		st        PayState
		cred      Credentials
		code      Code
		account   string
		balance   int64
		recorded  bool // the decline is kept under the key
		pwChanged bool
	}{
		{"document pay: card first", "13912345678", 5000, PayState{Terminal: term, Customer: cust, Accounts: []AccountChoice{card, cash}}, good, OK, card.ID, 295000, false, true},
		{"more than the card: cash, never split", "13912345678", 400000, PayState{Terminal: term, Customer: cust, Accounts: []AccountChoice{card, cash}}, good, OK, cash.ID, 600000, false, true},
		{"nothing covers", "13912345678", 1_100_000, PayState{Terminal: term, Customer: cust, Accounts: []AccountChoice{card, cash}}, good, CodeInsufficient, "", 0, true, true},
		{"by accountId", card.ID, 100, PayState{Terminal: term, Customer: cust, Accounts: []AccountChoice{card}}, good, OK, card.ID, 299900, false, true},
		{"by accountId, frozen", card.ID, 100, PayState{Terminal: term, Customer: cust, Accounts: []AccountChoice{{ID: card.ID, Kind: "card", Status: Frozen, Balance: 300000}}}, good, CodeAccountState, "", 0, true, true},
		{"by accountId, unknown", "1010999999999999", 100, PayState{Terminal: term, Customer: cust}, good, CodeNotFound, "", 0, true, true},
		{"wrong password counted", "13912345678", 100, PayState{Terminal: term, Customer: cust, Accounts: []AccountChoice{card}}, Credentials{PINOpened: true}, CodeWrongPassword, "", 0, true, true},
		{"PIN block does not open", "13912345678", 100, PayState{Terminal: term, Customer: cust, Accounts: []AccountChoice{card}}, Credentials{}, CodePINBlock, "", 0, true, false},
		{"terminal unknown", "13912345678", 100, PayState{Customer: cust}, good, CodeTerminal, "", 0, true, false},
	} {
		t.Run(r.name, func(t *testing.T) {
			req := docPay()
			req.ConsumerID, req.Sum = r.consumer, r.sum
			r.st.OrderSeq = 7
			out, a, err := DecidePay(req, &r.st, r.cred, DefaultPolicy(), c, now, fpA)
			wantCode(t, err, r.code)
			if (out.Password != nil) != r.pwChanged {
				t.Fatalf("password change %+v", out.Password)
			}
			if (out.Declined != nil) != r.recorded {
				t.Fatalf("declined record %+v", out.Declined)
			}
			if err != nil {
				if out.Approved != nil || a != nil {
					t.Fatal("a decline approved something")
				}
				return
			}
			o := out.Approved
			if o.AccountID != r.account || o.BalanceAfter != r.balance || o.Amount != r.sum || !bytes.Equal(o.Fingerprint, fpA) {
				t.Fatalf("order %+v", o)
			}
			if o.ID != "ud20261126100000000007" || a.PayTime != "2026-11-26 10:00:00" || a.Status != StatusPaid {
				t.Fatalf("answer %+v", a)
			}
			if !reflect.DeepEqual(a, PayAnswer(o, c)) {
				t.Fatal("the approval's answer differs from its replay's")
			}
		})
	}
}

func TestCheckCancel(t *testing.T) {
	c := shanghai(t)
	today := c.BusinessDate(time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC))
	req := &CancelPayRequest{Origin: docPay().Origin, OrderID: "ud20261126100000000007"}
	for _, r := range []struct {
		name  string
		mod   func(o *PayOrder)
		today time.Time
		code  Code
	}{
		{"same terminal, same day", func(*PayOrder) {}, today, OK},
		{"another terminal", func(o *PayOrder) { o.TerminalID = "POS12345" }, today, CodeCancelDenied},
		{"another store", func(o *PayOrder) { o.StoreID = "ST01" }, today, CodeCancelDenied},
		{"already cancelled", func(o *PayOrder) { o.Status = PayCancelled }, today, CodeAlreadyUndone},
		{"already reversed", func(o *PayOrder) { o.Status = PayReversed }, today, CodeAlreadyUndone},
		{"past the business day", func(*PayOrder) {}, today.AddDate(0, 0, 1), CodeCancelDenied},
	} {
		t.Run(r.name, func(t *testing.T) {
			o := approvedPay(c)
			r.mod(o)
			wantCode(t, CheckCancel(req, o, r.today), r.code)
		})
	}
	wantCode(t, CheckCancel(req, nil, today), CodeNoOriginal)
}

func TestDecideCancel(t *testing.T) {
	c := shanghai(t)
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	term := TerminalState{Found: true, Enabled: true}
	for _, r := range []struct {
		name     string
		st       CancelState
		code     Code
		balance  int64
		recorded bool
	}{
		{"refund to the same account", CancelState{Terminal: term, Original: approvedPay(c), OriginalBalance: 295000, OrderSeq: 8}, OK, 300000, true},
		{"unknown original: declined and kept", CancelState{Terminal: term, OrderSeq: 8}, CodeNoOriginal, 0, true},
		{"unknown terminal: declined and kept", CancelState{Original: approvedPay(c)}, CodeTerminal, 0, true},
	} {
		t.Run(r.name, func(t *testing.T) {
			req := &CancelPayRequest{Origin: docPay().Origin, BatchNo: "123123123122132", TerminalOrderID: "c1", OrderID: "ud20261126100000000007"}
			out, a, err := DecideCancel(req, &r.st, c, now, fpB)
			wantCode(t, err, r.code)
			if (out.Record != nil) != r.recorded {
				t.Fatalf("record %+v", out.Record)
			}
			if err != nil {
				if out.Cancel != nil || out.Record.State != KeyDeclined {
					t.Fatalf("decline wrote %+v", out)
				}
				return
			}
			if out.Cancel.OriginalOrderID != "ud20261126100000000007" || out.Cancel.ID != "ud20261126110000000008" ||
				out.Cancel.BalanceAfter != r.balance || *a.Balance != r.balance || a.Status != StatusCancelled {
				t.Fatalf("cancel %+v answer %+v", out.Cancel, a)
			}
			var replay CancelAnswer
			if err := ReplayKey(out.Record, fpB, &replay); err != nil || !reflect.DeepEqual(&replay, a) {
				t.Fatalf("replay %+v %v, want %+v", replay, err, a)
			}
		})
	}
}

func TestUndoActionFor(t *testing.T) {
	c := shanghai(t)
	cancelled := approvedPay(c)
	cancelled.Status = PayCancelled
	reversed := approvedPay(c)
	reversed.Status = PayReversed
	for _, r := range []struct {
		name   string
		k      *KeyRecord
		paid   *PayOrder
		want   UndoAction
		broken bool
	}{
		{"original unknown: tombstone", nil, nil, UndoTombstone, false},
		{"original approved: refund", nil, approvedPay(c), UndoRefund, false},
		{"original declined: nothing to refund", &KeyRecord{State: KeyDeclined}, nil, UndoNothingDeclined, false},
		{"original cancelled: nothing moves", nil, cancelled, UndoNothingCancelled, false},
		{"already reversed: the same answer", &KeyRecord{State: KeyReversed, Reversal: []byte(`{"v":1}`)}, reversed, UndoReplay, false},
		{"tombstone again: the same answer", &KeyRecord{State: KeyTombstone, Reversal: []byte(`{"v":1}`)}, nil, UndoReplay, false},
		{"reversed without its answer", nil, reversed, 0, true},
	} {
		got, err := UndoActionFor(r.k, r.paid)
		if (err != nil) != r.broken || (err == nil && got != r.want) {
			t.Errorf("%s: %v %v, want %v", r.name, got, err, r.want)
		}
	}
}

func TestDecideUndo(t *testing.T) {
	c := shanghai(t)
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	term := TerminalState{Found: true, Enabled: true}
	cancelled := approvedPay(c)
	cancelled.Status = PayCancelled
	for _, r := range []struct {
		name    string
		st      UndoState
		code    Code
		status  string
		orderID string
		state   KeyState
		refund  bool
		balance *int64
	}{
		{"approved pay refunded, answers the pay's orderId", UndoState{Terminal: term, Paid: approvedPay(c), PaidBalance: 295000, OrderSeq: 9},
			OK, StatusReversed, "ud20261126100000000007", KeyReversed, true, ptr(300000)},
		{"unknown key: tombstone with an order of its own", UndoState{Terminal: term, OrderSeq: 9},
			OK, StatusReversed, "ud20261126110000000009", KeyTombstone, false, nil},
		{"declined pay: nothing to refund, still declined", UndoState{Terminal: term, Key: &KeyRecord{Fingerprint: fpA, State: KeyDeclined, Decline: Errorf(CodeInsufficient, "余额不足")}, OrderSeq: 9},
			OK, StatusReversed, "ud20261126110000000009", KeyDeclined, false, nil},
		{"cancelled pay: nothing moves, says so", UndoState{Terminal: term, Paid: cancelled, PaidBalance: 300000, OrderSeq: 9},
			OK, StatusWasCancelled, "ud20261126100000000007", KeyApproved, false, ptr(300000)},
		{"unknown terminal", UndoState{}, CodeTerminal, "", "", "", false, nil},
	} {
		t.Run(r.name, func(t *testing.T) {
			req := &UndoPayRequest{Origin: docPay().Origin, BatchNo: "123123123122132", TerminalOrderID: "1234567890123456789"}
			out, a, err := DecideUndo(req, &r.st, c, now)
			wantCode(t, err, r.code)
			if err != nil {
				return
			}
			if a.Status != r.status || a.OrderID != r.orderID || out.Record.State != r.state || (out.Refund != nil) != r.refund {
				t.Fatalf("answer %+v outcome %+v", a, out)
			}
			if (a.Balance == nil) != (r.balance == nil) || (a.Balance != nil && *a.Balance != *r.balance) {
				t.Fatalf("balance %v, want %v", a.Balance, r.balance)
			}
			// The repeat gets the same answer, with nothing to write.
			again := r.st
			again.Key = out.Record
			out2, a2, err := DecideUndo(req, &again, c, now.Add(time.Hour))
			if err != nil || out2 != nil || !reflect.DeepEqual(a, a2) {
				t.Fatalf("repeat: %+v %+v %v", out2, a2, err)
			}
		})
	}
	// Another seller or store than the pay's: 10002, nothing written.
	req := &UndoPayRequest{Origin: Origin{SellerID: "SH01", StoreID: "ST12345", TerminalID: "ZJ000001"}}
	_, _, err := DecideUndo(req, &UndoState{Terminal: term, Paid: approvedPay(c)}, c, now)
	wantCode(t, err, CodeTerminal)
}

func ptr(n int64) *int64 { return &n }

// testIndex stands for a blind index in the pure rules' tests: equal ID
// numbers give equal bytes, which is all CheckIdentity relies on.
func testIndex(id string) []byte { return []byte("index:" + id) }

func TestDecideOpenCard(t *testing.T) {
	c := shanghai(t)
	now := time.Date(2026, 11, 26, 10, 13, 52, 0, time.UTC)
	term := TerminalState{Found: true, Enabled: true}
	product := &Product{ID: "1010", Name: "乐驾包5000", Price: 450000, FaceValue: 500000, Kind: Discount, Installments: 1, OnSale: true}
	offSale := *product
	offSale.OnSale = false
	known := &Customer{ID: 3, Mobile: "13800000001", IDIndex: testIndex("110105194912310038")}
	filling := &CardOrder{ID: "20261126181352000002", CustomerID: 3, ProductID: "1010", AccountID: "1010000000000030",
		Price: 450000, FaceValue: 500000, Installments: 1, Paid: 200000, Filling: true, Status: "pending"}
	immediate := DefaultPolicy()
	immediate.Activation = ActivateImmediate
	for _, r := range []struct {
		name        string
		st          OpenCardState
		paySum      int64
		p           Policy
		code        Code
		newCustomer bool
		newOrder    bool
		activate    bool
		remark      string
	}{
		{"README first part: new customer, new order", OpenCardState{Terminal: term, Product: product, CashSeq: 2, CardSeq: 3, OrderSeq: 2},
			200000, DefaultPolicy(), OK, true, true, false, "已付2000.00元，尚欠2500.00元"},
		{"README second part joins the filling order", OpenCardState{Terminal: term, Product: product, Customer: known, Filling: filling},
			250000, DefaultPolicy(), OK, false, false, false, "已付清，卡1010000000000030将于日切对账后生效"},
		{"immediate policy activates", OpenCardState{Terminal: term, Product: product, Customer: known, Filling: filling},
			250000, immediate, OK, false, false, true, "已付清，卡1010000000000030已生效"},
		{"over what is due", OpenCardState{Terminal: term, Product: product, Customer: known, Filling: filling},
			250001, DefaultPolicy(), CodeAmount, false, false, false, ""},
		{"mobile of another ID", OpenCardState{Terminal: term, Product: product, Customer: &Customer{ID: 1, IDIndex: testIndex("11010519491231002X")}},
			100, DefaultPolicy(), CodeIdentity, false, false, false, ""},
		{"product not on sale", OpenCardState{Terminal: term, Product: &offSale}, 100, DefaultPolicy(), CodeProduct, false, false, false, ""},
		{"product unknown", OpenCardState{Terminal: term}, 100, DefaultPolicy(), CodeProduct, false, false, false, ""},
		{"terminal disabled", OpenCardState{Terminal: TerminalState{Found: true}, Product: product}, 100, DefaultPolicy(), CodeTerminal, false, false, false, ""},
	} {
		t.Run(r.name, func(t *testing.T) {
			req := docOpenCard()
			req.Mobile, req.PaySum = "13800000001", r.paySum
			req.ID = &SealedID{Indexes: [][]byte{testIndex(req.IDNumber)}}
			out, a, err := DecideOpenCard(req, &r.st, r.p, c, now, fpA, []byte("hash"))
			wantCode(t, err, r.code)
			if out.Record == nil {
				t.Fatal("no record for the key")
			}
			if err != nil {
				if out.Order != nil || out.NewCustomer != nil || out.Record.State != KeyDeclined {
					t.Fatalf("a decline created %+v", out)
				}
				return
			}
			if (out.NewCustomer != nil) != r.newCustomer || (out.NewOrder != nil) != r.newOrder || out.Activate != r.activate {
				t.Fatalf("outcome %+v", out)
			}
			if r.newCustomer && (out.NewCustomer.CashAccountID != "9999000000000020" || string(out.NewCustomer.PwHash) != "hash") {
				t.Fatalf("new customer %+v", out.NewCustomer)
			}
			if r.newOrder && (out.NewOrder.ID != "20261126181352000002" || out.NewOrder.AccountID != "1010000000000030") {
				t.Fatalf("new order %+v", out.NewOrder)
			}
			if a.Remark != r.remark || a.OrderID != out.Order.ID || out.Payment.Sum != r.paySum {
				t.Fatalf("answer %+v", a)
			}
			var replay CardOrderAnswer
			if err := ReplayKey(out.Record, fpA, &replay); err != nil || replay != *a {
				t.Fatalf("replay %+v %v", replay, err)
			}
		})
	}
}

func TestDecideRepeal(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	term := TerminalState{Found: true, Enabled: true}
	req := &RepealCardRequest{Origin: Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01"}, BatchNo: "000001", TerminalOrderID: "000003"}
	payment := func(sum int64, status string, settled bool) *CardPaymentRow {
		return &CardPaymentRow{ID: 5, OrderID: "o", Origin: req.Origin, Sum: sum, Status: status, Settled: settled}
	}
	order := func(paid int64, credited bool, released int) *CardOrder {
		o := &CardOrder{ID: "o", AccountID: "1010000000000030", Price: 450000, FaceValue: 500000, Installments: 1,
			Paid: paid, Status: "pending", Filling: paid < 450000, Credited: credited, Released: released}
		if credited {
			o.Status = "active"
		}
		return o
	}
	for _, r := range []struct {
		name     string
		st       RepealState
		code     Code
		write    bool
		takeBack bool
		status   string
		filling  bool
		remark   string
	}{
		{"README: second part repealed, order fills again", RepealState{Terminal: term, Payment: payment(250000, "paid", false), Order: order(450000, false, 0)},
			OK, true, false, "pending", true, "已撤销2500.00元，已付2000.00元，尚欠2500.00元"},
		{"another order of the product fills: this one waits", RepealState{Terminal: term, Payment: payment(250000, "paid", false), Order: order(450000, false, 0), OtherFilling: true},
			OK, true, false, "pending", false, "已撤销2500.00元，已付2000.00元，尚欠2500.00元"},
		{"only payment: order and card closed", RepealState{Terminal: term, Payment: payment(450000, "paid", false), Order: order(450000, false, 0)},
			OK, true, false, "closed", false, "已撤销4500.00元，订单已关闭"},
		{"credited, unused: taken back", RepealState{Terminal: term, Payment: payment(450000, "paid", false), Order: order(450000, true, 1), CardBalance: 500000},
			OK, true, true, "closed", false, "已撤销4500.00元，订单已关闭"},
		{"already repealed: the same answer", RepealState{Terminal: term, Payment: payment(250000, "repealed", false), Order: order(200000, false, 0)},
			OK, false, false, "", false, "已撤销2500.00元，已付2000.00元，尚欠2500.00元"},
		{"unknown payment", RepealState{Terminal: term}, CodeNoOriginal, false, false, "", false, ""},
		{"another store", RepealState{Terminal: term, Payment: &CardPaymentRow{Origin: Origin{SellerID: "SH01", StoreID: "ST02"}}}, CodeRepealDenied, false, false, "", false, ""},
		{"settled", RepealState{Terminal: term, Payment: payment(450000, "paid", true), Order: order(450000, false, 0)}, CodeRepealDenied, false, false, "", false, ""},
		{"card used", RepealState{Terminal: term, Payment: payment(450000, "paid", false), Order: order(450000, true, 1), CardBalance: 500000, CardSpent: true}, CodeRepealDenied, false, false, "", false, ""},
		{"card balance moved", RepealState{Terminal: term, Payment: payment(450000, "paid", false), Order: order(450000, true, 1), CardBalance: 499999}, CodeRepealDenied, false, false, "", false, ""},
		{"installments released", RepealState{Terminal: term, Payment: payment(450000, "paid", false), Order: &CardOrder{ID: "o", Price: 450000, FaceValue: 500000, Installments: 5, Paid: 450000, Credited: true, Released: 2}, CardBalance: 200000}, CodeRepealDenied, false, false, "", false, ""},
		{"unknown terminal", RepealState{}, CodeTerminal, false, false, "", false, ""},
	} {
		t.Run(r.name, func(t *testing.T) {
			out, a, err := DecideRepeal(req, &r.st, now)
			wantCode(t, err, r.code)
			if err != nil {
				return
			}
			if (out != nil) != r.write || a.Remark != r.remark {
				t.Fatalf("outcome %+v answer %+v", out, a)
			}
			if out == nil {
				return
			}
			if (out.TakeBack != nil) != r.takeBack || out.Order.Status != r.status || out.Order.Filling != r.filling {
				t.Fatalf("order %+v takeBack %v", out.Order, out.TakeBack)
			}
			if r.takeBack && (!Balanced(out.TakeBack) || out.Order.Credited || out.Order.Released != 0) {
				t.Fatalf("take back %v order %+v", out.TakeBack, out.Order)
			}
		})
	}
}

func TestDecideAccountQuery(t *testing.T) {
	term := TerminalState{Found: true, Enabled: true}
	cust := &Customer{ID: 1, PwHash: []byte{1}}
	cash := &AccountInfo{AccountID: "9999000000000012", Balance: 1000000, Status: Active, Remark: "现金账户"}
	good := Credentials{PINOpened: true, PasswordOK: true}
	for _, r := range []struct {
		name string
		st   AccountQueryState
		cred Credentials
		code Code
	}{
		{"README: the cash account", AccountQueryState{Terminal: term, Customer: cust, Account: cash}, good, OK},
		{"wrong password", AccountQueryState{Terminal: term, Customer: cust, Account: cash}, Credentials{PINOpened: true}, CodeWrongPassword},
		{"no account", AccountQueryState{Terminal: term, Customer: cust}, good, CodeNotFound},
		{"unknown consumer", AccountQueryState{Terminal: term}, good, CodeNotFound},
	} {
		t.Run(r.name, func(t *testing.T) {
			_, info, err := DecideAccountQuery(&AccountQuery{}, &r.st, r.cred, 5)
			wantCode(t, err, r.code)
			if err == nil && *info != *cash {
				t.Fatalf("info %+v", info)
			}
		})
	}
}

// Stored answers are versioned and do not depend on the domain's fields:
// the rows migration 0003 carried over (the old JSON with "v":1 added)
// decode to the answers they were.
func TestAnswerEncoding(t *testing.T) {
	bal := int64(295000)
	for _, r := range []struct {
		name   string
		stored string
		into   any
		want   any
	}{
		{"open_card as the old code wrote it", `{"v": 1, "remark": "已付2000.00元，尚欠2500.00元", "batchNo": "000001", "orderId": "20261126181352000002", "storeId": "ST01", "sellerId": "SH01", "mobileNum": "13800000001", "operatorId": "op01", "terminalId": "POS01", "terminalOrderId": "000002"}`,
			&CardOrderAnswer{}, &CardOrderAnswer{OrderID: "20261126181352000002", Mobile: "13800000001", SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op01", BatchNo: "000001", TerminalOrderID: "000002", Remark: "已付2000.00元，尚欠2500.00元"}},
		{"reversal of a tombstone (no balance, no account)", `{"v":1,"orderId":"ud20261126181354000006","consumerId":"","sum":0,"payTime":"2026-11-26 18:13:54","sellerId":"SH12345","storeId":"ST12345","terminalId":"ZJ000001","operatorId":"op01","batchNo":"000001","terminalOrderId":"000009","productName":"","productPrice":0,"productQuantity":"","remark":"","status":"支付失败，冲正成功"}`,
			&PaymentAnswer{}, &PaymentAnswer{OrderID: "ud20261126181354000006", PayTime: "2026-11-26 18:13:54", SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", OperatorID: "op01", BatchNo: "000001", TerminalOrderID: "000009", Status: StatusReversed}},
		{"cancel", `{"v":1,"orderId":"ud20261126181354000004","payTime":"2026-11-26 18:13:54","sellerId":"SH12345","storeId":"ST12345","terminalId":"ZJ000001","operatorId":"op01","batchNo":"000001","terminalOrderId":"000002","remark":"","status":"消费撤销成功","accountId":"1010123412341234","balance":295000}`,
			&CancelAnswer{}, &CancelAnswer{OrderID: "ud20261126181354000004", PayTime: "2026-11-26 18:13:54", SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", OperatorID: "op01", BatchNo: "000001", TerminalOrderID: "000002", Status: StatusCancelled, AccountID: "1010123412341234", Balance: &bal}},
	} {
		t.Run(r.name, func(t *testing.T) {
			if err := DecodeAnswer([]byte(r.stored), r.into); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.into, r.want) {
				t.Fatalf("decoded %+v, want %+v", r.into, r.want)
			}
			again, err := EncodeAnswer(r.want)
			if err != nil || !bytes.Contains(again, []byte(`"v":1`)) {
				t.Fatalf("encode: %s %v", again, err)
			}
		})
	}
	for _, bad := range []string{`{"orderId":"x"}`, `{"v":2,"orderId":"x"}`, `not json`} {
		if err := DecodeAnswer([]byte(bad), &CardOrderAnswer{}); err == nil {
			t.Errorf("DecodeAnswer(%s) accepted", bad)
		}
	}
}

func TestRetry(t *testing.T) {
	transient := &Transient{Err: errors.New("40001")}
	for _, r := range []struct {
		name     string
		results  []error
		calls    int
		code     Code
		canceled bool
	}{
		{"success at once", []error{nil}, 1, OK, false},
		{"transient then success", []error{transient, transient, nil}, 3, OK, false},
		{"a decline is not retried", []error{Errorf(CodeInsufficient, "余额不足")}, 1, CodeInsufficient, false},
		{"an unknown outcome is not retried", []error{errors.New("connection lost after COMMIT")}, 1, CodeInternal, false},
		{"transient every time: 10018", []error{transient, transient, transient, transient}, 4, CodeBusy, false},
		{"deadline while waiting: 10018 at once", []error{transient, transient}, 1, CodeBusy, true},
	} {
		t.Run(r.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if r.canceled {
				cancel()
			}
			calls := 0
			start := time.Now()
			err := Retry(ctx, 4, func() error {
				calls++
				return r.results[calls-1]
			})
			wantCode(t, err, r.code)
			if calls != r.calls {
				t.Fatalf("%d calls, want %d", calls, r.calls)
			}
			if r.canceled && time.Since(start) > 100*time.Millisecond {
				t.Fatal("Retry outlived its context")
			}
		})
	}
}
