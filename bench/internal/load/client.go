package load

import (
	"context"
	"fmt"
)

// Terminal is where a transaction comes from: the registry triple the
// server checks, and the operator it records.
type Terminal struct {
	SellerID, StoreID, TerminalID, OperatorID string
}

// The bench registry that provision creates and run uses. Terminal i (from 0)
// is BENCH0001, BENCH0002, ...
const (
	BenchSeller   = "BENCHSH"
	BenchStore    = "BENCHST"
	BenchOperator = "bench"
)

// BenchTerminal is the i-th bench terminal (0-based).
func BenchTerminal(i int) Terminal {
	return Terminal{SellerID: BenchSeller, StoreID: BenchStore, TerminalID: fmt.Sprintf("BENCH%04d", i+1), OperatorID: BenchOperator}
}

// Txn is one request as a terminal would send it; which fields matter
// depends on Op.
type Txn struct {
	Op Op
	Terminal
	BatchNo         string
	TerminalOrderID string // pay, query, cancel: its own; undo: the pay's
	ConsumerID      string // pay, query
	PINBlock        string // pay, query
	Sum             int64  // pay
	OrderID         string // cancel: the orderId of the pay to cancel
}

// Outcome is what came back. Errcode is the partner errcode (0 is success)
// or one of the negative codes below for answers that carry none.
type Outcome struct {
	Errcode int
	Errmsg  string
	OrderID string // the new order of a successful pay
}

// Codes for outcomes without a partner errcode. Every one of them fails a run.
const (
	// CodeTransport: no answer (connection refused or reset, timeout).
	CodeTransport = -1
	// CodeBadAnswer: an answer that is not the envelope (not HTTP 200, not
	// JSON, a successful pay without orderId).
	CodeBadAnswer = -2
	// CodeNoDetail: a gRPC error status without the ErrorDetail the server
	// promises (SPEC section 3).
	CodeNoDetail = -3
)

// CodeName labels an errcode in reports.
func CodeName(code int) string {
	switch code {
	case CodeTransport:
		return "transport"
	case CodeBadAnswer:
		return "bad-answer"
	case CodeNoDetail:
		return "grpc-no-detail"
	}
	return fmt.Sprint(code)
}

// Client sends one transaction and waits for its outcome. It must be safe
// for concurrent use; the run's workers share one.
type Client interface {
	Do(ctx context.Context, t *Txn) Outcome
	Close() error
}
