package mapfront

import "time"

// ProductKind says how a card's face value is released (SPEC section 4).
type ProductKind string

// Product kinds.
const (
	Discount    ProductKind = "discount"    // 折扣卡: whole face value on activation
	Installment ProductKind = "installment" // 分期卡: face value in N monthly parts
)

// CashPrefix starts every cash account id; no product may take it.
const CashPrefix = "9999"

// Product is a card product.
type Product struct {
	ID           string
	Name         string
	ShortName    string
	Price        int64 // fen, what the customer pays
	FaceValue    int64 // fen, what the card holds
	Kind         ProductKind
	Installments int
	OnSale       bool
	Remark       string
}

// Validate checks a product before it is stored.
func (p *Product) Validate() error {
	if p.FaceValue == 0 {
		p.FaceValue = p.Price
	}
	if p.Kind == "" {
		p.Kind = Discount
	}
	if p.Installments == 0 {
		p.Installments = 1
	}
	switch {
	case !ValidProductID(p.ID) || p.ID == CashPrefix:
		return Invalid("productId", "须为4位数字且不能是现金账户前缀"+CashPrefix)
	case p.Name == "" || len([]rune(p.Name)) > MaxProductNameLen:
		return Invalid("name", "不能为空且最多64个字符")
	case p.ShortName == "" || DisplayWidth(p.ShortName) > 12:
		return Invalid("shortName", "不能为空且最多12列（一个汉字占2列）")
	case p.Price <= 0 || p.Price > MaxAmount:
		return Invalid("price", "须大于0")
	case p.FaceValue < p.Price || p.FaceValue > MaxAmount:
		return Invalid("faceValue", "不能小于价格")
	case p.Kind != Discount && p.Kind != Installment:
		return Invalid("kind", "须为discount或installment")
	case p.Kind == Discount && p.Installments != 1:
		return Invalid("installments", "折扣卡只有1期")
	case p.Installments < 1 || p.Installments > 120:
		return Invalid("installments", "须在1到120之间")
	case len([]rune(p.Remark)) > MaxRemarkLen:
		return Invalid("remark", "最多256个字符")
	}
	return nil
}

// InstallmentPart returns part n (1-based) of a face value split in parts:
// equal parts, the remainder in the last one.
func InstallmentPart(face int64, parts, n int) int64 {
	base := face / int64(parts)
	if n == parts {
		return face - base*int64(parts-1)
	}
	return base
}

// InstallmentDue returns when part n (1-based) of a card activated at
// activated is released: part 1 at activation, part k on the activation day
// k-1 months later, or that month's last day when it is shorter (a card
// activated on Jan 31 releases on the last day of February, then on Mar 31).
func InstallmentDue(activated time.Time, n int) time.Time {
	y, m, d := activated.Date()
	first := time.Date(y, m+time.Month(n-1), 1, 0, 0, 0, 0, activated.Location())
	last := first.AddDate(0, 1, -1).Day()
	if d > last {
		d = last
	}
	return time.Date(first.Year(), first.Month(), d, 0, 0, 0, 0, activated.Location())
}

// AccountStatus is the state of a cash or card account.
type AccountStatus string

// Account states (SPEC section 4).
const (
	Pending AccountStatus = "pending" // 待生效
	Active  AccountStatus = "active"  // 正常
	Frozen  AccountStatus = "frozen"  // 冻结
	Closed  AccountStatus = "closed"  // 已注销
)

// Chinese returns the status as the terminal shows it.
func (s AccountStatus) Chinese() string {
	switch s {
	case Pending:
		return "待生效"
	case Active:
		return "正常"
	case Frozen:
		return "冻结"
	case Closed:
		return "已注销"
	}
	return string(s)
}
