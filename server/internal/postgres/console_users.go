package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// ConsoleUser is an operations-console account (migration 0008): its role
// is one of the authorization roles (server/internal/authz); PasswordHash is
// an argon2id PHC string.
type ConsoleUser struct {
	Name         string
	Role         string
	PasswordHash string
	Failures     int
	LockedUntil  *time.Time
}

// UpsertConsoleUser creates an account or replaces its role and password
// (and unlocks it), audited. Errors: 10001 a name the table refuses.
func (s *Store) UpsertConsoleUser(ctx context.Context, name, role, hash string) error {
	return s.auditedTx(ctx, audit.Change{Op: "ConsoleUserAdd", Target: "console-user:" + name, Args: map[string]any{"role": role}},
		func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO console_users (name, role, password_hash) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET role = $2, password_hash = $3, failures = 0, locked_until = NULL, updated_at = now()`, name, role, hash)
			var pe interface{ SQLState() string }
			if errors.As(err, &pe) && pe.SQLState() == "23514" {
				return mapfront.Invalid("name", "须为小写字母、数字、点、下划线或连字符，最多32个字符")
			}
			return err
		})
}

// ConsoleUser returns an account. Errors: 10005 no such account.
func (s *Store) ConsoleUser(ctx context.Context, name string) (*ConsoleUser, error) {
	var u ConsoleUser
	err := s.pool.QueryRow(ctx, `SELECT name, role, password_hash, failures, locked_until FROM console_users WHERE name = $1`, name).
		Scan(&u.Name, &u.Role, &u.PasswordHash, &u.Failures, &u.LockedUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mapfront.Errorf(mapfront.CodeNotFound, "账户不存在")
	}
	return &u, s.wrap(err)
}

// ConsoleSignInReserve counts a sign-in attempt before its password is
// checked, in one conditional UPDATE that is also the lock check: an
// account locked now (by the store's clock) is not counted and not returned
// for checking, however many attempts arrive at once, so at most lockAfter
// passwords are ever checked in a run. The lockAfter-th attempt of a run
// locks the account for lockFor as it is counted; the first attempt after a
// lock has expired starts a new run. A check that succeeds must then call
// ConsoleSignInOK; a failed one needs nothing more (it was counted here).
//
// reserved: the attempt was counted and u is the account to check the
// password against (u.Failures is this attempt's number in the run;
// u.LockedUntil is set when it was the run's last). Not reserved: the
// account is locked and the password must not be checked; u.LockedUntil
// says until when (nil if the lock ended in the meantime). Errors: 10005 no
// such account.
func (s *Store) ConsoleSignInReserve(ctx context.Context, name string, lockAfter int, lockFor time.Duration) (u *ConsoleUser, reserved bool, err error) {
	now := s.clock.Now()
	u = &ConsoleUser{}
	// In SET the columns are the row's values before the update; under READ
	// COMMITTED an UPDATE that waited for another one's row lock evaluates
	// its WHERE again on the row that one left, so concurrent attempts count
	// one after another and those after the lock are not counted.
	err = s.pool.QueryRow(ctx, `UPDATE console_users SET
    failures = CASE WHEN locked_until IS NULL THEN failures ELSE 0 END + 1,
    locked_until = CASE WHEN CASE WHEN locked_until IS NULL THEN failures ELSE 0 END + 1 >= $2 THEN $3::timestamptz END
WHERE name = $1 AND (locked_until IS NULL OR locked_until <= $4::timestamptz)
RETURNING name, role, password_hash, failures, locked_until`, name, lockAfter, now.Add(lockFor), now).
		Scan(&u.Name, &u.Role, &u.PasswordHash, &u.Failures, &u.LockedUntil)
	if err == nil {
		return u, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, s.wrapWrite(err)
	}
	// Nothing counted: locked, or no such account.
	err = s.pool.QueryRow(ctx, `SELECT name, role, failures, locked_until FROM console_users WHERE name = $1`, name).
		Scan(&u.Name, &u.Role, &u.Failures, &u.LockedUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, mapfront.Errorf(mapfront.CodeNotFound, "账户不存在")
	}
	if err != nil {
		return nil, false, s.wrap(err)
	}
	if u.LockedUntil != nil && !u.LockedUntil.After(now) {
		u.LockedUntil = nil
	}
	return u, false, nil
}

// ConsoleSignInOK clears an account's failure count and lock after a
// password checked in an attempt ConsoleSignInReserve counted (only such an
// attempt may call it: one that was not reserved was never checked).
func (s *Store) ConsoleSignInOK(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `UPDATE console_users SET failures = 0, locked_until = NULL WHERE name = $1`, name)
	return s.wrapWrite(err)
}
