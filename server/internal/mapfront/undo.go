package mapfront

import (
	"errors"
	"time"
)

// UndoAction is what a reversal (消费冲正) does, decided from what its pay's
// terminal key holds (SPEC section 5).
type UndoAction int

// Undo actions.
const (
	// UndoTombstone: no pay came with the key; record the reversal so that a
	// pay arriving later with it is declined (10011).
	UndoTombstone UndoAction = iota
	// UndoRefund: the pay was approved and stands; refund it, mark reversed.
	UndoRefund
	// UndoNothingDeclined: the pay was declined; nothing to refund.
	UndoNothingDeclined
	// UndoNothingCancelled: the pay was cancelled already; nothing moves.
	UndoNothingCancelled
	// UndoReplay: the key was reversed before; its reversal answers again.
	UndoReplay
)

var errStoredAnswerMissing = errors.New("terminal key holds an approval without its answer")

// UndoActionFor chooses the action for a pay key from its record and its
// approved order.
func UndoActionFor(k *KeyRecord, paid *PayOrder) (UndoAction, error) {
	switch {
	case k != nil && k.Reversal != nil:
		return UndoReplay, nil
	case paid == nil && k == nil:
		return UndoTombstone, nil
	case paid == nil && k.State == KeyDeclined:
		return UndoNothingDeclined, nil
	case paid == nil:
		return 0, errors.New("pay key in state " + string(k.State) + " without an order or a reversal")
	case paid.Status == PayCancelled:
		return UndoNothingCancelled, nil
	case paid.Status == PaySuccess:
		return UndoRefund, nil
	}
	return 0, errors.New("reversed pay without its reversal's answer")
}

// DecideUndo decides a pay_undo (SPEC section 5). The POS retries a reversal
// until it gets errcode 0, so every case but a foreign terminal is a
// success: the approved pay is refunded and marked reversed; a declined or
// cancelled pay moves nothing; an unknown key gets a tombstone that declines
// a later pay; a repeat gets the first reversal's answer. The reversal of an
// approved pay answers with the pay's own orderId.
func DecideUndo(r *UndoPayRequest, st *UndoState, c Clock, now time.Time) (*UndoOutcome, *PaymentAnswer, error) {
	if err := CheckTerminal(st.Terminal, r.Origin); err != nil {
		return nil, nil, err
	}
	action, err := UndoActionFor(st.Key, st.Paid)
	if err != nil {
		return nil, nil, err
	}
	if action == UndoReplay {
		var a PaymentAnswer
		if err := DecodeAnswer(st.Key.Reversal, &a); err != nil {
			return nil, nil, err
		}
		return nil, &a, nil
	}
	a := &PaymentAnswer{
		PayTime: c.FormatTime(now), SellerID: r.SellerID, StoreID: r.StoreID, TerminalID: r.TerminalID,
		OperatorID: r.OperatorID, BatchNo: r.BatchNo, TerminalOrderID: r.TerminalOrderID, Remark: r.Remark,
		Status: StatusReversed,
	}
	out := &UndoOutcome{Key: r.Key()}
	rec := KeyRecord{}
	if st.Key != nil {
		rec = *st.Key
	}
	if o := st.Paid; o != nil {
		if o.SellerID != r.SellerID || o.StoreID != r.StoreID {
			return nil, nil, Errorf(CodeTerminal, "冲正的商户、门店与原交易不符")
		}
		a.OrderID, a.ConsumerID, a.Sum, a.AccountID = o.ID, o.ConsumerID, o.Amount, o.AccountID
		a.ProductName, a.ProductPrice, a.ProductQuantity = o.ProductName, o.ProductPrice, o.ProductQuantity
		if st.Key == nil {
			rec = KeyRecord{Fingerprint: o.Fingerprint, State: KeyApproved}
		}
	} else {
		// No approved pay: the reversal gets an order number of its own.
		a.OrderID = PayOrderID(c, now, st.OrderSeq)
	}
	switch action {
	case UndoTombstone:
		rec.State = KeyTombstone
	case UndoRefund:
		balance := st.PaidBalance + st.Paid.Amount
		a.Balance = &balance
		rec.State = KeyReversed
		out.Refund = st.Paid
	case UndoNothingCancelled:
		// The pay stands as answered (then cancelled): a repeat of it
		// still gets its answer, so the key stays approved.
		balance := st.PaidBalance
		a.Balance, a.Status = &balance, StatusWasCancelled
	case UndoNothingDeclined:
		// The declined pay keeps its record: a repeat of it is declined as
		// before. The answer is the approved case's (SPEC section 5: "same
		// success answer"; the partner's document knows no other status
		// for a reversal), with nothing refunded.
		a.Status = StatusReversed
	}
	body, err := EncodeAnswer(a)
	if err != nil {
		return nil, nil, err
	}
	rec.Reversal = body
	out.Record = &rec
	return out, a, nil
}
