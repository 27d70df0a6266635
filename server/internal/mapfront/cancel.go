package mapfront

import "time"

// ReplayKey answers a request whose key already has a stored record: the
// verdict of KeyRecord.Repeat, or the stored answer decoded into answer.
func ReplayKey(k *KeyRecord, fp []byte, answer any) error {
	if err := k.Repeat(fp); err != nil {
		return err
	}
	if k.Answer == nil {
		return errStoredAnswerMissing
	}
	return DecodeAnswer(k.Answer, answer)
}

// CheckCancel applies the pay_cancel rules of SPEC section 5 to the original
// pay: it must exist (10010), come from the same seller, store and terminal
// (10012), still stand (10011) and be of today's business day (10012).
func CheckCancel(r *CancelPayRequest, o *PayOrder, today time.Time) error {
	switch {
	case o == nil:
		return Errorf(CodeNoOriginal, "原交易不存在")
	case o.SellerID != r.SellerID || o.StoreID != r.StoreID || o.TerminalID != r.TerminalID:
		return Errorf(CodeCancelDenied, "撤销须在原终端上进行")
	case o.Status != PaySuccess:
		return Errorf(CodeAlreadyUndone, "原交易已撤销或已冲正")
	case !o.BusinessDate.Equal(today):
		return Errorf(CodeCancelDenied, "只能撤销当日交易，请走退货流程")
	}
	return nil
}

// DecideCancel decides a pay_cancel on a new key (SPEC section 5): the
// terminal, the cancel rules, then a cancel order that refunds the full
// amount to the same account. Approval and every stored decline become the
// key's record.
func DecideCancel(r *CancelPayRequest, st *CancelState, c Clock, now time.Time, fp []byte) (*CancelOutcome, *CancelAnswer, error) {
	out := &CancelOutcome{Key: r.Key()}
	err := CheckTerminal(st.Terminal, r.Origin)
	if err == nil {
		err = CheckCancel(r, st.Original, c.BusinessDate(now))
	}
	if err != nil {
		rec, rerr := Declined(fp, err)
		if rerr != nil {
			return nil, nil, err
		}
		out.Record = rec
		return out, nil, err
	}
	o := st.Original
	cancel := &PayOrder{
		ID: PayOrderID(c, now, st.OrderSeq), Status: PaySuccess, AccountID: o.AccountID,
		SellerID: r.SellerID, StoreID: r.StoreID, TerminalID: r.TerminalID, BatchNo: r.BatchNo,
		TerminalOrderID: r.TerminalOrderID, OperatorID: r.OperatorID, ConsumerID: o.ConsumerID, Amount: o.Amount,
		BalanceAfter: st.OriginalBalance + o.Amount, BusinessDate: c.BusinessDate(now), PayTime: now,
		Remark: r.Remark, OriginalOrderID: o.ID,
	}
	a := CancelAnswerOf(cancel, c)
	body, err := EncodeAnswer(a)
	if err != nil {
		return nil, nil, err
	}
	out.Cancel = cancel
	out.Record = &KeyRecord{Fingerprint: fp, State: KeyApproved, Answer: body}
	return out, a, nil
}

// CancelAnswerOf is the one constructor of a pay_cancel answer, from the
// cancel order.
func CancelAnswerOf(o *PayOrder, c Clock) *CancelAnswer {
	balance := o.BalanceAfter
	return &CancelAnswer{
		OrderID: o.ID, PayTime: c.FormatTime(o.PayTime), SellerID: o.SellerID, StoreID: o.StoreID,
		TerminalID: o.TerminalID, OperatorID: o.OperatorID, BatchNo: o.BatchNo, TerminalOrderID: o.TerminalOrderID,
		Remark: o.Remark, Status: StatusCancelled, AccountID: o.AccountID, Balance: &balance,
	}
}
