package mapfront

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// Rows use the partner document's example values where it has them
// (spec/offline-api.zh.md) and SPEC section 5's cases.

func wantCode(t *testing.T, err error, want Code) {
	t.Helper()
	if got := ErrorCode(err); got != want {
		t.Fatalf("errcode %d (%v), want %d", got, err, want)
	}
}

func TestValidIDNumber(t *testing.T) {
	for _, c := range []struct {
		id   string
		want bool
	}{
		{"11010519491231002X", true},   // the demo customer (SPEC section 8)
		{"110105194912310038", true},   // README's new customer
		{"110105194912310021", false},  // check digit wrong
		{"515411244445444444X", false}, // the document's example: 19 characters
		{"11010519491231002x", false},  // lower case before NormalizeIDNumber
		{"1101051949123100", false},    // too short
		{"11010519491231002A", false},  // A is no check character
		{"A1010519491231002X", false},  // letters in the body
		{"", false},
	} {
		if got := ValidIDNumber(c.id); got != c.want {
			t.Errorf("ValidIDNumber(%q) = %v, want %v", c.id, got, c.want)
		}
	}
	if got := NormalizeIDNumber("11010519491231002x"); !ValidIDNumber(got) {
		t.Errorf("x read as X: %q is not valid", got)
	}
}

func TestValidMobileAndConsumer(t *testing.T) {
	for _, c := range []struct {
		s              string
		mobile, accout bool
	}{
		{"13912345678", true, false}, // the document's consumerId
		{"23912345678", false, false},
		{"1391234567", false, false},
		{"139123456789", false, false},
		{"1391234567a", false, false},
		{"1010123412341234", false, true}, // the demo card
		{"101012341234123", false, false},
		{"", false, false},
	} {
		if got := ValidMobile(c.s); got != c.mobile {
			t.Errorf("ValidMobile(%q) = %v", c.s, got)
		}
		if got := ValidAccountID(c.s); got != c.accout {
			t.Errorf("ValidAccountID(%q) = %v", c.s, got)
		}
		err := checkConsumer(c.s)
		if (err == nil) != (c.mobile || c.accout) {
			t.Errorf("checkConsumer(%q) = %v", c.s, err)
		}
	}
}

func docPay() *PayRequest {
	return &PayRequest{
		Origin:  Origin{SellerID: "SH12345", StoreID: "ST12345", TerminalID: "ZJ000001", OperatorID: "zhangsan"},
		BatchNo: "123123123122132", TerminalOrderID: "1234567890123456789", ConsumerID: "13912345678",
		PINBlock: "B5BA8AF886E80014", Sum: 5000, ProductName: "0号柴油", ProductPrice: 500, ProductQuantity: "1.55",
	}
}

func TestPayRequestValidate(t *testing.T) {
	p := DefaultPolicy()
	for _, c := range []struct {
		name string
		mod  func(r *PayRequest)
		want Code
		msg  string
	}{
		{"document example", func(*PayRequest) {}, OK, ""},
		{"by accountId", func(r *PayRequest) { r.ConsumerID = "1010123412341234" }, OK, ""},
		{"consumerId neither", func(r *PayRequest) { r.ConsumerID = "1234" }, CodeMalformed, "consumerId"},
		{"no PIN block", func(r *PayRequest) { r.PINBlock = "" }, CodeMalformed, "paymentCodeDES"},
		{"no batchNo", func(r *PayRequest) { r.BatchNo = "" }, CodeMalformed, "batchNo"},
		{"sum zero", func(r *PayRequest) { r.Sum = 0 }, CodeAmount, ""},
		{"sum negative", func(r *PayRequest) { r.Sum = -1 }, CodeAmount, ""},
		{"sum one fen", func(r *PayRequest) { r.Sum = 1 }, OK, ""},
		{"sum at the limit", func(r *PayRequest) { r.Sum = 5_000_000 }, OK, ""},
		{"sum over the limit", func(r *PayRequest) { r.Sum = 5_000_001 }, CodeAmount, "50000.00"},
		{"productName 65 characters", func(r *PayRequest) { r.ProductName = strings.Repeat("油", 65) }, CodeMalformed, "productName"},
		{"productName 64 characters", func(r *PayRequest) { r.ProductName = strings.Repeat("油", 64) }, OK, ""},
		{"remark 257", func(r *PayRequest) { r.Remark = strings.Repeat("a", 257) }, CodeMalformed, "remark"},
		{"negative productPrice", func(r *PayRequest) { r.ProductPrice = -1 }, CodeMalformed, "productPrice"},
		{"terminalId 33", func(r *PayRequest) { r.TerminalID = strings.Repeat("1", 33) }, CodeMalformed, "terminalId"},
		{"not UTF-8", func(r *PayRequest) { r.Remark = "\xff" }, CodeMalformed, "remark"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := docPay()
			c.mod(r)
			err := r.Validate(p)
			wantCode(t, err, c.want)
			if c.msg != "" && !strings.Contains(err.Error(), c.msg) {
				t.Errorf("message %q does not name %s", err, c.msg)
			}
		})
	}
}

func docOpenCard() *OpenCardRequest {
	return &OpenCardRequest{
		Origin:  Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "zhangsan"},
		BatchNo: "1234567", TerminalOrderID: "1234567890", IDNumber: "110105194912310038", Mobile: "13912345678",
		Referrer: "12345678", ProductID: "1010", PaySum: 100000, HasPaySum: true,
	}
}

func TestOpenCardRequestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(r *OpenCardRequest)
		want Code
	}{
		{"document example with a valid ID", func(*OpenCardRequest) {}, OK},
		{"document's own 19-character ID", func(r *OpenCardRequest) { r.IDNumber = "515411244445444444X" }, CodeMalformed},
		{"lower-case x accepted", func(r *OpenCardRequest) { r.IDNumber = "11010519491231002x" }, OK},
		{"bad mobile", func(r *OpenCardRequest) { r.Mobile = "23912345678" }, CodeMalformed},
		{"paySum absent: full price", func(r *OpenCardRequest) { r.HasPaySum, r.PaySum = false, 0 }, OK},
		{"paySum zero", func(r *OpenCardRequest) { r.PaySum = 0 }, CodeAmount},
		{"paySum negative", func(r *OpenCardRequest) { r.PaySum = -100 }, CodeAmount},
		{"paySum over MaxAmount", func(r *OpenCardRequest) { r.PaySum = MaxAmount + 1 }, CodeAmount},
		{"product id not 4 digits", func(r *OpenCardRequest) { r.ProductID = "10100" }, CodeProduct},
		{"referrer optional", func(r *OpenCardRequest) { r.Referrer = "" }, OK},
		{"operatorId required", func(r *OpenCardRequest) { r.OperatorID = "" }, CodeMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := docOpenCard()
			c.mod(r)
			wantCode(t, r.Validate(), c.want)
		})
	}
}

// Issue 10: a NUL or another C0 code in any string field is the client's
// mistake, 10001 naming the field, never a database error.
func TestControlCharactersAreMalformed(t *testing.T) {
	type setter func(s string) error
	p := DefaultPolicy()
	pay := func(f func(r *PayRequest, s string)) setter {
		return func(s string) error { r := docPay(); f(r, s); return r.Validate(p) }
	}
	open := func(f func(r *OpenCardRequest, s string)) setter {
		return func(s string) error { r := docOpenCard(); f(r, s); return r.Validate() }
	}
	cancel := func(f func(r *CancelPayRequest, s string)) setter {
		return func(s string) error {
			r := &CancelPayRequest{Origin: docPay().Origin, BatchNo: "1", TerminalOrderID: "2", OrderID: "ud20261126181354000003"}
			f(r, s)
			return r.Validate()
		}
	}
	query := func(f func(r *AccountQuery, s string)) setter {
		return func(s string) error {
			r := &AccountQuery{Origin: docPay().Origin, BatchNo: "1", TerminalOrderID: "2", ConsumerID: "13912345678", PINBlock: "B5BA8AF886E80014"}
			f(r, s)
			return r.Validate()
		}
	}
	for _, c := range []struct {
		field string
		set   setter
	}{
		{"operatorId", pay(func(r *PayRequest, s string) { r.OperatorID = "zhang" + s + "san" })},
		{"sellerId", pay(func(r *PayRequest, s string) { r.SellerID = s + "SH12345" })},
		{"terminalOrderId", pay(func(r *PayRequest, s string) { r.TerminalOrderID = "1" + s })},
		{"productName", pay(func(r *PayRequest, s string) { r.ProductName = "0号" + s + "柴油" })},
		{"productQuantity", pay(func(r *PayRequest, s string) { r.ProductQuantity = "1.55" + s })},
		{"remark", pay(func(r *PayRequest, s string) { r.Remark = s })},
		{"paymentCodeDES", pay(func(r *PayRequest, s string) { r.PINBlock = "B5BA8AF8" + s })},
		{"referrer", open(func(r *OpenCardRequest, s string) { r.Referrer = "123" + s })},
		{"storeId", open(func(r *OpenCardRequest, s string) { r.StoreID = "ST" + s })},
		{"batchNo", open(func(r *OpenCardRequest, s string) { r.BatchNo = s + "1234567" })},
		{"orderId", cancel(func(r *CancelPayRequest, s string) { r.OrderID = "ud" + s })},
		{"remark", query(func(r *AccountQuery, s string) { r.Remark = "x" + s })},
	} {
		for _, ctl := range []string{"\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f"} {
			err := c.set(ctl)
			wantCode(t, err, CodeMalformed)
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("%q in %s: message %q does not name the field", ctl, c.field, err)
			}
		}
		if err := c.set(" "); ErrorCode(err) == CodeMalformed && strings.Contains(err.Error(), "控制") {
			t.Errorf("a space in %s was taken for a control character", c.field)
		}
	}
}

func shanghai(t *testing.T) Clock {
	t.Helper()
	zone, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return Clock{Zone: zone}
}

func TestOrderID(t *testing.T) {
	c := shanghai(t)
	at := time.Date(2015, 1, 2, 4, 12, 0, 0, time.UTC) // the document's payTime 2015-01-02 12:12:00 in Shanghai
	for _, r := range []struct {
		seq       int64
		want, pay string
	}{
		{1, "20150102121200000001", "ud20150102121200000001"},
		{999_999, "20150102121200999999", "ud20150102121200999999"},
		{1_000_003, "20150102121200000003", "ud20150102121200000003"},
		{0, "20150102121200000000", "ud20150102121200000000"},
	} {
		if got := OrderID(c, at, r.seq); got != r.want || len(got) != 20 {
			t.Errorf("OrderID(seq %d) = %q, want %q", r.seq, got, r.want)
		}
		if got := PayOrderID(c, at, r.seq); got != r.pay || len(got) != 22 {
			t.Errorf("PayOrderID(seq %d) = %q, want %q", r.seq, got, r.pay)
		}
	}
}

func TestAccountID(t *testing.T) {
	for _, r := range []struct {
		prefix string
		seq    int64
		want   string
	}{
		{CashPrefix, 1, "9999000000000012"},          // README: the demo cash account on a fresh database
		{"1010", 3, "1010000000000030"},              // README: the split-paid card
		{"1010", 12341234123, "101012341234123"},     // check digit verified below
		{"1012", 100_000_000_003, "101200000000003"}, // the sequence wraps at 11 digits
	} {
		got := AccountID(r.prefix, r.seq)
		if !strings.HasPrefix(got, r.want) || !ValidAccountID(got) || !luhnValid(got) {
			t.Errorf("AccountID(%s, %d) = %q, want %q", r.prefix, r.seq, got, r.want)
		}
	}
}

// luhnValid checks a whole number with its check digit, written
// independently of luhn (the standard doubling from the right).
func luhnValid(s string) bool {
	sum := 0
	for i := 0; i < len(s); i++ {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 {
			d = d * 2 % 9
			if d == 0 && s[len(s)-1-i] == '9' {
				d = 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func TestFormatYuan(t *testing.T) {
	for _, r := range []struct {
		fen  int64
		want string
	}{
		{450000, "4500.00"}, {250000, "2500.00"}, {5000, "50.00"}, {1, "0.01"}, {0, "0.00"}, {-150, "-1.50"},
		{5_000_000, "50000.00"},
	} {
		if got := FormatYuan(r.fen); got != r.want {
			t.Errorf("FormatYuan(%d) = %q, want %q", r.fen, got, r.want)
		}
	}
}

func TestInitialPassword(t *testing.T) {
	none := DefaultPolicy()
	none.Password = PasswordNone
	for _, r := range []struct {
		p    Policy
		id   string
		want string
	}{
		{DefaultPolicy(), "11010519491231002X", "310020"}, // X read as 0
		{DefaultPolicy(), "11010519491231002x", "310020"},
		{DefaultPolicy(), "110105194912310038", "310038"},
		{none, "110105194912310038", ""},
	} {
		if got := r.p.InitialPassword(r.id); got != r.want {
			t.Errorf("%s InitialPassword(%s) = %q, want %q", r.p.Password, r.id, got, r.want)
		}
	}
}

func TestChooseAccount(t *testing.T) {
	card1 := AccountChoice{ID: "1010123412341234", Kind: "card", Status: Active, Balance: 300000}
	card2 := AccountChoice{ID: "1011000000000040", Kind: "card", Status: Active, Balance: 800000}
	frozen := AccountChoice{ID: "1012000000000050", Kind: "card", Status: Frozen, Balance: 900000}
	cash := AccountChoice{ID: "9999000000000012", Kind: "cash", Status: Active, Balance: 1000000}
	for _, r := range []struct {
		name     string
		accounts []AccountChoice
		sum      int64
		rule     AccountRule
		want     string
		code     Code
	}{
		{"card first: earliest card covers", []AccountChoice{card1, card2, cash}, 5000, CardFirst, card1.ID, OK},
		{"card first: a later card covers", []AccountChoice{card1, card2, cash}, 500000, CardFirst, card2.ID, OK},
		{"card first: no card covers, cash does", []AccountChoice{card1, cash}, 400000, CardFirst, cash.ID, OK},
		{"frozen card skipped", []AccountChoice{frozen, cash}, 100, CardFirst, cash.ID, OK},
		{"cash first", []AccountChoice{card1, cash}, 100, CashFirst, cash.ID, OK},
		{"cash first: cash short, card pays", []AccountChoice{card2, {ID: cash.ID, Kind: "cash", Status: Active, Balance: 10}}, 100, CashFirst, card2.ID, OK},
		{"never split: nothing covers", []AccountChoice{card1, cash}, 1_000_001, CardFirst, "", CodeInsufficient},
		{"exact balance covers", []AccountChoice{card1}, 300000, CardFirst, card1.ID, OK},
		{"no accounts", nil, 1, CardFirst, "", CodeInsufficient},
	} {
		t.Run(r.name, func(t *testing.T) {
			got, err := ChooseAccount(r.accounts, r.sum, r.rule)
			wantCode(t, err, r.code)
			if got.ID != r.want {
				t.Fatalf("chose %q, want %q", got.ID, r.want)
			}
		})
	}
}

func TestCheckAccount(t *testing.T) {
	for _, r := range []struct {
		status  AccountStatus
		balance int64
		sum     int64
		code    Code
		msg     string
	}{
		{Active, 300000, 5000, OK, ""},
		{Active, 300000, 300001, CodeInsufficient, "余额不足"},
		{Pending, 300000, 1, CodeAccountState, "待生效"},
		{Frozen, 300000, 1, CodeAccountState, "冻结"},
		{Closed, 300000, 1, CodeAccountState, "已注销"},
	} {
		err := CheckAccount(AccountChoice{ID: "1010123412341234", Status: r.status, Balance: r.balance}, r.sum)
		wantCode(t, err, r.code)
		if r.msg != "" && !strings.Contains(err.Error(), r.msg) {
			t.Errorf("%s: message %q", r.status, err)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	for _, r := range []struct {
		name         string
		set, locked  bool
		failures     int
		ok           bool
		wantFailures int
		wantLocked   bool
		code         Code
		msg          string
	}{
		{"right password resets", true, false, 3, true, 0, false, OK, ""},
		{"first wrong", true, false, 0, false, 1, false, CodeWrongPassword, "还可尝试4次"},
		{"fourth wrong", true, false, 3, false, 4, false, CodeWrongPassword, "还可尝试1次"},
		{"fifth wrong locks, and says so", true, false, 4, false, 5, true, CodePasswordLocked, "错误次数已达上限，密码已锁定"},
		{"locked, even the right one", true, true, 5, true, 5, true, CodePasswordLocked, "锁定"},
		{"not set", false, false, 0, true, 0, false, CodeNoPassword, "未设置"},
	} {
		t.Run(r.name, func(t *testing.T) {
			f, l, err := CheckPassword(r.set, r.locked, r.failures, r.ok, 5)
			wantCode(t, err, r.code)
			if f != r.wantFailures || l != r.wantLocked {
				t.Fatalf("failures %d locked %v, want %d %v", f, l, r.wantFailures, r.wantLocked)
			}
			if r.msg != "" && !strings.Contains(err.Error(), r.msg) {
				t.Fatalf("message %q, want %q", err, r.msg)
			}
		})
	}
}

// SPEC section 5: five wrong in a row lock (the fifth is 10008); the sixth is
// 10008 even with the right password; 10017 never counts.
func TestPasswordLockSequence(t *testing.T) {
	t0 := TerminalState{Found: true, Enabled: true}
	o := Origin{TerminalID: "ZJ000001"}
	c := &Customer{ID: 7, PwHash: []byte{1}}
	for i, step := range []struct {
		cred Credentials
		code Code
	}{
		{Credentials{PINOpened: true}, CodeWrongPassword},
		{Credentials{PINOpened: false}, CodePINBlock}, // does not count
		{Credentials{PINOpened: true}, CodeWrongPassword},
		{Credentials{PINOpened: true}, CodeWrongPassword},
		{Credentials{PINOpened: true}, CodeWrongPassword},
		{Credentials{PINOpened: true}, CodePasswordLocked}, // the fifth: locked
		{Credentials{PINOpened: true, PasswordOK: true}, CodePasswordLocked},
	} {
		change, err := Authenticate(t0, o, c, step.cred, 5)
		wantCode(t, err, step.code)
		if change != nil {
			c.Failures, c.Locked = change.Failures, change.Locked
		}
		if step.code == CodePINBlock && change != nil {
			t.Fatalf("step %d: a PIN block that does not open changed the count", i)
		}
	}
	if c.Failures != 5 || !c.Locked {
		t.Fatalf("after five wrong: %+v", c)
	}
}

func TestAuthenticateOrder(t *testing.T) {
	ok := TerminalState{Found: true, Enabled: true}
	o := Origin{TerminalID: "ZJ000001"}
	cust := &Customer{ID: 1, PwHash: []byte{1}, Failures: 2}
	good := Credentials{PINOpened: true, PasswordOK: true}
	for _, r := range []struct {
		name   string
		t      TerminalState
		c      *Customer
		cred   Credentials
		code   Code
		change *PasswordChange
	}{
		{"unknown terminal before anything", TerminalState{}, nil, Credentials{}, CodeTerminal, nil},
		{"disabled terminal", TerminalState{Found: true}, cust, good, CodeTerminal, nil},
		{"PIN block before consumer", ok, nil, Credentials{}, CodePINBlock, nil},
		{"unknown consumer", ok, nil, good, CodeNotFound, nil},
		{"success resets the count", ok, cust, good, OK, &PasswordChange{CustomerID: 1}},
		{"success without failures writes nothing", ok, &Customer{ID: 1, PwHash: []byte{1}}, good, OK, nil},
		{"wrong counts", ok, cust, Credentials{PINOpened: true}, CodeWrongPassword, &PasswordChange{CustomerID: 1, Failures: 3}},
		{"no password", ok, &Customer{ID: 1}, good, CodeNoPassword, nil},
		{"success under an old key writes the new hash", ok, &Customer{ID: 1, PwHash: []byte{1}},
			Credentials{PINOpened: true, PasswordOK: true, Rehash: []byte{2}}, OK, &PasswordChange{CustomerID: 1, Rehash: []byte{2}}},
		{"a decline never writes a new hash", ok, &Customer{ID: 1, PwHash: []byte{1}, Locked: true},
			Credentials{PINOpened: true, PasswordOK: true, Rehash: []byte{2}}, CodePasswordLocked, nil},
	} {
		t.Run(r.name, func(t *testing.T) {
			change, err := Authenticate(r.t, o, r.c, r.cred, 5)
			wantCode(t, err, r.code)
			if !reflect.DeepEqual(change, r.change) {
				t.Fatalf("change %+v, want %+v", change, r.change)
			}
		})
	}
}

func TestDecideCardPayment(t *testing.T) {
	const price = 450000 // product 1010 of the demo data
	for _, r := range []struct {
		name     string
		paid     int64
		sum      int64
		has      bool
		wantPaid int64
		complete bool
		code     Code
	}{
		{"README first part", 0, 200000, true, 200000, false, OK},
		{"README second part completes", 200000, 250000, true, 450000, true, OK},
		{"absent paySum is the full price", 0, 0, false, 450000, true, OK},
		{"absent paySum after a part is over what is due", 200000, 0, false, 0, false, CodeAmount},
		{"over what is still due", 200000, 250001, true, 0, false, CodeAmount},
		{"one fen", 0, 1, true, 1, false, OK},
		{"the last fen", 449999, 1, true, 450000, true, OK},
		{"nothing due", 450000, 1, true, 0, false, CodeAmount},
	} {
		t.Run(r.name, func(t *testing.T) {
			req := &OpenCardRequest{PaySum: r.sum, HasPaySum: r.has}
			d, err := DecideCardPayment(price, r.paid, req)
			wantCode(t, err, r.code)
			if err == nil && (d.PaidAfter != r.wantPaid || d.Complete != r.complete) {
				t.Fatalf("decision %+v", d)
			}
		})
	}
}

func TestCardRemark(t *testing.T) {
	for _, r := range []struct {
		price, paid int64
		p           ActivationPolicy
		want        string
	}{
		{450000, 200000, ActivateOnSettlement, "已付2000.00元，尚欠2500.00元"},
		{450000, 450000, ActivateOnSettlement, "已付清，卡1010000000000030将于日切对账后生效"},
		{450000, 450000, ActivateImmediate, "已付清，卡1010000000000030已生效"},
		{450000, 200000, ActivateImmediate, "已付2000.00元，尚欠2500.00元"},
	} {
		if got := CardRemark(r.price, r.paid, r.p, "1010000000000030"); got != r.want {
			t.Errorf("CardRemark(%d, %d, %s) = %q, want %q", r.price, r.paid, r.p, got, r.want)
		}
	}
}

func TestLedgerLegsBalance(t *testing.T) {
	discount := &CardOrder{ID: "o1", AccountID: "1010000000000030", Price: 450000, FaceValue: 500000, Installments: 1, Released: 1}
	installment := &CardOrder{ID: "o2", AccountID: "2020000000000010", Price: 90000, FaceValue: 100000, Installments: 3, Released: 1}
	pay := &PayOrder{ID: "ud1", AccountID: "1010123412341234", Amount: 5000}
	for _, r := range []struct {
		name   string
		legs   []Leg
		card   string
		amount int64
	}{
		{"discount card activation credits the face value", ActivationLegs(discount), discount.AccountID, 500000},
		{"installment activation credits part 1", ActivationLegs(installment), installment.AccountID, 33333},
		{"repeal takes back what was credited", RepealLegs(discount), discount.AccountID, -500000},
		{"repeal of an installment card", RepealLegs(installment), installment.AccountID, -33333},
		{"pay debits", PayLegs(pay), pay.AccountID, -5000},
		{"refund credits", RefundLegs(pay), pay.AccountID, 5000},
	} {
		if !Balanced(r.legs) {
			t.Errorf("%s: legs %v do not balance", r.name, r.legs)
		}
		var got int64
		for _, l := range MergeLegs(r.legs) {
			if l.Amount == 0 {
				t.Errorf("%s: MergeLegs kept a zero leg", r.name)
			}
			if l.Account == r.card {
				got += l.Amount
			}
		}
		if got != r.amount {
			t.Errorf("%s: card moves %d, want %d", r.name, got, r.amount)
		}
	}
}

func TestMergeLegs(t *testing.T) {
	for _, r := range []struct {
		in   []Leg
		want []Leg
	}{
		{[]Leg{{"a", 5}, {"b", -5}}, []Leg{{"a", 5}, {"b", -5}}},
		{[]Leg{{"a", 5}, {"a", -2}, {"b", -3}}, []Leg{{"a", 3}, {"b", -3}}},
		{[]Leg{{"a", 5}, {"c", 0}, {"b", -5}}, []Leg{{"a", 5}, {"b", -5}}},
		{[]Leg{{"a", 5}, {"a", -5}}, []Leg{}},
	} {
		got := MergeLegs(r.in)
		if len(got) != len(r.want) {
			t.Errorf("MergeLegs(%v) = %v, want %v", r.in, got, r.want)
			continue
		}
		for i := range got {
			if got[i] != r.want[i] {
				t.Errorf("MergeLegs(%v) = %v, want %v", r.in, got, r.want)
			}
		}
	}
}
