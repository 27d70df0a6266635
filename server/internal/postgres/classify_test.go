package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"mapfront/server/internal/mapfront"
)

// SPEC section 3: 10018 only when the request certainly had no effect. Each
// row is an error at a point of the transaction and what it must become:
// retried (transient, then 10018), 10018 at once, a business errcode, or
// 10000 (an unknown outcome, or a failure that a retry would not mend).
func TestClassify(t *testing.T) {
	pg := func(code, severity, constraint string) error {
		return &pgconn.PgError{Code: code, Severity: severity, ConstraintName: constraint, Message: "m"}
	}
	const (
		retried = "retried"
		busy    = "10018"
		unknown = "10000"
		overdr  = "10009"
	)
	for _, r := range []struct {
		name       string
		err        error
		commitSent bool
		want       string
	}{
		{"serialization failure", pg("40001", "ERROR", ""), false, retried},
		{"serialization failure at COMMIT: the server refused it", pg("40001", "ERROR", ""), true, retried},
		{"deadlock", pg("40P01", "ERROR", ""), false, retried},
		{"cached plan must not change result type", pg("0A000", "ERROR", ""), false, retried},
		{"customer creation race", pg("23505", "ERROR", "customers_mobile_key"), false, retried},
		{"filling order race", pg("23505", "ERROR", "card_orders_one_filling"), true, retried},
		{"another unique key is a bug", pg("23505", "ERROR", "pay_orders_pkey"), true, unknown},
		{"connection refused before BEGIN", &pgconn.ConnectError{}, false, retried},
		{"admin shutdown before COMMIT was sent", pg("57P01", "FATAL", ""), false, retried},
		{"admin shutdown after COMMIT was sent", pg("57P01", "FATAL", ""), true, unknown},
		{"connection reset before COMMIT was sent", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, false, retried},
		{"connection reset after COMMIT was sent", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, true, unknown},
		{"unexpected EOF after COMMIT was sent", io.ErrUnexpectedEOF, true, unknown},
		{"unexpected EOF in the load", io.ErrUnexpectedEOF, false, retried},
		{"statement timeout", pg("57014", "ERROR", ""), false, busy},
		{"statement timeout in the persist", pg("57014", "ERROR", ""), true, busy},
		{"too many connections", pg("53300", "FATAL", ""), false, retried},
		{"overdraft refused by the CHECK", pg("23514", "ERROR", "balance_non_negative"), true, overdr},
		{"NUL in a text column is a bug by now", pg("22021", "ERROR", ""), false, unknown},
		{"deadline after COMMIT was sent", context.DeadlineExceeded, true, unknown},
		{"deadline before COMMIT was sent", context.DeadlineExceeded, false, busy},
		{"cancelled before COMMIT was sent", context.Canceled, false, busy},
		{"cancelled after COMMIT was sent", context.Canceled, true, unknown},
		{"a scan that does not fit", errors.New("can't scan into dest[0]"), false, unknown},
	} {
		t.Run(r.name, func(t *testing.T) {
			got := classify("pay persist", fmt.Errorf("wrapped: %w", r.err), r.commitSent)
			var kind string
			switch {
			case mapfront.IsTransient(got):
				kind = retried
			case mapfront.ErrorCode(got) == mapfront.CodeBusy:
				kind = busy
			case mapfront.ErrorCode(got) == mapfront.CodeInsufficient:
				kind = overdr
			case mapfront.ErrorCode(got) == mapfront.CodeInternal:
				kind = unknown
			default:
				kind = fmt.Sprint(mapfront.ErrorCode(got))
			}
			if kind != r.want {
				t.Fatalf("classified %v as %s, want %s", got, kind, r.want)
			}
			if !strings.Contains(got.Error(), "store: pay persist") {
				t.Fatalf("%q does not name what failed", got)
			}
			if !errors.Is(got, r.err) && !errors.As(got, new(*mapfront.Error)) {
				t.Fatalf("%v lost its cause", got)
			}
		})
	}
	if classify("x", nil, true) != nil {
		t.Fatal("nil is not an error")
	}
}
