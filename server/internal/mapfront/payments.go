package mapfront

import "strconv"

// Payment order statuses as the terminal shows them (SPEC section 5).
const (
	StatusPaid         = "支付成功"
	StatusCancelled    = "消费撤销成功"
	StatusReversed     = "支付失败，冲正成功"
	StatusWasCancelled = "原交易已撤销，无需冲正"
	// StatusNothingToUndo was the answer to a reversal of a declined pay
	// until 2026-11-30 (now StatusReversed, as SPEC section 5 says); the
	// reversals recorded before keep it in their stored answers, which
	// their repeats return as they are.
	StatusNothingToUndo = "原交易未成功，冲正成功"
)

// PayRequest is a pay call (消费).
type PayRequest struct {
	Origin
	BatchNo         string
	TerminalOrderID string
	ConsumerID      string // mobile (11 digits) or accountId (16 digits)
	PINBlock        string // hex of the encrypted format-0 PIN block
	Sum             int64
	ProductName     string
	ProductPrice    int64
	ProductQuantity string
	Remark          string
}

// Key returns the pay's terminal key.
func (r *PayRequest) Key() TerminalKey {
	return TerminalKey{r.TerminalID, r.BatchNo, r.TerminalOrderID}
}

// ByMobile reports whether the consumer is named by mobile number.
func (r *PayRequest) ByMobile() bool { return len(r.ConsumerID) == 11 }

// Validate checks presence, lengths and formats; amounts are checked against
// the policy's per-transaction limit.
func (r *PayRequest) Validate(p Policy) error {
	if err := checkFields(join(
		[]field{
			{"consumerId", r.ConsumerID, MaxIDLen, true},
			{"paymentCodeDES", r.PINBlock, MaxIDLen, true},
		},
		terminalFields(r.Origin, r.BatchNo, r.TerminalOrderID, true),
		[]field{
			{"productName", r.ProductName, MaxProductNameLen, false},
			{"productQuantity", r.ProductQuantity, MaxIDLen, false},
			{"remark", r.Remark, MaxRemarkLen, false},
		},
	)...); err != nil {
		return err
	}
	if err := checkConsumer(r.ConsumerID); err != nil {
		return err
	}
	if r.ProductPrice < 0 || r.ProductPrice > MaxAmount {
		return Invalid("productPrice", "须为非负整数（分）")
	}
	return checkSum(r.Sum, p.PayLimit)
}

// Fingerprint digests the fields a retransmission carries unchanged.
func (r *PayRequest) Fingerprint() []byte {
	return fingerprint("pay", r.SellerID, r.StoreID, r.ConsumerID, r.PINBlock, strconv.FormatInt(r.Sum, 10),
		r.ProductName, strconv.FormatInt(r.ProductPrice, 10), r.ProductQuantity)
}

func checkConsumer(id string) error {
	if !ValidMobile(id) && !ValidAccountID(id) {
		return Invalid("consumerId", "须为11位手机号或16位账号")
	}
	return nil
}

func checkSum(sum, limit int64) error {
	if sum <= 0 {
		return Errorf(CodeAmount, "消费金额须大于0")
	}
	if sum > limit {
		return Errorf(CodeAmount, "消费金额超过单笔限额%s元", FormatYuan(limit))
	}
	return nil
}

// PaymentAnswer is the `order` of pay and pay_undo answers.
type PaymentAnswer struct {
	OrderID         string
	ConsumerID      string
	Sum             int64
	PayTime         string
	SellerID        string
	StoreID         string
	TerminalID      string
	OperatorID      string
	BatchNo         string
	TerminalOrderID string
	ProductName     string
	ProductPrice    int64
	ProductQuantity string
	Remark          string
	Status          string
	AccountID       string
	Balance         *int64
}

// CancelPayRequest is a pay_cancel call (消费撤销).
type CancelPayRequest struct {
	Origin
	BatchNo         string
	TerminalOrderID string // the cancel's own
	OrderID         string // the pay's orderId
	Remark          string
}

// Key returns the cancel's own terminal key.
func (r *CancelPayRequest) Key() TerminalKey {
	return TerminalKey{r.TerminalID, r.BatchNo, r.TerminalOrderID}
}

// Validate checks presence and lengths.
func (r *CancelPayRequest) Validate() error {
	return checkFields(join(
		[]field{
			{"orderId", r.OrderID, MaxIDLen, true},
		},
		terminalFields(r.Origin, r.BatchNo, r.TerminalOrderID, true),
		[]field{
			{"remark", r.Remark, MaxRemarkLen, false},
		},
	)...)
}

// Fingerprint digests the fields a retransmission carries unchanged.
func (r *CancelPayRequest) Fingerprint() []byte {
	return fingerprint("pay_cancel", r.SellerID, r.StoreID, r.OrderID)
}

// CancelAnswer is the `order` of a pay_cancel answer.
type CancelAnswer struct {
	OrderID         string
	PayTime         string
	SellerID        string
	StoreID         string
	TerminalID      string
	OperatorID      string
	BatchNo         string
	TerminalOrderID string
	Remark          string
	Status          string
	AccountID       string
	Balance         *int64
}

// UndoPayRequest is a pay_undo call (消费冲正): the pay's own terminal key.
type UndoPayRequest struct {
	Origin
	BatchNo         string
	TerminalOrderID string
	Remark          string
}

// Key returns the terminal key of the pay to reverse.
func (r *UndoPayRequest) Key() TerminalKey {
	return TerminalKey{r.TerminalID, r.BatchNo, r.TerminalOrderID}
}

// Validate checks presence and lengths.
func (r *UndoPayRequest) Validate() error {
	return checkFields(join(
		terminalFields(r.Origin, r.BatchNo, r.TerminalOrderID, true),
		[]field{
			{"remark", r.Remark, MaxRemarkLen, false},
		},
	)...)
}

// AccountQuery is a get_account_info call.
type AccountQuery struct {
	Origin
	BatchNo         string
	TerminalOrderID string
	ConsumerID      string
	PINBlock        string
	Remark          string
}

// Validate checks presence, lengths and formats.
func (r *AccountQuery) Validate() error {
	if err := checkFields(join(
		[]field{
			{"consumerId", r.ConsumerID, MaxIDLen, true},
			{"paymentCodeDES", r.PINBlock, MaxIDLen, true},
		},
		terminalFields(r.Origin, r.BatchNo, r.TerminalOrderID, true),
		[]field{
			{"remark", r.Remark, MaxRemarkLen, false},
		},
	)...); err != nil {
		return err
	}
	return checkConsumer(r.ConsumerID)
}

// AccountInfo is the `card` of a get_account_info answer.
type AccountInfo struct {
	AccountID string
	Balance   int64
	Status    AccountStatus
	Remark    string
}
