package mapfront

import (
	"errors"
	"fmt"
	"time"
)

// PINBudget is the wrong-password budget per terminal across customers
// (SPEC section 7): Limit wrong PINs within Window from one terminal,
// whatever the customers, suspend the terminal's password-bearing requests
// (pay, get_account_info) for Suspension. It is kept in the database (the
// terminals row, migration 0009) so that every server replica shares it.
// Limit 0 turns the budget off.
type PINBudget struct {
	Limit      int
	Window     time.Duration
	Suspension time.Duration
}

// DefaultPINBudget is 20 wrong PINs per 10 minutes, then 10 minutes
// suspended.
func DefaultPINBudget() PINBudget {
	return PINBudget{Limit: 20, Window: 10 * time.Minute, Suspension: 10 * time.Minute}
}

// Validate refuses a negative limit and, when on, a non-positive window or
// suspension.
func (b PINBudget) Validate() error {
	if b.Limit < 0 {
		return fmt.Errorf("terminal wrong-PIN limit %d: want 0 (off) or more", b.Limit)
	}
	if b.Limit > 0 && (b.Window <= 0 || b.Suspension <= 0) {
		return errors.New("terminal wrong-PIN window and suspension must be positive")
	}
	return nil
}

// PINGuard is a terminal's wrong-PIN state as read with the terminal row:
// the failures counted in the window that began at WindowStart, and the
// end of a suspension (zero: never suspended).
type PINGuard struct {
	Failures       int
	WindowStart    time.Time
	SuspendedUntil time.Time
}

// PINFailure is one wrong PIN to count against a terminal (PINGuard.Next is
// the rule): a count whose window began after WindowFrom grows by one, an
// older one restarts at 1 with the window at Now; reaching Limit sets the
// suspension to SuspendUntil. The password-bearing loads lock the terminal
// row, so each request (and each pay of a batch, in arrival order) is
// decided on the count the one before it left.
type PINFailure struct {
	TerminalID   string
	Now          time.Time
	WindowFrom   time.Time // Now - Window
	Limit        int
	SuspendUntil time.Time // Now + Suspension
}

// CheckPINBudget refuses a password-bearing request from a suspended
// terminal with 10002, naming the end of the suspension in local time
// (yyyy-MM-dd HH:mm:ss, zone). It is checked before the PIN block is opened,
// so that a suspended terminal cannot go on guessing.
func CheckPINBudget(t TerminalState, o Origin, now time.Time, zone *time.Location) error {
	until := t.PINGuard.SuspendedUntil
	if until.IsZero() || !now.Before(until) {
		return nil
	}
	if zone == nil {
		zone = time.UTC
	}
	return Errorf(CodeTerminal, "终端%s支付密码错误次数过多，已暂停至%s", o.TerminalID, until.In(zone).Format("2006-01-02 15:04:05"))
}

// CountPINFailure returns the failure to count against the terminal when the
// request's decline is a wrong password (10007, or the one that locked the
// password: ErrPasswordJustLocked); nil for any other outcome or with the
// budget off. A password already locked (10008), a PIN block that does not
// open (10017) or an unknown consumer are not a guessed PIN.
func CountPINFailure(decline error, o Origin, b PINBudget, now time.Time) *PINFailure {
	if b.Limit <= 0 || decline == nil ||
		ErrorCode(decline) != CodeWrongPassword && !errors.Is(decline, ErrPasswordJustLocked) {
		return nil
	}
	return &PINFailure{TerminalID: o.TerminalID, Now: now, WindowFrom: now.Add(-b.Window), Limit: b.Limit,
		SuspendUntil: now.Add(b.Suspension)}
}

// Next is the guard after f is counted: the rule the store's statement
// applies in the database, written here as the reference its test checks.
func (g PINGuard) Next(f PINFailure) PINGuard {
	if !g.WindowStart.IsZero() && g.WindowStart.After(f.WindowFrom) {
		g.Failures++
	} else {
		g.Failures, g.WindowStart = 1, f.Now
	}
	if g.Failures >= f.Limit {
		g.SuspendedUntil = f.SuspendUntil
	}
	return g
}
