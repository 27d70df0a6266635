package mapfront

import "fmt"

// ActivationPolicy says when a fully paid card becomes active (SPEC section 5).
type ActivationPolicy string

// Activation policies.
const (
	// ActivateOnSettlement: the card becomes active, and its value is
	// credited, when the settlement file confirms the whole price. The default.
	ActivateOnSettlement ActivationPolicy = "on_settlement"
	// ActivateImmediate: active once the paid sum reaches the price;
	// settlement still verifies.
	ActivateImmediate ActivationPolicy = "immediate"
)

// PasswordPolicy says what payment password a new customer starts with.
type PasswordPolicy string

// Password policies (SPEC section 4).
const (
	// PasswordIDLast6: the last six characters of the ID number, X read as 0.
	PasswordIDLast6 PasswordPolicy = "id-last6"
	// PasswordNone: no password until one is set through AdminService (10014).
	PasswordNone PasswordPolicy = "none"
)

// AccountRule orders a customer's accounts when a pay names a mobile number.
type AccountRule string

// Account rules (SPEC section 5).
const (
	// CardFirst: the earliest-activated active card that covers the sum, else cash.
	CardFirst AccountRule = "card-first"
	// CashFirst: the cash account if it covers the sum, else the earliest card.
	CashFirst AccountRule = "cash-first"
)

// Policy is the business configuration the rules read.
type Policy struct {
	Activation ActivationPolicy
	Password   PasswordPolicy
	Accounts   AccountRule
	// PayLimit is the per-transaction limit in fen (default 5,000,000).
	PayLimit int64
	// MaxPasswordFailures locks the password after that many wrong tries in a row.
	MaxPasswordFailures int
}

// DefaultPolicy is SPEC's defaults.
func DefaultPolicy() Policy {
	return Policy{
		Activation:          ActivateOnSettlement,
		Password:            PasswordIDLast6,
		Accounts:            CardFirst,
		PayLimit:            5_000_000,
		MaxPasswordFailures: 5,
	}
}

// Validate refuses a policy with an unknown value.
func (p Policy) Validate() error {
	switch p.Activation {
	case ActivateOnSettlement, ActivateImmediate:
	default:
		return fmt.Errorf("activation policy %q: want on_settlement or immediate", p.Activation)
	}
	switch p.Password {
	case PasswordIDLast6, PasswordNone:
	default:
		return fmt.Errorf("password policy %q: want id-last6 or none", p.Password)
	}
	switch p.Accounts {
	case CardFirst, CashFirst:
	default:
		return fmt.Errorf("account rule %q: want card-first or cash-first", p.Accounts)
	}
	if p.PayLimit <= 0 || p.PayLimit > MaxAmount {
		return fmt.Errorf("pay limit %d fen out of range", p.PayLimit)
	}
	if p.MaxPasswordFailures < 1 {
		return fmt.Errorf("max password failures %d: want at least 1", p.MaxPasswordFailures)
	}
	return nil
}

// InitialPassword returns the password a new customer starts with under the
// policy, or "" for none: the last six characters of the ID, X read as 0.
func (p Policy) InitialPassword(idNumber string) string {
	if p.Password != PasswordIDLast6 || len(idNumber) < 6 {
		return ""
	}
	b := []byte(NormalizeIDNumber(idNumber[len(idNumber)-6:]))
	for i := range b {
		if b[i] == 'X' {
			b[i] = '0'
		}
	}
	return string(b)
}
