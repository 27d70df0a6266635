package mapfront

import (
	"errors"
	"time"
)

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

// ReplayPay answers a pay whose key already has an outcome (SPEC section 5):
// a tombstone or a reversed pay is 10011, another request under the key is
// 10003, a stored decline is declined again, an approved pay is answered
// again from its order. done is false when the key is new.
func ReplayPay(st *PayState, fp []byte, c Clock) (a *PaymentAnswer, err error, done bool) {
	k := st.Key
	if k == nil && st.Paid == nil {
		return nil, nil, false
	}
	if k == nil { // an approval keeps its outcome in its order
		k = &KeyRecord{Fingerprint: st.Paid.Fingerprint, State: KeyApproved}
	}
	if err := k.Repeat(fp); err != nil {
		return nil, err, true
	}
	if st.Paid == nil {
		return nil, errors.New("pay key holds an approval without its order"), true
	}
	return PayAnswer(st.Paid, c), nil, true
}

// DecidePay applies the pay rules of SPEC section 5 to a new key: the
// password rules (Authenticate), the account (by accountId that one, by
// mobile the policy's choice), the order. It returns what to write, the
// answer, and the decline if any; a decline of a stored code is written as
// the key's record with the password count, others write nothing.
func DecidePay(r *PayRequest, st *PayState, cred Credentials, p Policy, c Clock, now time.Time, fp []byte) (*PayOutcome, *PaymentAnswer, error) {
	out := &PayOutcome{Key: r.Key()}
	change, err := Authenticate(st.Terminal, r.Origin, st.Customer, cred, p.MaxPasswordFailures)
	out.Password = change
	var chosen AccountChoice
	if err == nil {
		chosen, err = payAccount(r, st.Accounts, p.Accounts)
	}
	if err != nil {
		if rec, rerr := Declined(fp, err); rerr == nil {
			out.Declined = rec
		}
		return out, nil, err
	}
	o := &PayOrder{
		ID: PayOrderID(c, now, st.OrderSeq), Status: PaySuccess, AccountID: chosen.ID,
		SellerID: r.SellerID, StoreID: r.StoreID, TerminalID: r.TerminalID, BatchNo: r.BatchNo,
		TerminalOrderID: r.TerminalOrderID, OperatorID: r.OperatorID, ConsumerID: r.ConsumerID, Amount: r.Sum,
		// The account is locked for this transaction, so its balance after
		// the debit is known here; the CHECK still guards it in the database.
		BalanceAfter: chosen.Balance - r.Sum, BusinessDate: c.BusinessDate(now), PayTime: now,
		ProductName: r.ProductName, ProductPrice: r.ProductPrice, ProductQuantity: r.ProductQuantity,
		Remark: r.Remark, Fingerprint: fp,
	}
	out.Approved = o
	return out, PayAnswer(o, c), nil
}

func payAccount(r *PayRequest, accounts []AccountChoice, rule AccountRule) (AccountChoice, error) {
	if r.ByMobile() {
		return ChooseAccount(accounts, r.Sum, rule)
	}
	if len(accounts) != 1 {
		return AccountChoice{}, Errorf(CodeNotFound, "消费号码不存在")
	}
	return accounts[0], CheckAccount(accounts[0], r.Sum)
}

// PayAnswer is the one constructor of a pay's answer, from its order: the
// approval and every repeat of it.
func PayAnswer(o *PayOrder, c Clock) *PaymentAnswer {
	balance := o.BalanceAfter
	return &PaymentAnswer{
		OrderID: o.ID, ConsumerID: o.ConsumerID, Sum: o.Amount, PayTime: c.FormatTime(o.PayTime),
		SellerID: o.SellerID, StoreID: o.StoreID, TerminalID: o.TerminalID, OperatorID: o.OperatorID,
		BatchNo: o.BatchNo, TerminalOrderID: o.TerminalOrderID, ProductName: o.ProductName,
		ProductPrice: o.ProductPrice, ProductQuantity: o.ProductQuantity, Remark: o.Remark,
		Status: StatusPaid, AccountID: o.AccountID, Balance: &balance,
	}
}
