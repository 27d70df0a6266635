package postgres

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mapfront/server/internal/mapfront"
)

// Migration 0021 took SHARE ROW EXCLUSIVE on card_orders and then, in the
// same transaction, upgraded to ACCESS EXCLUSIVE (DROP INDEX) (found by a
// review; it now takes ACCESS EXCLUSIVE first).
// A terminal transaction that read its order FOR UPDATE before the
// migration reached DROP INDEX (LoadOpenCard, LoadRepeal: ROW SHARE, which
// SHARE ROW EXCLUSIVE admits) and writes it afterwards (writeOpenCard,
// writeRepeal: ROW EXCLUSIVE, which SHARE ROW EXCLUSIVE refuses) waits for
// the migration, while DROP INDEX waits for that transaction: a deadlock.
// In this order PostgreSQL aborts the terminal's write at once (40P01); with
// the write arriving during the backfill, the first waiter's
// deadlock_timeout decides which side dies, the server's start included.
// Settlement slices (SELECT .. FOR UPDATE, then UPDATE) are caught the same
// way. Taking ACCESS EXCLUSIVE first (LOCK TABLE card_orders IN ACCESS
// EXCLUSIVE MODE) makes the migration queue behind such a transaction
// instead (checked by hand: the terminal commits, the migration follows).
//
// This test covers the deadlock only. The lock's other purpose, that no
// order is written between the backfill and the triggers, is not tested
// (it would need a write landing inside the migration's transaction).
func TestMigration0021QueuesBehindATerminal(t *testing.T) {
	ctx := context.Background()
	url, setup, execSetup := migratedBefore(t, "0021")

	// A customer with a partly paid order, as a split payment leaves it.
	execSetup(`INSERT INTO products (product_id, name, short_name, price, face_value, kind, installments)
VALUES ('1012', '折扣卡', '折扣卡', 150000, 200000, 'discount', 1)`)
	execSetup(`INSERT INTO customers (mobile, id_number) VALUES ('13800000201', '110105194912310038')`)
	execSetup(`INSERT INTO accounts (account_id, kind, customer_id, product_id, status)
SELECT '1012000000000201', 'card', customer_id, '1012', 'pending' FROM customers WHERE mobile = '13800000201'`)
	const order = "20261126000000000201"
	execSetup(`INSERT INTO card_orders (order_id, customer_id, product_id, account_id, price, face_value, paid, status, business_date)
SELECT $1, customer_id, '1012', '1012000000000201', 150000, 200000, 50000, 'pending', '2026-11-26'
FROM customers WHERE mobile = '13800000201'`, order)

	// The terminal transaction's load: its filling order, locked.
	pos, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pos.Close(ctx)
	tx, err := pos.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT order_id FROM card_orders WHERE order_id = $1 AND filling FOR UPDATE`, order); err != nil {
		t.Fatal(err)
	}

	// A server starts meanwhile and migrates (Open runs 0021 and 0022).
	migrated := make(chan error, 1)
	go func() {
		zone, _ := time.LoadLocation("Asia/Shanghai")
		clk := &testClock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, zone)}
		policy := mapfront.DefaultPolicy()
		s, err := Open(ctx, url, Options{Clock: mapfront.Clock{Zone: zone, Now: clk.Now}, Policy: policy,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxConns: 2})
		if err == nil {
			s.Close()
		}
		migrated <- err
	}()
	// Until the migration waits for a lock on card_orders (DROP INDEX
	// behind the terminal transaction's ROW SHARE).
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := setup.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
WHERE NOT l.granted AND l.relation = 'card_orders'::regclass AND a.application_name = 'mapfront')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-migrated:
			t.Fatalf("the migration ended without waiting for the terminal transaction: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the migration never waited on card_orders")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The terminal transaction's write: the order's paid sum.
	_, posErr := tx.Exec(ctx, `UPDATE card_orders SET paid = 150000, filling = false WHERE order_id = $1`, order)
	if posErr == nil {
		posErr = tx.Commit(ctx)
	} else {
		_ = tx.Rollback(ctx)
	}
	migErr := <-migrated

	isDeadlock := func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "40P01"
	}
	if isDeadlock(migErr) || isDeadlock(posErr) {
		t.Fatalf("migration 0021 deadlocked with a terminal transaction that had read its order before the "+
			"migration's LOCK TABLE: migration: %v; terminal write: %v", migErr, posErr)
	}
	if migErr != nil || posErr != nil {
		t.Fatalf("migration: %v; terminal write: %v", migErr, posErr)
	}
}
