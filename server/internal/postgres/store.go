// Package postgres stores mapfront in PostgreSQL through pgx: SQL and nothing
// else. The services of package mapfront own the interfaces it implements
// and make every decision. Each exported method of Store is one database
// transaction, or begins one that its unit ends (offline.go); unexported
// helpers hold the SQL beside the code that scans it. Money moves only
// through postings (ledger.go), which the database balances and keeps
// non-negative. Errors are classified once (classify.go).
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

// Store is mapfront's PostgreSQL store: it implements mapfront.OfflineStore,
// mapfront.AdminStore and the settlement side.
type Store struct {
	pool   *pgxpool.Pool
	clock  mapfront.Clock
	policy mapfront.Policy
	newPW  func(idNumber string) ([]byte, error)
	sealID func(mobile, idNumber string) (*mapfront.SealedID, error)
	log    *slog.Logger
}

// Options configure a Store.
type Options struct {
	Clock  mapfront.Clock
	Policy mapfront.Policy
	// NewCustomerPassword gives the password hash of a customer that the
	// settlement side creates from the file (the service's
	// InitialPasswordHash): the store holds no key.
	NewCustomerPassword func(idNumber string) ([]byte, error)
	// SealID seals the ID number of a record the settlement side opens
	// from the file (mapfront.SealID with the service's keys), for the same
	// reason: the store holds no key. Without it such a record is queued
	// as not openable.
	SealID func(mobile, idNumber string) (*mapfront.SealedID, error)
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
	// Array parameters without an allocation per element (arrays.go).
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		registerFlatArrays(c.TypeMap())
		return nil
	}
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
	if o.NewCustomerPassword == nil {
		o.NewCustomerPassword = func(string) ([]byte, error) { return nil, nil }
	}
	if o.Clock.Zone == nil {
		o.Clock.Zone = time.UTC
	}
	if o.SealID == nil {
		o.SealID = func(string, string) (*mapfront.SealedID, error) {
			return nil, errors.New("postgres: no ID sealer configured (Options.SealID)")
		}
	}
	s := &Store{pool: pool, clock: o.Clock, policy: o.Policy, newPW: o.NewCustomerPassword, sealID: o.SealID, log: o.Log}
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
// do not race. Applied migrations are recorded by name and never rerun; the
// numbers only order them (there is no 0007: that number was never landed).
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

// inTx is transact for the settlement side's steps.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.transact(ctx, "transaction", fn)
}

// txAttempts bounds the tries of one transaction on transient errors.
const txAttempts = 4

// transact runs fn in one database transaction, named what in its errors.
// Errors that certainly did not commit and may pass (classify) are tried
// again with mapfront.Retry, the one retry loop, and end as 10018; fn's
// domain errors come back as they are.
func (s *Store) transact(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	err := mapfront.Retry(ctx, txAttempts, func() error {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return classify(what+" begin", err, false)
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op once committed
		if err := fn(tx); err != nil {
			return classify(what, err, false)
		}
		return classify(what+" commit", tx.Commit(ctx), true)
	})
	if mapfront.ErrorCode(err) == mapfront.CodeBusy {
		s.log.Warn("transaction busy", "what", what, "err", err)
	}
	return err
}

// wrap classifies the error of a statement outside a retried transaction:
// a transient failure is 10018 at once.
func (s *Store) wrap(err error) error {
	err = callerText(classify("query", err, false))
	if mapfront.IsTransient(err) {
		return fmt.Errorf("%w: %v", mapfront.ErrBusy, err)
	}
	return err
}

// wrapWrite classifies the error of a statement that writes outside a
// transaction (autocommit): it commits as it runs, so once it was sent
// (pgx says whether anything was) a lost connection or an ended context
// leaves its effect unknown (10000, not 10018).
func (s *Store) wrapWrite(err error) error {
	err = classify("statement", err, err != nil && !pgconn.SafeToRetry(err))
	if mapfront.IsTransient(err) {
		return fmt.Errorf("%w: %v", mapfront.ErrBusy, err)
	}
	return err
}

// newOrderID returns a 20-digit order id (mapfront.OrderID) for the
// settlement side's card orders.
func (s *Store) newOrderID(ctx context.Context, tx pgx.Tx) (string, error) {
	var n int64
	if err := tx.QueryRow(ctx, `SELECT nextval('order_seq')`).Scan(&n); err != nil {
		return "", err
	}
	return mapfront.OrderID(s.clock, s.clock.Now(), n), nil
}

// newAccountID returns a 16-digit account id (mapfront.AccountID).
func newAccountID(ctx context.Context, tx pgx.Tx, prefix string) (string, error) {
	var n int64
	if err := tx.QueryRow(ctx, `SELECT nextval('account_seq')`).Scan(&n); err != nil {
		return "", err
	}
	return mapfront.AccountID(prefix, n), nil
}
