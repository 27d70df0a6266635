package mapfront

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
