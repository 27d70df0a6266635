package mapfront

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// Length limits of SPEC section 2, in characters.
const (
	MaxIDLen          = 32
	MaxRemarkLen      = 256
	MaxProductNameLen = 64
)

// TerminalKey identifies a terminal transaction of one kind (SPEC section 5).
type TerminalKey struct {
	TerminalID      string
	BatchNo         string
	TerminalOrderID string
}

// Origin is where a request comes from: the registry triple and the operator,
// who is recorded but not checked.
type Origin struct {
	SellerID   string
	StoreID    string
	TerminalID string
	OperatorID string
}

// OpenCardRequest is an open_card call: one payment toward a card.
type OpenCardRequest struct {
	Origin
	BatchNo         string
	TerminalOrderID string
	IDNumber        string
	Mobile          string
	Referrer        string
	ProductID       string
	// PaySum is this payment in fen; HasPaySum false means the full price.
	PaySum    int64
	HasPaySum bool
	// ID is IDNumber sealed for the store, set by the service after
	// Validate (SealID): the 10016 rule compares its blind index, and a new
	// customer is stored with it.
	ID *SealedID
}

// Key returns the request's terminal key.
func (r *OpenCardRequest) Key() TerminalKey {
	return TerminalKey{r.TerminalID, r.BatchNo, r.TerminalOrderID}
}

// Validate checks presence, lengths and formats; it normalizes the ID number.
func (r *OpenCardRequest) Validate() error {
	r.IDNumber = NormalizeIDNumber(r.IDNumber)
	if err := checkFields(join(
		[]field{
			{"ID", r.IDNumber, MaxIDLen, true},
			{"mobileNum", r.Mobile, MaxIDLen, true},
			{"referrer", r.Referrer, MaxIDLen, false},
		},
		terminalFields(r.Origin, r.BatchNo, r.TerminalOrderID, true),
		[]field{
			{"productId", r.ProductID, MaxIDLen, true},
		},
	)...); err != nil {
		return err
	}
	if !ValidIDNumber(r.IDNumber) {
		return Invalid("ID", "须为18位身份证号且校验位正确")
	}
	if !ValidMobile(r.Mobile) {
		return Invalid("mobileNum", "须为1开头的11位数字")
	}
	if !ValidProductID(r.ProductID) {
		return Errorf(CodeProduct, "产品%s不存在或未上架", r.ProductID)
	}
	if r.HasPaySum && (r.PaySum <= 0 || r.PaySum > MaxAmount) {
		return Errorf(CodeAmount, "支付金额paySum须大于0")
	}
	return nil
}

// Fingerprint digests the business fields that a repeat of the same terminal
// key must carry unchanged; paySum counts as given (absent differs from the
// full price written out, which the POS would not do on a retransmission).
// The digest is unkeyed and covers the ID number, whose few likely values
// (region, birth date, sequence) could be tried against it: it is compared,
// never stored. The key's record keeps it sealed (SealKeyFingerprint).
func (r *OpenCardRequest) Fingerprint() []byte {
	return fingerprint("open_card", r.SellerID, r.StoreID, r.IDNumber, r.Mobile, r.Referrer,
		r.ProductID, strconv.FormatBool(r.HasPaySum), strconv.FormatInt(r.PaySum, 10))
}

// RepealCardRequest is a repeal_card call naming an open_card payment.
type RepealCardRequest struct {
	Origin
	BatchNo         string
	TerminalOrderID string
}

// Key returns the terminal key of the payment to repeal.
func (r *RepealCardRequest) Key() TerminalKey {
	return TerminalKey{r.TerminalID, r.BatchNo, r.TerminalOrderID}
}

// Validate checks presence and lengths.
func (r *RepealCardRequest) Validate() error {
	return checkFields(terminalFields(r.Origin, r.BatchNo, r.TerminalOrderID, true)...)
}

// CardOrderAnswer is the `order` of open_card and repeal_card answers.
type CardOrderAnswer struct {
	OrderID         string
	Mobile          string
	SellerID        string
	StoreID         string
	TerminalID      string
	OperatorID      string
	BatchNo         string
	TerminalOrderID string
	Remark          string
}

// DownloadProductRequest is a download_product call.
type DownloadProductRequest struct {
	Origin
	BatchNo         string
	TerminalOrderID string
}

// Validate checks presence and lengths; operatorId is optional here, as the
// document lists none for this path.
func (r *DownloadProductRequest) Validate() error {
	return checkFields(terminalFields(r.Origin, r.BatchNo, r.TerminalOrderID, false)...)
}

type field struct {
	name     string
	value    string
	max      int
	required bool
}

// terminalFields are the fields every legacy request carries: where it comes
// from and its terminal key. operatorId is required except where the
// document lists none (download_product).
func terminalFields(o Origin, batchNo, terminalOrderID string, operatorRequired bool) []field {
	return []field{
		{"sellerId", o.SellerID, MaxIDLen, true},
		{"storeId", o.StoreID, MaxIDLen, true},
		{"terminalId", o.TerminalID, MaxIDLen, true},
		{"operatorId", o.OperatorID, MaxIDLen, operatorRequired},
		{"batchNo", batchNo, MaxIDLen, true},
		{"terminalOrderId", terminalOrderID, MaxIDLen, true},
	}
}

func join(groups ...[]field) []field {
	n := 0
	for _, g := range groups {
		n += len(g)
	}
	out := make([]field, 0, n) // one allocation per request, not one per growth
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// HasControl reports whether s holds a control character: NUL or another C0
// code (U+0000-U+001F) or DEL. No field of the partner contract carries one;
// refused at the edge of the domain, they are the client's mistake (10001),
// never a database error (10000).
func HasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// checkFields returns the first missing, malformed or over-long field as a
// 10001 naming it.
func checkFields(fs ...field) error {
	for _, f := range fs {
		if f.value == "" {
			if f.required {
				return Missing(f.name)
			}
			continue
		}
		if !utf8.ValidString(f.value) {
			return Invalid(f.name, "不是合法的UTF-8")
		}
		if HasControl(f.value) {
			return Invalid(f.name, "含有控制字符")
		}
		if n := utf8.RuneCountInString(f.value); n > f.max {
			return Errorf(CodeMalformed, "字段%s超长（最多%d个字符）", f.name, f.max)
		}
	}
	return nil
}

// fingerprint hashes length-prefixed parts so that no two field lists collide.
func fingerprint(parts ...string) []byte {
	h := sha256.New()
	var n [4]byte
	for _, p := range parts {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return h.Sum(nil)
}
