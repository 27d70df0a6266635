package mapfront

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file holds the rules of the daily settlement (日切交割, SPEC section 6):
// what a line of the POSP's file means against our open_card payments, when a
// card order is activated by it, which installment parts fall due, and how a
// queue item may be resolved. The postgres package stores what they decide.

// DefaultCompletionWindow is how long a card order may stay short of its
// price, counted from its business date, before it becomes an exception
// (SPEC section 6: default 7 days).
const DefaultCompletionWindow = 7 * 24 * time.Hour

// Batch states (SPEC section 6): one batch per business date.
const (
	BatchRunning     = "running"
	BatchSettled     = "settled"
	BatchFileMissing = "file_missing"
	// BatchFailed is a running batch whose run stopped on an error: nothing
	// is settled for that date until a submission completes.
	BatchFailed = "failed"
	// BatchRejected is a date whose last file was mostly unreadable
	// (RejectFile): nothing of it was applied, and a corrected file is taken
	// without force.
	BatchRejected = "rejected"
)

// ExceptionType is the kind of a manual-handling queue item (人工处理).
type ExceptionType string

// The exception types of SPEC section 6.
const (
	ExAmountMismatch ExceptionType = "amount_mismatch"         // the file's amount differs from the payment's
	ExNotOpenable    ExceptionType = "not_openable"            // paid but never opened, and cannot be opened
	ExDuplicate      ExceptionType = "duplicate"               // the 交易id, or the payment, was already applied
	ExMissing        ExceptionType = "missing_from_file"       // a payment of the day that no record confirms
	ExOverpaid       ExceptionType = "overpaid"                // more confirmed than the order's price
	ExIncomplete     ExceptionType = "incomplete_after_window" // still short of the price after the window
	ExBadLine        ExceptionType = "bad_line"                // a line the parser could not read
	ExDateMismatch   ExceptionType = "date_mismatch"           // a record dated outside the batch's business day
)

// ExceptionTypes lists every type in the order reports show them.
func ExceptionTypes() []ExceptionType {
	return []ExceptionType{ExAmountMismatch, ExNotOpenable, ExDuplicate, ExMissing, ExOverpaid, ExIncomplete, ExBadLine, ExDateMismatch}
}

// FromFile reports whether the item's amount is a file record's amount.
// Missing and incomplete items have no record: their money at stake is what
// our own records expect.
func (t ExceptionType) FromFile() bool { return t != ExMissing && t != ExIncomplete }

// ResolveAction is how an operator settles a queue item.
type ResolveAction string

// The actions of SPEC section 6.
const (
	ActionActivate   ResolveAction = "activate"    // activate the linked pending order (开卡生效)
	ActionRefundOwed ResolveAction = "refund_owed" // the customer is owed a refund, paid outside mapfront
	ActionIgnore     ResolveAction = "ignore"      // nothing to do
	ActionLinkOrder  ResolveAction = "link_order"  // the record belongs to the named order
)

// Exception states.
const (
	ExceptionOpen     = "open"
	ExceptionResolved = "resolved"
)

// SettlementRecord is one line of the settlement file (the partner
// document's 线下开卡交割接口), parsed by the settlement command.
type SettlementRecord struct {
	LineNo          int64
	TradeID         string // 交易id: the file's unique key of a record
	CardNo          string
	Amount          int64 // fen
	TerminalOrderID string
	ReferenceNo     string
	SellerID        string // 商户号
	TerminalID      string
	BatchNo         string
	TradeDate       string // yyyyMMdd
	TradeTime       string // HHmmss
	IDNumber        string
	Mobile          string
	Referrer        string
	ProductID       string
}

// MaxTradeIDLen bounds a 交易id: the document's example has 40 digits.
const MaxTradeIDLen = 64

// Check reports why a record cannot take part in matching at all; such a
// record is filed as a bad line rather than failing the batch. The parser
// already refuses these, so this guards against a faulty client only.
func (r *SettlementRecord) Check() error {
	if r.LineNo <= 0 {
		return errors.New("line number must be positive")
	}
	if r.Amount <= 0 || r.Amount > MaxAmount {
		return fmt.Errorf("amount %d fen out of range", r.Amount)
	}
	for _, f := range []struct {
		name, value string
		max         int
		required    bool
	}{
		{"trade_id", r.TradeID, MaxTradeIDLen, true},
		{"seller_id", r.SellerID, MaxIDLen, true},
		{"terminal_id", r.TerminalID, MaxIDLen, true},
		{"batch_no", r.BatchNo, MaxIDLen, true},
		{"terminal_order_id", r.TerminalOrderID, MaxIDLen, true},
		{"card_no", r.CardNo, MaxTradeIDLen, false},
		{"reference_no", r.ReferenceNo, MaxTradeIDLen, false},
		{"trade_date", r.TradeDate, 8, false},
		{"trade_time", r.TradeTime, 6, false},
		{"id_number", r.IDNumber, MaxTradeIDLen, false},
		{"mobile_num", r.Mobile, MaxTradeIDLen, false},
		{"referrer", r.Referrer, MaxTradeIDLen, false},
		{"product_id", r.ProductID, MaxTradeIDLen, false},
	} {
		switch {
		case f.value == "" && f.required:
			return fmt.Errorf("%s missing", f.name)
		case !utf8.ValidString(f.value) || strings.ContainsRune(f.value, 0):
			return fmt.Errorf("%s is not valid text", f.name)
		case utf8.RuneCountInString(f.value) > f.max:
			return fmt.Errorf("%s longer than %d", f.name, f.max)
		}
	}
	return nil
}

// BadLine is a line the parser could not read; it becomes a bad_line item.
type BadLine struct {
	LineNo int64
	Reason string
	Text   string // the line with the ID number masked
}

// BatchHeader opens a batch submission.
type BatchHeader struct {
	BusinessDate time.Time // midnight UTC, the form of a date column
	FileName     string
	SHA256       string // hex of the whole file
	// RecordCount (good and bad lines) and TotalFen (good records) are what
	// the client counted; when given (non-zero) the server checks that it
	// received exactly that, so a truncated stream never settles.
	RecordCount int64
	TotalFen    int64
	Force       bool
	// Settings are the site's settlement settings the command sent; nil
	// takes DefaultSettings.
	Settings *SettleSettings
}

// Validate checks the header and normalizes the digest to lower case.
func (h *BatchHeader) Validate() error {
	h.SHA256 = strings.ToLower(h.SHA256)
	if b, err := hex.DecodeString(h.SHA256); err != nil || len(b) != 32 {
		return Invalid("sha256", "须为64位十六进制")
	}
	if h.BusinessDate.IsZero() {
		return Missing("business_date")
	}
	if utf8.RuneCountInString(h.FileName) > MaxRemarkLen || !utf8.ValidString(h.FileName) {
		return Invalid("file_name", "最多256个字符")
	}
	if strings.ContainsFunc(h.FileName, unicode.IsControl) {
		// PostgreSQL text cannot hold U+0000 (it answered 10000), and no
		// file name holds a control character.
		return Invalid("file_name", "含有控制字符")
	}
	if h.RecordCount < 0 || h.TotalFen < 0 {
		return Invalid("record_count", "不能为负")
	}
	if h.Settings == nil {
		d := DefaultSettings()
		h.Settings = &d
	}
	return h.Settings.Validate()
}

// BatchChunk is a bounded part of the file: the server holds one at a time.
type BatchChunk struct {
	Records  []SettlementRecord
	BadLines []BadLine
}

// ExceptionCount is the count and amount of one exception type in a report.
type ExceptionCount struct {
	Type   ExceptionType `json:"type"`
	Count  int64         `json:"count"`
	Amount int64         `json:"amount"`
}

// BatchReport is the outcome of a batch (SPEC section 6).
type BatchReport struct {
	BusinessDate time.Time
	Status       string
	FileName     string
	SHA256       string
	Records      int64 // lines of the file: records and bad lines
	TotalFen     int64 // sum of the records' amounts
	Matched      int64 // records that confirmed an open_card payment
	Opened       int64 // records that opened a card never opened (未开通)
	Merged       int64 // activated orders with two or more confirmed payments
	Activated    int64 // orders whose confirmed payments reached the price
	Exceptions   []ExceptionCount
	SettledAt    *time.Time
	// Repeated: this is the earlier report of the same file; nothing changed.
	Repeated bool
	// BadLines: lines of the file that could not be read (in Records).
	BadLines int64
	// AutoResolved: missing_from_file items of earlier dates that this
	// batch's records confirmed, resolved by the system.
	AutoResolved int64
	// Detail: why the batch is rejected or file_missing.
	Detail string
}

// Exception is a manual-handling queue item.
type Exception struct {
	ID              int64
	Type            ExceptionType
	BusinessDate    time.Time
	LineNo          int64
	TradeID         string
	OrderID         string
	TerminalID      string
	BatchNo         string
	TerminalOrderID string
	Amount          int64 // the file's amount, fen
	Expected        int64 // what our records say, fen
	Detail          string
	State           string
	Action          ResolveAction
	Operator        string
	Note            string
	LinkedOrderID   string
	CreatedAt       time.Time
	ResolvedAt      *time.Time
	// ResolvedByBatch is the business date of the batch whose record
	// resolved the item automatically (Operator SystemOperator); nil when a
	// person resolved it.
	ResolvedByBatch *time.Time
}

// ExceptionFilter selects queue items; zero fields select all.
type ExceptionFilter struct {
	State        string
	BusinessDate time.Time
	Limit        int
}

// Validate checks the filter.
func (f *ExceptionFilter) Validate() error {
	switch f.State {
	case "", ExceptionOpen, ExceptionResolved:
	default:
		return Invalid("state", "须为open或resolved")
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	return nil
}

// Resolution is an operator's decision on a queue item.
type Resolution struct {
	ID       int64
	Action   ResolveAction
	Operator string
	Note     string
	OrderID  string // link_order: required; activate: defaults to the item's order
}

// Validate checks the decision's fields.
func (r *Resolution) Validate() error {
	if r.ID <= 0 {
		return Missing("id")
	}
	switch r.Action {
	case ActionActivate, ActionRefundOwed, ActionIgnore, ActionLinkOrder:
	case "":
		return Missing("action")
	default:
		return Invalid("action", "须为activate、refund_owed、ignore或link_order")
	}
	if r.Action == ActionLinkOrder && r.OrderID == "" {
		return Missing("order_id")
	}
	return checkFields(
		field{"operator", r.Operator, MaxIDLen, true},
		field{"note", r.Note, MaxRemarkLen, false},
		field{"order_id", r.OrderID, MaxIDLen, false},
	)
}

// DailyResult is what RunDaily did.
type DailyResult struct {
	InstallmentsReleased int64
	IncompleteFlagged    int64
}

// Prior is what the store already holds for a record's 交易id.
type Prior struct {
	Applied  bool
	SameDate bool  // applied by an earlier run of the same business date
	Amount   int64 // the amount it was applied with
	Date     time.Time
}

// Match is the open_card payment with the record's terminal key, if any.
type Match struct {
	Found    bool
	SellerID string
	PaySum   int64
	Repealed bool
	// Refunded: a person resolved the payment's missing_from_file item as
	// refund_owed (RefundOwed), so it no longer counts toward its order.
	Refunded bool
	Settled  bool
	TradeID  string // the 交易id that settled it
}

// Verdict is what a record does.
type Verdict int

// Verdicts of Classify.
const (
	// Confirm: the record confirms its payment (same amount).
	Confirm Verdict = iota
	// Open: no payment has the key: open the card from the record.
	Open
	// AlreadyApplied: an earlier run of the same date applied this 交易id
	// (a forced re-run or a run after a crash): nothing to do again.
	AlreadyApplied
	// Queue: the record is an exception.
	Queue
)

// Decision is the verdict on a record; for Queue, the item to file.
type Decision struct {
	Verdict  Verdict
	Type     ExceptionType
	Expected int64
	Detail   string
}

func queue(t ExceptionType, expected int64, format string, args ...any) Decision {
	return Decision{Verdict: Queue, Type: t, Expected: expected, Detail: fmt.Sprintf(format, args...)}
}

// Classify decides what a record of the file means (SPEC section 6, Match).
// dupInFile says an earlier line of the same file carries the same 交易id.
// A payment matches only with its own seller: the same terminal key under
// another merchant number is not that payment, and cannot be opened either,
// since the key is taken. A record for a payment that was repealed, or that
// people decided to refund (refund_owed), means the POSP collected money that
// no order counts: overpaid, applied to nothing, for people to look at (the
// customer is owed that money once, by the refund already decided).
func Classify(r *SettlementRecord, dupInFile bool, p Prior, m Match) Decision {
	switch {
	case dupInFile:
		return queue(ExDuplicate, 0, "交易id在文件中重复")
	case p.Applied && !p.SameDate:
		return queue(ExDuplicate, p.Amount, "交易id已于%s日切入账", DateString(p.Date))
	case p.Applied && p.Amount != r.Amount:
		return queue(ExAmountMismatch, p.Amount, "重跑文件的金额与已入账金额不符")
	case p.Applied:
		return Decision{Verdict: AlreadyApplied}
	case !m.Found:
		return Decision{Verdict: Open}
	case m.SellerID != r.SellerID:
		return queue(ExNotOpenable, 0, "终端流水号已属于商户%s的开卡付款", m.SellerID)
	case m.Repealed:
		return queue(ExOverpaid, 0, "该笔开卡付款已撤销，文件仍有收款")
	case m.Refunded:
		return queue(ExOverpaid, 0, "该笔开卡付款已人工处理为应退款，文件仍有收款")
	case m.Settled:
		return queue(ExDuplicate, m.PaySum, "该笔开卡付款已由交易id %s 对账", m.TradeID)
	case m.PaySum != r.Amount:
		return queue(ExAmountMismatch, m.PaySum, "文件金额%s元，开卡付款%s元", FormatYuan(r.Amount), FormatYuan(m.PaySum))
	}
	return Decision{Verdict: Confirm}
}

// OpenRequest is the open_card request a record stands for when no payment
// has its key: the record's identity, product and amount, on the terminal's
// registered store. Validating it gives the reasons a record cannot be
// opened (bad ID check digit, bad mobile, malformed product id).
func OpenRequest(r *SettlementRecord, storeID string) *OpenCardRequest {
	return &OpenCardRequest{
		Origin:  Origin{SellerID: r.SellerID, StoreID: storeID, TerminalID: r.TerminalID, OperatorID: "settlement"},
		BatchNo: r.BatchNo, TerminalOrderID: r.TerminalOrderID,
		IDNumber: r.IDNumber, Mobile: r.Mobile, Referrer: r.Referrer, ProductID: r.ProductID,
		PaySum: r.Amount, HasPaySum: true,
	}
}

// OrderVerdict is what settlement does with a card order it touched.
type OrderVerdict int

// Order verdicts of DecideOrder.
const (
	// OrderWait: confirmed payments are short of the price; the order stays
	// pending until more are confirmed or the window runs out.
	OrderWait OrderVerdict = iota
	// OrderActivate: confirmed payments equal the price: activate and credit.
	OrderActivate
	// OrderVerify: confirmed payments equal the price and the card is
	// already credited (activation policy immediate): nothing moves.
	OrderVerify
	// OrderOverpaid: more confirmed than the price.
	OrderOverpaid
)

// DecideOrder applies SPEC section 6, Merge and activate, to an order of
// the given price with confirmed payments adding up to confirmed.
func DecideOrder(price, confirmed int64, credited bool) OrderVerdict {
	switch {
	case confirmed > price:
		return OrderOverpaid
	case confirmed < price:
		return OrderWait
	case credited:
		return OrderVerify
	}
	return OrderActivate
}

// DueParts returns the installment parts after the first released ones that
// are due on or before today, in order. activated and today are business
// dates; part n falls due on InstallmentDue(activated, n).
func DueParts(activated time.Time, parts, released int, today time.Time) []int {
	var due []int
	for n := released + 1; n <= parts; n++ {
		if InstallmentDue(activated, n).After(today) {
			break
		}
		due = append(due, n)
	}
	return due
}

// WindowCutoff returns the latest business date whose pending orders have
// waited the completion window by today (zero window: the default), so are
// an exception (SPEC section 6).
func WindowCutoff(today time.Time, window time.Duration) time.Time {
	if window <= 0 {
		window = DefaultCompletionWindow
	}
	return today.Add(-window)
}

// ErrSettledDifferentFile refuses a different file for a date already
// settled unless the submission is forced (SPEC section 6, Batch).
var ErrSettledDifferentFile = &Error{Code: CodeMalformed, Msg: "该日已按另一文件日切，如确需重跑请指定force"}

// ErrSettlementRunning says another run of the same date is in progress.
var ErrSettlementRunning = &Error{Code: CodeBusy, Msg: "该日日切正在进行，请稍后重试"}
