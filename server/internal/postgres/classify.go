package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"

	"mapfront/server/internal/mapfront"
)

// classify is the one classification of database errors (SPEC section 3:
// 10018 only when the request certainly had no effect). It wraps err with
// what failed ("store: pay persist: ...") so that the log line of a 10000
// names the statement, and sorts it by whether the transaction can have
// committed:
//
//   - before COMMIT was sent (commitSent false), nothing can have
//     committed: a serialization failure (40001), a deadlock (40P01), a
//     cached plan invalidated by a schema change (0A000), a creation race on
//     a unique key that a retry resolves, a connection that failed or was
//     shut down (a FATAL such as 57P01 or 53300, a reset, a refused
//     connect) are mapfront.Transient and retried; a statement timeout and
//     the caller's deadline or cancellation are 10018 at once; any other
//     error is internal (10000), with nothing done;
//   - once COMMIT was sent, an error reported by the server for a statement
//     (severity ERROR) still proves the transaction rolled back and is
//     sorted as above, but a lost connection, a FATAL shutdown or the
//     caller's deadline leave the outcome unknown: internal (10000), never
//     10018, so the POS reverses instead of paying again.
//
// The database's own refusal of an overdraft (the balance CHECK) is 10009.
func classify(what string, err error, commitSent bool) error {
	if err == nil {
		return nil
	}
	var de *mapfront.Error
	if errors.As(err, &de) {
		return err
	}
	wrapped := fmt.Errorf("store: %s: %w", what, err)
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Severity == "FATAL" || pe.Severity == "PANIC" {
			// The server ended the session: before COMMIT nothing committed.
			if commitSent {
				return wrapped
			}
			return &mapfront.Transient{Err: wrapped}
		}
		switch {
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "0A000":
			return &mapfront.Transient{Err: wrapped}
		case pe.Code == "23505" && raceKey(pe.ConstraintName):
			// Two first requests raced to create the same row (a customer,
			// a filling card order, an open_card payment that the settlement
			// file opened meanwhile); the retry finds the winner's row.
			return &mapfront.Transient{Err: wrapped}
		case pe.Code == "23514" && pe.ConstraintName == "balance_non_negative":
			return fmt.Errorf("%w: %v", mapfront.Errorf(mapfront.CodeInsufficient, "余额不足"), wrapped)
		case pe.Code == "57014", pe.Code == "53300", pe.Code == "57P03":
			// Statement timeout, too many connections, cannot connect now.
			return fmt.Errorf("%w: %v", mapfront.ErrBusy, wrapped)
		}
		return wrapped
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// pgx closes the connection on a context that ends mid-statement;
		// a transaction whose COMMIT was never sent ends with it.
		if !commitSent {
			return fmt.Errorf("%w: %v", mapfront.ErrBusy, wrapped)
		}
		return wrapped
	}
	if !commitSent && connectionLost(err) {
		return &mapfront.Transient{Err: wrapped}
	}
	return wrapped
}

// raceKey reports whether a unique key is one on which two first requests
// may race; the loser's retry reads the winner's row.
func raceKey(constraint string) bool {
	switch constraint {
	case "customers_mobile_key", "card_orders_one_filling", "card_payments_terminal_id_batch_no_terminal_order_id_key":
		return true
	}
	return false
}

// connectionLost reports whether err is the connection failing (refused,
// reset, closed) rather than a statement or a scan.
func connectionLost(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || pgconn.SafeToRetry(err)
}

// rolledBack marks a classified error of a batch (group commit) as
// *mapfront.RolledBack when the transaction certainly did not commit and
// the same batch would fail again: the server refused a statement (severity
// ERROR, so nothing of the transaction stands, even with COMMIT sent) or the
// balance CHECK refused an overdraft. Transient errors stay transient (the
// batch is tried again); anything else (a lost connection around COMMIT,
// the deadline) stays as it is: the outcome is unknown.
func rolledBack(err error) error {
	if err == nil || mapfront.IsTransient(err) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Severity == "ERROR" {
		return &mapfront.RolledBack{Err: err}
	}
	if mapfront.ErrorCode(err) == mapfront.CodeInsufficient {
		return &mapfront.RolledBack{Err: err}
	}
	return err
}

// callerText turns the database's refusal of a string it cannot store
// (22021: U+0000 in text or bytes that are not UTF-8; 22P05: jsonb's
// \u0000) into 10001 on the paths whose strings come from an internal
// caller unchecked: AdminService's and the settlement side's (wrap,
// auditedTx, CustomerSealedID). The gRPC edge names the field first (grpcapi.RefuseNUL);
// this answers the callers that do not pass it (the console). classify
// keeps them internal: on the POSP's path every field is checked for
// control characters before SQL, so there it is a bug.
func callerText(err error) error {
	var pe *pgconn.PgError
	if err == nil || !errors.As(err, &pe) || (pe.Code != "22021" && pe.Code != "22P05") {
		return err
	}
	var de *mapfront.Error
	if errors.As(err, &de) {
		return err
	}
	return fmt.Errorf("%w: %v", mapfront.Errorf(mapfront.CodeMalformed, "字段格式错误：含有控制字符U+0000或不合法的UTF-8"), err)
}
