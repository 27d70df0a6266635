package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The ledger trigger looks a pending card account's order up once, and an
// active account's not at all (migration 0023; 0014 looked it up twice, for
// the status and for activated_at). What it writes is 0014's: a pending
// card whose order is active and credited becomes active with the order's
// activated_at, one whose order is still pending stays pending, and either
// way the balance moves.
func TestLedgerTriggerOneOrderLookup(t *testing.T) {
	e := newEnv(t)
	answers := []string{
		stlOpen(t, e, "13800000093", stlID("11010519900101093"), "1012", "000001", 150000).OrderID,
		stlOpen(t, e, "13800000094", stlID("11010519900101094"), "1012", "000002", 150000).OrderID,
	}
	var orders []*settledOrder
	for _, id := range answers {
		o, err := scanCardOrder(e.store.pool.QueryRow(e.ctx, `SELECT `+cardOrderColumns+` FROM card_orders WHERE order_id = $1`, id))
		if err != nil {
			t.Fatal(err)
		}
		if o.status != "pending" || o.credited {
			t.Fatalf("order %s: %s, credited %v; want a pending order", id, o.status, o.credited)
		}
		orders = append(orders, &settledOrder{cardOrder: *o, confirmed: o.price, payments: 1})
	}
	active, waiting := orders[0], orders[1]

	// A connection of its own: the counts read are its transaction's.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.store.pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var runID int64
	if err := tx.QueryRow(ctx, `INSERT INTO settlement_runs (business_date, file_name, sha256, status, started_at)
VALUES ('2026-11-26', 'f.txt', $1, 'applying', now()) RETURNING run_id`, stlSHA("f")).Scan(&runID); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	// As settlement: the order is marked active and credited first.
	one := []*settledOrder{active}
	if err := markActivated(ctx, tx, &run{id: runID, date: e.store.clock.Today(), at: now}, one, one, now); err != nil {
		t.Fatal(err)
	}
	scans := func() int64 {
		t.Helper()
		var n int64
		if err := tx.QueryRow(ctx, `SELECT pg_stat_get_xact_numscans('card_orders_account_id_key'::regclass)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	credit := func(o *settledOrder, fen int64, wantScans int64) {
		t.Helper()
		before := scans()
		if _, err := post(ctx, tx, "activate", o.id, posting{o.accountID, fen}, posting{sysCardSales, -fen}); err != nil {
			t.Fatal(err)
		}
		if got := scans() - before; got != wantScans {
			t.Fatalf("credit of %s (order %s) looked its order up %d times, want %d", o.accountID, o.id, got, wantScans)
		}
	}
	credit(active, 200000, 1)  // pending card, order active and credited
	credit(waiting, 200000, 1) // pending card, order still pending
	credit(active, 1, 0)       // the account is active now

	check := func(o *settledOrder, status string, balance int64, sameTime bool) {
		t.Helper()
		var gotStatus string
		var gotBalance int64
		var same, null bool
		if err := tx.QueryRow(ctx, `SELECT a.status, a.balance, a.activated_at IS NOT DISTINCT FROM o.activated_at, a.activated_at IS NULL
FROM accounts a JOIN card_orders o ON o.account_id = a.account_id WHERE a.account_id = $1`, o.accountID).Scan(
			&gotStatus, &gotBalance, &same, &null); err != nil {
			t.Fatal(err)
		}
		if gotStatus != status || gotBalance != balance || same != sameTime || (status == "pending" && !null) {
			t.Fatalf("account %s: %s, %d fen, activated_at as its order's %v (NULL %v); want %s, %d fen, as its order's %v",
				o.accountID, gotStatus, gotBalance, same, null, status, balance, sameTime)
		}
	}
	check(active, "active", 200001, true)
	check(waiting, "pending", 200000, true) // both NULL
}
