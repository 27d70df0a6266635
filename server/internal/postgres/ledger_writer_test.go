package postgres

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
)

// Migration 0021: the writer's own statement refuses what the trigger
// refuses, with the same codes, and leaves nothing behind; the trigger does
// not run for the writer's statements and still runs for any other
// statement that inserts postings.
func TestLedgerWriterRefuses(t *testing.T) {
	e := newEnv(t)
	a := newPayer(t, e, "15800004001", 1000)
	b := newPayer(t, e, "15800004002", 200)
	txns := e.scalar(t, `SELECT count(*) FROM ledger_txns`)
	// Raw arguments, past ledgerManyArgs's own check in Go.
	write := func(orders []string, legOrders []int32, accounts []string, amounts []int64) error {
		_, err := e.store.pool.Exec(e.ctx, ledgerManyCTE+`SELECT count(*) FROM t`, "pay", orders, legOrders, accounts, amounts)
		return err
	}
	err := write([]string{"w1", "w2"}, []int32{1, 1, 2, 2},
		[]string{a, sysMerchantPayable, b, sysMerchantPayable}, []int64{-100, 100, -50, 49})
	wantRefused(t, "second transaction unbalanced", err, "23000", "")
	if !strings.Contains(err.Error(), "(w2) does not balance (-1)") {
		t.Fatalf("message names the transaction: %v", err)
	}
	err = write([]string{"w3"}, []int32{1, 1, 1},
		[]string{a, "9999000000000003", sysMerchantPayable}, []int64{-100, -5, 105})
	wantRefused(t, "unknown account", err, "23503", "")
	if !strings.Contains(err.Error(), "posting to unknown account 9999000000000003") {
		t.Fatalf("message names the account: %v", err)
	}
	err = write([]string{"w4", "w5"}, []int32{1, 1, 2, 2},
		[]string{b, sysMerchantPayable, b, sysMerchantPayable}, []int64{-150, 150, -51, 51})
	wantRefused(t, "two pays over the balance", err, "23514", "balance_non_negative")
	// The one-transaction writer.
	_, err = e.store.pool.Exec(e.ctx, ledgerSQL, "pay", "w6", []string{a, sysMerchantPayable}, []int64{-10, 9})
	wantRefused(t, "one transaction unbalanced", err, "23000", "")
	_, err = e.store.pool.Exec(e.ctx, ledgerSQL, "pay", "w7", []string{"9999000000000004", sysMerchantPayable}, []int64{-10, 10})
	wantRefused(t, "one transaction, unknown account", err, "23503", "")
	if got := e.scalar(t, `SELECT count(*) FROM ledger_txns`); got != txns {
		t.Fatalf("refused statements left %d ledger transactions", got-txns)
	}
	if e.balance(t, a) != 1000 || e.balance(t, b) != 200 {
		t.Fatalf("balances moved by refused statements: %d, %d", e.balance(t, a), e.balance(t, b))
	}

	// Accepted: the transactions numbered in the order given, each leg with
	// its own transaction, the balances moved by the sums.
	if err := write([]string{"w8", "w9", "w10"}, []int32{1, 1, 2, 2, 3, 3},
		[]string{a, sysMerchantPayable, b, sysMerchantPayable, a, sysMerchantPayable},
		[]int64{-100, 100, -200, 200, -300, 300}); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := e.store.pool.QueryRow(e.ctx, `SELECT string_agg(format('%s:%s', t.order_id, p.amount), ' ' ORDER BY t.txn_id, p.amount)
FROM ledger_txns t JOIN postings p USING (txn_id) WHERE t.order_id LIKE 'w%' AND p.account_id NOT LIKE 'SYS-%'`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "w8:-100 w9:-200 w10:-300" {
		t.Fatalf("postings by transaction: %q", got)
	}
	if e.balance(t, a) != 600 || e.balance(t, b) != 0 {
		t.Fatalf("balances %d, %d; want 600, 0", e.balance(t, a), e.balance(t, b))
	}
	e.verify(t)

	// The trigger's calls, counted in this transaction: none for the
	// writer's statement, one for a hand-written insert (accepted when it
	// balances, refused when it does not, as before 0021).
	calls := func(fn func(tx pgx.Tx) error) (n int64, err error) {
		err = pgx.BeginFunc(e.ctx, e.store.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(e.ctx, `SET LOCAL track_functions = 'pl'`); err != nil {
				return err
			}
			if err := fn(tx); err != nil {
				return err
			}
			return tx.QueryRow(e.ctx, `SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions
WHERE funcname = 'postings_apply'`).Scan(&n)
		})
		return n, err
	}
	n, err := calls(func(tx pgx.Tx) error {
		_, err := post(e.ctx, tx, "topup", "w11", posting{a, 5}, posting{sysTopUp, -5})
		return err
	})
	if err != nil || n != 0 {
		t.Fatalf("the writer's statement: %d trigger calls, err %v; want 0, nil", n, err)
	}
	// The writer with a tail that does not read its transactions (as the
	// pay batch's insert of its pay orders): PostgreSQL may run the
	// postings' insert first; the trigger still does not run, and each
	// balance moves once.
	n, err = calls(func(tx pgx.Tx) error {
		args, err := ledgerManyArgs("pay", []string{"w13", "w14"}, [][]mapfront.Leg{
			{{Account: a, Amount: -7}, {Account: sysMerchantPayable, Amount: 7}},
			{{Account: a, Amount: -3}, {Account: sysMerchantPayable, Amount: 3}}})
		if err != nil {
			return err
		}
		if _, err := tx.Exec(e.ctx, ledgerManyCTE+`SELECT 1`, args...); err != nil {
			return err
		}
		_, err = tx.Exec(e.ctx, ledgerCTE+`SELECT 1`, "topup", "w15", []string{a, sysTopUp}, []int64{1, -1})
		return err
	})
	if err != nil || n != 0 {
		t.Fatalf("the writer with a tail: %d trigger calls, err %v; want 0, nil", n, err)
	}
	if e.balance(t, a) != 596 {
		t.Fatalf("balance %d, want 605 - 7 - 3 + 1 = 596", e.balance(t, a))
	}
	e.verify(t)
	handWritten := func(credit, debit int64) func(tx pgx.Tx) error {
		return func(tx pgx.Tx) error {
			var txn int64
			if err := tx.QueryRow(e.ctx, `INSERT INTO ledger_txns (kind, order_id) VALUES ('topup', 'w12') RETURNING txn_id`).Scan(&txn); err != nil {
				return err
			}
			_, err := tx.Exec(e.ctx, `INSERT INTO postings (txn_id, account_id, amount) VALUES ($1, $2, $3), ($1, 'SYS-TOPUP', $4)`,
				txn, a, credit, debit)
			return err
		}
	}
	n, err = calls(handWritten(10, -10))
	if err != nil || n != 1 {
		t.Fatalf("a hand-written balanced insert: %d trigger calls, err %v; want 1, nil", n, err)
	}
	if e.balance(t, a) != 606 {
		t.Fatalf("balance %d, want 606 (the trigger moved it)", e.balance(t, a))
	}
	_, err = calls(handWritten(10, -9))
	wantRefused(t, "hand-written unbalanced insert", err, "23000", "")
	e.verify(t)
}

// Only the writer inserts postings (migration 0021: the trigger does not
// check a statement in a transaction the writer has marked).
func TestOnlyTheWriterInsertsPostings(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".data" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(strings.ToLower(string(body)), "into postings") && filepath.Base(path) != "ledger.go" {
			t.Errorf("%s inserts postings; only ledger.go's writer may", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
