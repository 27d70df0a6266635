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

// ConsoleSignInFailed counts a failed sign-in; the lockAfter-th failure in a
// row locks the account for lockFor (and starts the count again). It says
// whether the account is now locked.
func (s *Store) ConsoleSignInFailed(ctx context.Context, name string, lockAfter int, lockFor time.Duration) (bool, error) {
	var locked bool
	err := s.pool.QueryRow(ctx, `UPDATE console_users SET
    locked_until = CASE WHEN failures + 1 >= $2 THEN $3::timestamptz ELSE locked_until END,
    failures = CASE WHEN failures + 1 >= $2 THEN 0 ELSE failures + 1 END
WHERE name = $1 RETURNING locked_until IS NOT NULL AND locked_until > $4`, name, lockAfter, s.clock.Now().Add(lockFor), s.clock.Now()).Scan(&locked)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return locked, s.wrapWrite(err)
}

// ConsoleSignInOK clears an account's failure count.
func (s *Store) ConsoleSignInOK(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `UPDATE console_users SET failures = 0, locked_until = NULL WHERE name = $1`, name)
	return s.wrapWrite(err)
}
