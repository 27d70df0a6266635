// Package mapfront holds the domain of the offline front: the error kinds of
// the partner contract, money, identities, the business day, the rules that
// decide what a card sale, a pay, a void or a reversal means (SPEC sections
// 3 to 5) as pure functions, and the application services (Service,
// AdminService) that run each request: validate, load the state from the
// store, decide, persist. It imports no SQL, no HTTP and no generated
// protobuf types; it owns the store interfaces (OfflineStore, AdminStore)
// that the postgres package implements with SQL only, and the grpcapi
// package translates at the edge. docs/architecture.md draws the layers.
package mapfront

import (
	"errors"
	"fmt"
)

// Code is an errcode of the partner contract (SPEC section 3).
type Code int

// The errcodes of SPEC section 3.
const (
	OK                 Code = 0
	CodeInternal       Code = 10000 // other error; logged with a reference
	CodeMalformed      Code = 10001 // bad JSON, missing or invalid field
	CodeTerminal       Code = 10002 // seller/store/terminal unknown, disabled or mismatched
	CodeKeyReused      Code = 10003 // terminal key used for a different request
	CodeProduct        Code = 10004 // product unknown or not on sale
	CodeNotFound       Code = 10005 // consumer or account not found
	CodeAccountState   Code = 10006 // pending, frozen or closed
	CodeWrongPassword  Code = 10007 // wrong payment password
	CodePasswordLocked Code = 10008 // payment password locked
	CodeInsufficient   Code = 10009 // insufficient balance
	CodeNoOriginal     Code = 10010 // original transaction not found
	CodeAlreadyUndone  Code = 10011 // original already cancelled or reversed
	CodeCancelDenied   Code = 10012 // other terminal, past the business day, not a successful pay
	CodeRepealDenied   Code = 10013 // card used or payment settled
	CodeNoPassword     Code = 10014 // payment password not set
	CodeAmount         Code = 10015 // ≤ 0, over the limit or over what is due
	CodeIdentity       Code = 10016 // ID and mobile belong to different customers
	CodePINBlock       Code = 10017 // PIN block cannot be decoded
	CodeBusy           Code = 10018 // transient: try again, nothing happened
)

// Error is a domain error: an errcode and the short Chinese message for the
// terminal's screen. Msg never carries internals.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Msg) }

// Is makes errors.Is(err, &Error{Code: c}) match any error of code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Msg == "" || t.Msg == e.Msg)
}

// ErrPasswordJustLocked answers the wrong payment password that locks the
// password (SPEC section 5: 5 wrong in a row lock it, 10008). Unlike a pay
// against a password already locked, it was a guess: the terminal's
// wrong-PIN budget counts it (CountPINFailure).
var ErrPasswordJustLocked = &Error{Code: CodePasswordLocked, Msg: "支付密码错误次数已达上限，密码已锁定，请联系客服解锁"}

// Errorf returns an *Error of code c with a formatted message.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Msg: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the errcode of err: OK for nil, the code of a wrapped
// *Error, CodeInternal for anything else.
func ErrorCode(err error) Code {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// Stored reports whether an outcome with this code is a complete answer that
// the terminal key keeps (SPEC section 5): approvals and every business
// decline are, so a retransmission gets the same answer. Malformed requests
// (10001: there may be no key to keep it under), internal errors and busy
// (the request had no effect, or none that can be told) are not.
func (c Code) Stored() bool {
	switch c {
	case CodeMalformed, CodeInternal, CodeBusy:
		return false
	}
	return true
}

// Common errors.
var (
	ErrBusy = &Error{Code: CodeBusy, Msg: "系统繁忙，请重试"}
)

// Missing is the 10001 error for a required field that is absent.
func Missing(field string) *Error { return Errorf(CodeMalformed, "缺少字段%s", field) }

// Invalid is the 10001 error for a field whose value is not acceptable.
func Invalid(field, why string) *Error {
	if why == "" {
		return Errorf(CodeMalformed, "字段%s格式错误", field)
	}
	return Errorf(CodeMalformed, "字段%s格式错误：%s", field, why)
}
