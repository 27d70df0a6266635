package postgres

import (
	"context"
	"testing"
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
	ctx, tx, r := settlingTx(t, e)
	now := r.at
	// As settlement: the order is marked active and credited first.
	one := []*settledOrder{active}
	if err := markActivated(ctx, tx, r, one, one, now); err != nil {
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

// The cases the trigger leaves alone or fills from the account (0014's
// rules, unchanged by 0023): a frozen or closed card whose order is active
// and credited keeps its status and time; an active, credited order without
// an activation time makes its pending card active and leaves the
// account's time; a pending cash account stays pending even when an active,
// credited order names it (only cards are activated by the ledger).
func TestLedgerTriggerLeavesOtherAccounts(t *testing.T) {
	e := newEnv(t)
	var orders []*cardOrder
	for i, n := range []string{"95", "96", "97", "98"} {
		a := stlOpen(t, e, "138000000"+n, stlID("110105199001010"+n), "1012", "00000"+string(rune('1'+i)), 150000)
		o, err := scanCardOrder(e.store.pool.QueryRow(e.ctx, `SELECT `+cardOrderColumns+` FROM card_orders WHERE order_id = $1`, a.OrderID))
		if err != nil {
			t.Fatal(err)
		}
		orders = append(orders, o)
	}
	frozen, closed, untimed, cashOwner := orders[0], orders[1], orders[2], orders[3]
	ctx := context.Background()
	tx, err := e.store.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Every order active and credited; the untimed one without a time.
	exec(`UPDATE card_orders SET status = 'active', credited = true, released = 1, filling = false,
    activated_at = CASE WHEN order_id = $2 THEN NULL ELSE $1::timestamptz END
WHERE order_id = ANY($3)`, e.clock.Now(), untimed.id, []string{frozen.id, closed.id, untimed.id, cashOwner.id})
	exec(`UPDATE accounts SET status = 'frozen', activated_at = '2026-01-01T00:00:00Z' WHERE account_id = $1`, frozen.accountID)
	exec(`UPDATE accounts SET status = 'closed' WHERE account_id = $1`, closed.accountID)
	// A time on the pending card: an order without one must leave it.
	exec(`UPDATE accounts SET activated_at = '2026-02-02T00:00:00Z' WHERE account_id = $1`, untimed.accountID)
	var cash string
	if err := tx.QueryRow(ctx, `SELECT account_id FROM accounts WHERE customer_id = $1 AND kind = 'cash'`,
		cashOwner.customerID).Scan(&cash); err != nil {
		t.Fatal(err)
	}
	exec(`UPDATE accounts SET status = 'pending' WHERE account_id = $1`, cash)
	// Its order names the cash account: only the kind keeps it pending.
	exec(`UPDATE card_orders SET account_id = $1 WHERE order_id = $2`, cash, cashOwner.id)

	accts := []string{frozen.accountID, closed.accountID, untimed.accountID, cash}
	// status, balance, activated_at (text, "" for NULL) of an account
	read := func(acct string) (string, int64, string) {
		t.Helper()
		var status, at string
		var balance int64
		if err := tx.QueryRow(ctx, `SELECT status, balance, coalesce(activated_at::text, '') FROM accounts WHERE account_id = $1`,
			acct).Scan(&status, &balance, &at); err != nil {
			t.Fatal(err)
		}
		return status, balance, at
	}
	before, balances := map[string]string{}, map[string]int64{}
	for _, acct := range accts {
		_, balances[acct], before[acct] = read(acct)
	}
	for _, acct := range accts {
		if _, err := post(ctx, tx, "activate", "x", posting{acct, 100}, posting{sysCardSales, -100}); err != nil {
			t.Fatalf("credit %s: %v", acct, err)
		}
	}
	// Every account keeps its activated_at; only the untimed order's
	// pending card changes status.
	for acct, want := range map[string]string{frozen.accountID: "frozen", closed.accountID: "closed",
		untimed.accountID: "active", cash: "pending"} {
		status, balance, at := read(acct)
		if status != want || at != before[acct] || balance != balances[acct]+100 {
			t.Errorf("account %s: %s, activated_at %q, %d fen; want %s, %q, %d fen", acct, status, at, balance, want, before[acct],
				balances[acct]+100)
		}
	}
}
