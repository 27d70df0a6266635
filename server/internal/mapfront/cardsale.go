package mapfront

import (
	"errors"
	"fmt"
	"time"
)

// CardPayment is the decision for one open_card payment toward a card order
// (SPEC section 5, split payments 拆单付款).
type CardPayment struct {
	PaySum    int64 // this payment, fen
	PaidAfter int64 // the order's paid sum with it
	Complete  bool  // the price is reached
}

// DecideCardPayment applies an open_card payment to an order of the given
// price that has paid so far. An absent paySum means the full price; a
// payment over what is still due is 10015.
func DecideCardPayment(price, paid int64, r *OpenCardRequest) (CardPayment, error) {
	sum := price
	if r.HasPaySum {
		sum = r.PaySum
	}
	due := price - paid
	if sum <= 0 || sum > due {
		return CardPayment{}, Errorf(CodeAmount, "支付金额%s元超过应付余额%s元", FormatYuan(sum), FormatYuan(due))
	}
	return CardPayment{PaySum: sum, PaidAfter: paid + sum, Complete: paid+sum == price}, nil
}

// CardRemark tells the POS what the payment did: paid so far and still due,
// or when the card takes effect.
func CardRemark(price, paid int64, p ActivationPolicy, accountID string) string {
	switch {
	case paid < price:
		return "已付" + FormatYuan(paid) + "元，尚欠" + FormatYuan(price-paid) + "元"
	case p == ActivateImmediate:
		return "已付清，卡" + accountID + "已生效"
	default:
		return "已付清，卡" + accountID + "将于日切对账后生效"
	}
}

// CheckIdentity applies the customer rule of open_card (SPEC section 5): an
// existing mobile number with another ID number is 10016. The ID numbers
// are compared by blind index (SPEC section 7); an index under a master key
// this server does not hold is ErrKeyNotHeld (internal), never 10016.
func CheckIdentity(c *Customer, id *SealedID) error {
	if c != nil && !id.Matches(c.IDIndex) {
		if id.Foreign(c.IDIndex) {
			return fmt.Errorf("%w: the ID number of customer %d has its blind index under a master key this server does not hold",
				ErrKeyNotHeld, c.ID)
		}
		return Errorf(CodeIdentity, "身份证号与手机号不属于同一客户")
	}
	return nil
}

// ErrKeyNotHeld: a stored value names a master key this server does not
// hold (an old key dropped before rotate-keys finished). Internal: the
// request answers 10000 with a reference and records nothing, so that the
// same request answers right once the key is given back.
var ErrKeyNotHeld = errors.New("stored value under a master key not held")

// CheckProduct applies the product rule: unknown or not on sale is 10004.
func CheckProduct(p *Product, id string) error {
	if p == nil || !p.OnSale {
		return Errorf(CodeProduct, "产品%s不存在或未上架", id)
	}
	return nil
}

// DecideOpenCard decides an open_card payment on a new key (SPEC section 5):
// terminal, product, identity and amount, in that order, before anything
// is created, so that a declined payment leaves no customer, account or
// order behind. The payment joins the customer's filling order of the
// product or starts one with a pending card account (a new customer gets a
// cash account and the policy's initial password, whose hash the service
// computed as pwHash); under the immediate policy a fully paid card is
// activated. Every stored decline becomes the key's record, which keeps the
// request's fingerprint sealed as the service gives it (sealedFP,
// SealKeyFingerprint).
func DecideOpenCard(r *OpenCardRequest, st *OpenCardState, p Policy, c Clock, now time.Time, sealedFP, pwHash []byte) (*OpenCardOutcome, *CardOrderAnswer, error) {
	out := &OpenCardOutcome{Key: r.Key(), Now: now, Mobile: r.Mobile}
	err := CheckTerminal(st.Terminal, r.Origin)
	if err == nil {
		err = CheckProduct(st.Product, r.ProductID)
	}
	if err == nil {
		err = CheckIdentity(st.Customer, r.ID)
	}
	var o CardOrder
	if err == nil {
		if st.Filling != nil {
			o = *st.Filling
		} else {
			pr := st.Product
			o = CardOrder{ID: OrderID(c, now, st.OrderSeq), ProductID: pr.ID, AccountID: AccountID(pr.ID, st.CardSeq),
				Price: pr.Price, FaceValue: pr.FaceValue, Installments: pr.Installments, Filling: true,
				Status: "pending", Referrer: r.Referrer}
		}
	}
	var d CardPayment
	if err == nil {
		d, err = DecideCardPayment(o.Price, o.Paid, r)
	}
	if err != nil {
		rec, rerr := Declined(sealedFP, err)
		if rerr != nil {
			return nil, nil, err
		}
		out.Record = rec
		return out, nil, err
	}
	if st.Customer == nil {
		out.NewCustomer = &NewCustomer{Mobile: r.Mobile, ID: r.ID, PwHash: pwHash,
			CashAccountID: AccountID(CashPrefix, st.CashSeq)}
	}
	if st.Filling == nil {
		started := o
		out.NewOrder = &started
	}
	o.Paid, o.Filling = d.PaidAfter, !d.Complete
	if d.Complete && p.Activation == ActivateImmediate {
		out.Activate = true
		o.Status, o.Credited, o.Released, o.Filling, o.ActivatedAt = "active", true, 1, false, &now
	}
	out.Order = &o
	out.Payment = &CardPaymentRow{OrderID: o.ID, Origin: r.Origin, BatchNo: r.BatchNo, TerminalOrderID: r.TerminalOrderID,
		Sum: d.PaySum, Status: "paid", BusinessDate: c.BusinessDate(now)}
	a := CardAnswer(r.Origin, r.BatchNo, r.TerminalOrderID, o.ID, r.Mobile, CardRemark(o.Price, o.Paid, p.Activation, o.AccountID))
	body, err := EncodeAnswer(a)
	if err != nil {
		return nil, nil, err
	}
	out.Record = &KeyRecord{Fingerprint: sealedFP, State: KeyApproved, Answer: body}
	return out, a, nil
}

// CardAnswer is the one constructor of open_card and repeal_card answers.
func CardAnswer(o Origin, batchNo, terminalOrderID, orderID, mobile, remark string) *CardOrderAnswer {
	return &CardOrderAnswer{OrderID: orderID, Mobile: mobile, SellerID: o.SellerID, StoreID: o.StoreID,
		TerminalID: o.TerminalID, OperatorID: o.OperatorID, BatchNo: batchNo, TerminalOrderID: terminalOrderID,
		Remark: remark}
}

// CreditedValue is what an activated card order has credited to its card:
// the released installment parts (the whole face value for a discount card).
func CreditedValue(o *CardOrder) int64 {
	var credited int64
	for n := 1; n <= o.Released; n++ {
		credited += InstallmentPart(o.FaceValue, o.Installments, n)
	}
	return credited
}

// DecideRepeal decides a repeal_card (SPEC section 5): the payment named by
// the key must exist (10010) and come from the same seller and store
// (10013); a repealed payment answers again; a settled one cannot be
// repealed (10013), nor one refunded by people (10011), nor a frozen card
// (10006); value already credited is taken back only from an unused
// card holding exactly what was credited, and not after later installments
// were released (10013). The payment then stops counting toward its order:
// an order with nothing paid is closed with its card; otherwise it takes
// payments again unless the customer has another order of the product
// filling. Nothing is stored under a key: a repeat finds the payment
// repealed.
func DecideRepeal(r *RepealCardRequest, st *RepealState, now time.Time) (*RepealOutcome, *CardOrderAnswer, error) {
	if err := CheckTerminal(st.Terminal, r.Origin); err != nil {
		return nil, nil, err
	}
	pm := st.Payment
	switch {
	case pm == nil:
		return nil, nil, Errorf(CodeNoOriginal, "原开卡交易不存在")
	case pm.Origin.SellerID != r.SellerID || pm.Origin.StoreID != r.StoreID:
		return nil, nil, Errorf(CodeRepealDenied, "只能在原商户、门店、终端撤销")
	}
	o := *st.Order
	switch {
	case pm.Status == "repealed":
		return nil, CardAnswer(r.Origin, r.BatchNo, r.TerminalOrderID, o.ID, st.Mobile, RepealRemark(&o, pm.Sum)), nil
	case pm.Status == "refunded":
		// People decided to refund it (RefundOwed): it no longer counts
		// toward the order, and a reversal by the POSP would pay the
		// customer a second time.
		return nil, nil, Errorf(CodeAlreadyUndone, "该笔开卡付款已记为应退款，不能撤销")
	case pm.Settled:
		return nil, nil, Errorf(CodeRepealDenied, "该笔开卡付款已日切对账，不能撤销")
	case st.CardStatus == Frozen:
		// Only UnfreezeAccount lifts a freeze: a repeal would take the
		// card back to pending and a later payment to active.
		return nil, nil, Errorf(CodeAccountState, "卡已冻结，不能撤销")
	}
	out := &RepealOutcome{Key: r.Key(), PaymentID: pm.ID, Now: now}
	if o.Credited {
		if st.CardSpent || st.CardBalance != CreditedValue(&o) {
			return nil, nil, Errorf(CodeRepealDenied, "卡已使用，不能撤销")
		}
		if o.Released > 1 {
			// Later installments were released into the ledger: the card has
			// lived past its first month and its releases stay on record.
			return nil, nil, Errorf(CodeRepealDenied, "分期卡已发放后续分期，不能撤销")
		}
		out.TakeBack = RepealLegs(&o)
		o.Status, o.Credited, o.Released, o.ActivatedAt = "pending", false, 0, nil
	}
	withdraw(&o, pm.Sum, st.OtherFilling)
	out.Order = &o
	return out, CardAnswer(r.Origin, r.BatchNo, r.TerminalOrderID, o.ID, st.Mobile, RepealRemark(&o, pm.Sum)), nil
}

// withdraw takes a payment of sum fen out of the (uncredited) order o: an
// order with nothing paid is closed with its card; otherwise it takes
// payments again unless the customer has another order of the product
// filling (otherFilling).
func withdraw(o *CardOrder, sum int64, otherFilling bool) {
	o.Paid -= sum
	if o.Paid == 0 {
		o.Status, o.Filling = "closed", false
	} else {
		o.Filling = !otherFilling
	}
}

// RefundOwed decides the refund_owed resolution of a missing_from_file item
// (SPEC section 6, Manual handling): the customer is refunded the payment pm
// outside mapfront, so it must stop counting toward its order o, or a
// record arriving later, or a manual activation, would give the customer
// the card's value as well as the refund. The payment must still be paid
// and unconfirmed: a repealed one was refunded by the POSP already (10011),
// a settled one was confirmed by a record (10013). An order already
// credited (the immediate policy) is refused too (10013): its card holds the
// value, which only a repeal at the POS takes back. It returns the order
// after the refund (as withdraw leaves it).
func RefundOwed(pm *CardPaymentRow, o CardOrder, otherFilling bool) (*CardOrder, error) {
	switch {
	case pm.Status == "repealed":
		return nil, Errorf(CodeAlreadyUndone, "该笔开卡付款已撤销，无需退款")
	case pm.Status != "paid":
		return nil, Errorf(CodeAlreadyUndone, "该笔开卡付款已记为应退款")
	case pm.Settled:
		return nil, Errorf(CodeRepealDenied, "该笔开卡付款已日切对账，不能记为应退款")
	case o.Credited:
		return nil, Errorf(CodeRepealDenied, "卡已生效入账，不能记为应退款；须先在原终端撤销开卡")
	}
	withdraw(&o, pm.Sum, otherFilling)
	return &o, nil
}

// RepealRemark tells the POS what a repeal did.
func RepealRemark(o *CardOrder, sum int64) string {
	if o.Status == "closed" {
		return "已撤销" + FormatYuan(sum) + "元，订单已关闭"
	}
	return "已撤销" + FormatYuan(sum) + "元，" + CardRemark(o.Price, o.Paid, ActivateOnSettlement, o.AccountID)
}

// ActivationLegs are the postings of an activation (开卡生效): the face value,
// or the first part of an installment card, to the card with the rest held
// in SYS-INSTALLMENT; the price is owed by the POSP (SYS-CARD-SALES) and the
// discount is an expense (SYS-DISCOUNT).
func ActivationLegs(o *CardOrder) []Leg {
	first := InstallmentPart(o.FaceValue, o.Installments, 1)
	return []Leg{
		{o.AccountID, first},
		{SysInstallment, o.FaceValue - first},
		{SysCardSales, -o.Price},
		{SysDiscount, -(o.FaceValue - o.Price)},
	}
}

// RepealLegs reverse an activation whose card holds exactly what was
// credited (ActivationLegs negated, with the released parts).
func RepealLegs(o *CardOrder) []Leg {
	credited := CreditedValue(o)
	return []Leg{
		{o.AccountID, -credited},
		{SysInstallment, -(o.FaceValue - credited)},
		{SysCardSales, o.Price},
		{SysDiscount, o.FaceValue - o.Price},
	}
}

// RefundLegs return a pay's amount to its account.
func RefundLegs(o *PayOrder) []Leg {
	return []Leg{{o.AccountID, o.Amount}, {SysMerchantPayable, -o.Amount}}
}

// PayLegs debit a pay's account.
func PayLegs(o *PayOrder) []Leg {
	return []Leg{{o.AccountID, -o.Amount}, {SysMerchantPayable, o.Amount}}
}
