package mapfront

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Terminal-key kinds (SPEC section 5): a terminal key identifies one
// transaction per kind.
const (
	KindOpenCard  = "open_card"
	KindPay       = "pay"
	KindPayCancel = "pay_cancel"
)

// KeyState is the state of a terminal key's outcome. This is the one place
// where the states and their transitions are written down (SPEC section 5);
// the store keeps them in terminal_requests (migration 0003) and writes
// nothing but what these rules decide.
//
//	state      written by                     a repeat of the key's request gets
//	---------  -----------------------------  ------------------------------------------
//	(none)     -                              a first execution
//	approved   open_card, pay_cancel          the stored answer (pay: see below)
//	declined   open_card, pay, pay_cancel     the stored decline (errcode and errmsg)
//	tombstone  pay_undo before any pay        10011, and the pay moves no money
//	reversed   pay_undo of an approved pay,   10011
//	           repeal_card of an open_card
//
// Transitions: (none) → approved | declined | tombstone; approved →
// reversed. Nothing else: a declined key stays declined when reversed (its
// repeat is declined as before), and an approved pay that was cancelled
// stays approved. A request whose outcome is 10000, 10001 or 10018 writes
// nothing, so its key stays free (Code.Stored).
//
// A repeat with another fingerprint gets 10003 in every state but
// tombstone, which answers 10011 to any pay.
//
// The two halves of the pair: an approved pay keeps its outcome in its
// pay_orders row (the answer is rebuilt from the order by PayAnswer, one
// row written on the hot path instead of two); every other outcome is a
// terminal_requests row. A pay key's row also holds the answer of its
// reversal (pay_undo names the pay's key), which a repeated reversal gets
// again whatever the state.
type KeyState string

// Key states.
const (
	KeyApproved  KeyState = "approved"
	KeyDeclined  KeyState = "declined"
	KeyTombstone KeyState = "tombstone"
	KeyReversed  KeyState = "reversed"
)

// KeyRecord is the stored outcome of a terminal key.
type KeyRecord struct {
	// Fingerprint is the request's (pays' and cancels' in clear; an
	// open_card key's sealed as stored, SealKeyFingerprint, and opened to
	// compare, OpenKeyRecord); nil for a key the settlement file opened.
	Fingerprint []byte
	State       KeyState
	// Decline is the stored decline of a declined key.
	Decline *Error
	// Answer is the encoded answer (EncodeAnswer) of an approved key; nil
	// for a pay, whose answer is its order.
	Answer []byte
	// Reversal is the encoded answer of the key's reversal (pay keys only).
	Reversal []byte
}

// Repeat is what a repeat of the key's request with fingerprint fp gets,
// short of an approved answer itself (SPEC section 5): nil means the key
// holds an approval to answer again.
func (k *KeyRecord) Repeat(fp []byte) error {
	switch {
	case k.State == KeyTombstone:
		return Errorf(CodeAlreadyUndone, "该交易已冲正")
	case !bytes.Equal(k.Fingerprint, fp):
		return Errorf(CodeKeyReused, "终端流水号已用于另一笔交易")
	case k.State == KeyReversed:
		return Errorf(CodeAlreadyUndone, "该交易已冲正")
	case k.State == KeyDeclined:
		if k.Decline == nil {
			return errors.New("declined key without its decline")
		}
		return k.Decline
	}
	return nil
}

// Declined returns the record of a key whose request was declined.
func Declined(fp []byte, decline error) (*KeyRecord, error) {
	var de *Error
	if !errors.As(decline, &de) || !de.Code.Stored() || de.Code == OK {
		return nil, fmt.Errorf("decline %v is not a stored outcome", decline)
	}
	return &KeyRecord{Fingerprint: fp, State: KeyDeclined, Decline: &Error{Code: de.Code, Msg: de.Msg}}, nil
}

// The answers kept under terminal keys are encoded as JSON objects with a
// format version "v" and field names of their own (the wire structs below),
// so that renaming a domain field or tag never changes a stored answer.
// Version 1 has the field names that migration 0003 found in the rows it
// carried over. A new version adds a case to decodeAnswer; old versions stay
// readable forever.
const answerVersion = 1

type cardOrderV1 struct {
	V               int    `json:"v"`
	OrderID         string `json:"orderId"`
	Mobile          string `json:"mobileNum"`
	SellerID        string `json:"sellerId"`
	StoreID         string `json:"storeId"`
	TerminalID      string `json:"terminalId"`
	OperatorID      string `json:"operatorId"`
	BatchNo         string `json:"batchNo"`
	TerminalOrderID string `json:"terminalOrderId"`
	Remark          string `json:"remark"`
}

type paymentV1 struct {
	V               int    `json:"v"`
	OrderID         string `json:"orderId"`
	ConsumerID      string `json:"consumerId"`
	Sum             int64  `json:"sum"`
	PayTime         string `json:"payTime"`
	SellerID        string `json:"sellerId"`
	StoreID         string `json:"storeId"`
	TerminalID      string `json:"terminalId"`
	OperatorID      string `json:"operatorId"`
	BatchNo         string `json:"batchNo"`
	TerminalOrderID string `json:"terminalOrderId"`
	ProductName     string `json:"productName"`
	ProductPrice    int64  `json:"productPrice"`
	ProductQuantity string `json:"productQuantity"`
	Remark          string `json:"remark"`
	Status          string `json:"status"`
	AccountID       string `json:"accountId,omitempty"`
	Balance         *int64 `json:"balance,omitempty"`
}

type cancelV1 struct {
	V               int    `json:"v"`
	OrderID         string `json:"orderId"`
	PayTime         string `json:"payTime"`
	SellerID        string `json:"sellerId"`
	StoreID         string `json:"storeId"`
	TerminalID      string `json:"terminalId"`
	OperatorID      string `json:"operatorId"`
	BatchNo         string `json:"batchNo"`
	TerminalOrderID string `json:"terminalOrderId"`
	Remark          string `json:"remark"`
	Status          string `json:"status"`
	AccountID       string `json:"accountId,omitempty"`
	Balance         *int64 `json:"balance,omitempty"`
}

// EncodeAnswer encodes an answer to keep under a terminal key: a
// *CardOrderAnswer, *PaymentAnswer or *CancelAnswer.
func EncodeAnswer(a any) ([]byte, error) {
	switch a := a.(type) {
	case *CardOrderAnswer:
		return json.Marshal(cardOrderV1{answerVersion, a.OrderID, a.Mobile, a.SellerID, a.StoreID, a.TerminalID,
			a.OperatorID, a.BatchNo, a.TerminalOrderID, a.Remark})
	case *PaymentAnswer:
		return json.Marshal(paymentV1{answerVersion, a.OrderID, a.ConsumerID, a.Sum, a.PayTime, a.SellerID, a.StoreID,
			a.TerminalID, a.OperatorID, a.BatchNo, a.TerminalOrderID, a.ProductName, a.ProductPrice, a.ProductQuantity,
			a.Remark, a.Status, a.AccountID, a.Balance})
	case *CancelAnswer:
		return json.Marshal(cancelV1{answerVersion, a.OrderID, a.PayTime, a.SellerID, a.StoreID, a.TerminalID,
			a.OperatorID, a.BatchNo, a.TerminalOrderID, a.Remark, a.Status, a.AccountID, a.Balance})
	}
	return nil, fmt.Errorf("encode answer: unknown type %T", a)
}

// DecodeAnswer decodes a stored answer into a, a *CardOrderAnswer,
// *PaymentAnswer or *CancelAnswer.
func DecodeAnswer(b []byte, a any) error {
	var v struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("stored answer: %w", err)
	}
	if v.V != 1 {
		return fmt.Errorf("stored answer: unknown version %d", v.V)
	}
	switch a := a.(type) {
	case *CardOrderAnswer:
		var w cardOrderV1
		if err := json.Unmarshal(b, &w); err != nil {
			return fmt.Errorf("stored answer: %w", err)
		}
		*a = CardOrderAnswer{w.OrderID, w.Mobile, w.SellerID, w.StoreID, w.TerminalID, w.OperatorID, w.BatchNo,
			w.TerminalOrderID, w.Remark}
	case *PaymentAnswer:
		var w paymentV1
		if err := json.Unmarshal(b, &w); err != nil {
			return fmt.Errorf("stored answer: %w", err)
		}
		*a = PaymentAnswer{w.OrderID, w.ConsumerID, w.Sum, w.PayTime, w.SellerID, w.StoreID, w.TerminalID,
			w.OperatorID, w.BatchNo, w.TerminalOrderID, w.ProductName, w.ProductPrice, w.ProductQuantity, w.Remark,
			w.Status, w.AccountID, w.Balance}
	case *CancelAnswer:
		var w cancelV1
		if err := json.Unmarshal(b, &w); err != nil {
			return fmt.Errorf("stored answer: %w", err)
		}
		*a = CancelAnswer{w.OrderID, w.PayTime, w.SellerID, w.StoreID, w.TerminalID, w.OperatorID, w.BatchNo,
			w.TerminalOrderID, w.Remark, w.Status, w.AccountID, w.Balance}
	default:
		return fmt.Errorf("decode answer: unknown type %T", a)
	}
	return nil
}
