package mapfront

// System accounts (SPEC section 4): the other side of every movement.
const (
	SysCardSales       = "SYS-CARD-SALES"
	SysDiscount        = "SYS-DISCOUNT"
	SysInstallment     = "SYS-INSTALLMENT"
	SysMerchantPayable = "SYS-MERCHANT-PAYABLE"
	SysTopUp           = "SYS-TOPUP"
)

// Leg is one posting of a ledger transaction: amount in fen, positive
// credits the account's balance, negative debits it.
type Leg struct {
	Account string
	Amount  int64
}

// Balanced reports whether legs sum to zero, as every ledger transaction
// must (SPEC section 4).
func Balanced(legs []Leg) bool {
	var sum int64
	for _, l := range legs {
		sum += l.Amount
	}
	return sum == 0
}

// MergeLegs drops zero legs and merges legs on the same account, keeping the
// first appearance's order.
func MergeLegs(legs []Leg) []Leg {
	merged := make([]Leg, 0, len(legs))
	for _, l := range legs {
		found := false
		for i := range merged {
			if merged[i].Account == l.Account {
				merged[i].Amount += l.Amount
				found = true
			}
		}
		if !found {
			merged = append(merged, l)
		}
	}
	out := merged[:0]
	for _, l := range merged {
		if l.Amount != 0 {
			out = append(out, l)
		}
	}
	return out
}
