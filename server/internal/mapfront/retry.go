package mapfront

import (
	"context"
	"time"
)

// Retry runs attempt until it succeeds, fails for good, or has failed with a
// Transient error (the transaction certainly did not commit) too often or
// for too long. It is the one retry loop of the server: it waits between
// attempts without outliving ctx, and it never retries an error whose
// outcome is unknown. A persistent transient failure, or a deadline reached
// while retrying one, is 10018: the request had no effect (SPEC section 3).
func Retry(ctx context.Context, attempts int, attempt func() error) error {
	var err error
	for i := 0; i < attempts; i++ {
		if err = attempt(); !IsTransient(err) {
			return err
		}
		if i == attempts-1 {
			break
		}
		t := time.NewTimer(time.Duration(i+1) * 5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return &Error{Code: CodeBusy, Msg: ErrBusy.Msg}
		case <-t.C:
		}
	}
	return &transientBusy{cause: err}
}

// transientBusy is 10018 that keeps its cause for the log.
type transientBusy struct{ cause error }

func (e *transientBusy) Error() string { return ErrBusy.Error() + ": " + e.cause.Error() }

// Unwrap makes errors.As find the 10018 *Error.
func (e *transientBusy) Unwrap() error { return ErrBusy }
