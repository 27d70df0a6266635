// Package postgres stores mapfront in PostgreSQL through pgx. Each exported
// method of Store is one database transaction; unexported (ctx, tx, ...)
// helpers hold the SQL beside the code that scans it. Money moves only through
// postings (ledger.go), which the database balances and keeps non-negative.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"mapfront/server/internal/mapfront"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is mapfront's PostgreSQL store and the implementation of its services.
type Store struct {
	pool   *pgxpool.Pool
	clock  mapfront.Clock
	policy mapfront.Policy
	keys   Keys
	log    *slog.Logger
}

// Keys is what the store needs of the master key: payment password hashes and
// sealed terminal PIN keys. The secret package implements it.
type Keys interface {
	// HashPassword returns a salted keyed hash of a payment password.
	HashPassword(password string) ([]byte, error)
	// VerifyPassword reports, in constant time, whether password matches
	// hash; an error means the stored hash is unusable.
	VerifyPassword(hash []byte, password string) (bool, error)
	// SealTPK encrypts a terminal's PIN key, bound to the terminal id.
	SealTPK(terminalID string, tpk []byte) ([]byte, error)
	// OpenTPK decrypts a sealed PIN key; it fails for another terminal id.
	OpenTPK(terminalID string, sealed []byte) ([]byte, error)
}

// Options configure a Store.
type Options struct {
	Clock  mapfront.Clock
	Policy mapfront.Policy
	Keys   Keys
	Log    *slog.Logger
	// StatementTimeout bounds every statement (default 5 s).
	StatementTimeout time.Duration
	// MaxConns bounds the pool (default 16).
	MaxConns int32
}

// Open connects, applies the embedded migrations and returns the Store.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	} else {
		cfg.MaxConns = 16
	}
	if o.StatementTimeout == 0 {
		o.StatementTimeout = 5 * time.Second
	}
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(o.StatementTimeout.Milliseconds())
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "60000"
	cfg.ConnConfig.RuntimeParams["application_name"] = "mapfront"
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Clock.Now == nil {
		o.Clock.Now = time.Now
	}
	if o.Clock.Zone == nil {
		o.Clock.Zone = time.UTC
	}
	s := &Store{pool: pool, clock: o.Clock, policy: o.Policy, keys: o.Keys, log: o.Log}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping reports whether the database answers; readiness uses it.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Pool exposes the pool for metrics.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// migrate applies the embedded migrations in name order, each in its own
// transaction, under an advisory lock so that two servers starting together
// do not race. Applied migrations are recorded and never rerun.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	const lockID = 0x6d6170 // "map"
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockID); err != nil {
		return fmt.Errorf("migrate lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockID)

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		var done bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)`, base).Scan(&done); err != nil {
			return fmt.Errorf("migrate %s: %w", base, err)
		}
		if done {
			continue
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, base)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", base, err)
		}
		s.log.Info("migration applied", "name", base)
	}
	return nil
}

// inTx runs fn in one database transaction. A serialization failure or
// deadlock is retried a few times; if it persists the caller gets 10018
// (busy: nothing happened). Other errors come back as they are, wrapped.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, fn)
		if !retryable(err) {
			return s.wrap(err)
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	s.log.Warn("transaction retries exhausted", "err", err)
	return mapfront.ErrBusy
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		case "23505":
			// Two first requests raced to create the same customer or the
			// same filling card order; the retry finds the winner's row.
			return pe.ConstraintName == "customers_mobile_key" || pe.ConstraintName == "card_orders_one_filling"
		}
	}
	return false
}

// wrap turns driver errors into domain errors where they have a business
// meaning; others stay as they are, to be logged as internal errors.
func (s *Store) wrap(err error) error {
	if err == nil {
		return nil
	}
	var de *mapfront.Error
	if errors.As(err, &de) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23514" && pe.ConstraintName == "balance_non_negative":
			return fmt.Errorf("%w: %v", mapfront.Errorf(mapfront.CodeInsufficient, "余额不足"), err)
		case pe.Code == "57014": // query_canceled: statement timeout
			return fmt.Errorf("%w: %v", mapfront.ErrBusy, err)
		case pe.Code == "53300" || pe.Code == "57P03": // too many connections, cannot connect now
			return fmt.Errorf("%w: %v", mapfront.ErrBusy, err)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %v", mapfront.ErrBusy, err)
	}
	return err
}

// newOrderID returns a 20-digit order id: the local date-time (14 digits)
// and 6 digits of a sequence, unique unless a million orders share a second.
func (s *Store) newOrderID(ctx context.Context, tx pgx.Tx) (string, error) {
	var n int64
	if err := tx.QueryRow(ctx, `SELECT nextval('order_seq')`).Scan(&n); err != nil {
		return "", err
	}
	return s.clock.Now().In(s.clock.Zone).Format("20060102150405") + fmt.Sprintf("%06d", n%1_000_000), nil
}

// newAccountID returns a 16-digit account id: the 4-digit prefix (product id,
// or CashPrefix), 11 digits of a sequence and a Luhn check digit.
func newAccountID(ctx context.Context, tx pgx.Tx, prefix string) (string, error) {
	var n int64
	if err := tx.QueryRow(ctx, `SELECT nextval('account_seq')`).Scan(&n); err != nil {
		return "", err
	}
	body := prefix + fmt.Sprintf("%011d", n%100_000_000_000)
	return body + luhn(body), nil
}

// luhn returns the Luhn check digit of digits.
func luhn(digits string) string {
	sum := 0
	double := true
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return fmt.Sprint((10 - sum%10) % 10)
}
