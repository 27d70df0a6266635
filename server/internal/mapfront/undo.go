package mapfront

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
)

// DecideUndo chooses the action for a pay key: whether a pay came, whether
// it was approved, and its order's status (success, cancelled, reversed).
func DecideUndo(payCame, approved bool, orderStatus string) UndoAction {
	switch {
	case !payCame:
		return UndoTombstone
	case !approved:
		return UndoNothingDeclined
	case orderStatus == "cancelled":
		return UndoNothingCancelled
	default:
		return UndoRefund
	}
}

// AccountChoice is an account a pay may use.
type AccountChoice struct {
	ID      string
	Kind    string // cash or card
	Status  AccountStatus
	Balance int64
}

// ChooseAccount picks the account a pay by mobile number uses (SPEC section
// 5): under card-first the earliest-activated active card whose balance covers
// the sum (cards must come in activation order), else the cash account if it
// covers the sum; cash-first the other way round. A pay never splits across
// accounts; nothing covering the sum is 10009.
func ChooseAccount(accounts []AccountChoice, sum int64, rule AccountRule) (AccountChoice, error) {
	var card, cash *AccountChoice
	for i := range accounts {
		a := &accounts[i]
		if a.Status != Active || a.Balance < sum {
			continue
		}
		switch {
		case a.Kind == "card" && card == nil:
			card = a
		case a.Kind == "cash":
			cash = a
		}
	}
	first, second := card, cash
	if rule == CashFirst {
		first, second = cash, card
	}
	if first != nil {
		return *first, nil
	}
	if second != nil {
		return *second, nil
	}
	return AccountChoice{}, Errorf(CodeInsufficient, "余额不足")
}

// CheckPassword applies the payment password rules of SPEC section 5 to a
// customer's state and the verification result, returning the failure count
// and lock to store and the decline, if any. maxFailures wrong in a row lock.
func CheckPassword(set, locked bool, failures int, ok bool, maxFailures int) (newFailures int, newLocked bool, err error) {
	switch {
	case locked:
		return failures, true, Errorf(CodePasswordLocked, "支付密码已锁定，请联系客服解锁")
	case !set:
		return failures, false, Errorf(CodeNoPassword, "未设置支付密码")
	case ok:
		return 0, false, nil
	}
	failures++
	if failures >= maxFailures {
		return failures, true, Errorf(CodeWrongPassword, "支付密码错误，已连续%d次，密码已锁定", failures)
	}
	return failures, false, Errorf(CodeWrongPassword, "支付密码错误，还可尝试%d次", maxFailures-failures)
}

// CheckAccount applies the pay rules to an account named by its accountId:
// it must be active (else 10006) and cover the sum (else 10009).
func CheckAccount(a AccountChoice, sum int64) error {
	if a.Status != Active {
		return Errorf(CodeAccountState, "账户%s", a.Status.Chinese())
	}
	if a.Balance < sum {
		return Errorf(CodeInsufficient, "余额不足")
	}
	return nil
}
