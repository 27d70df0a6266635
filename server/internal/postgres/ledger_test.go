package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mapfront/server/internal/mapfront"
)

// wantRefused fails unless err is a PostgreSQL error with the code (and,
// when given, the constraint).
func wantRefused(t *testing.T, what string, err error, code, constraint string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: err = %v, want SQLSTATE %s", what, err, code)
	}
	if pe.Code != code || (constraint != "" && pe.ConstraintName != constraint) {
		t.Fatalf("%s: SQLSTATE %s constraint %q (%s), want %s %q", what, pe.Code, pe.ConstraintName, pe.Message, code, constraint)
	}
}

// SPEC section 4: the database itself, not only the Go side, refuses what
// would break the ledger, through the statement-level triggers of migration
// 0010; nothing refused leaves a trace, and the ledger still proves.
func TestLedgerRefuses(t *testing.T) {
	e := newEnv(t)
	account := newPayer(t, e, "15800001234", 500)
	exec := func(q string, args ...any) error {
		_, err := e.store.pool.Exec(e.ctx, q, args...)
		return err
	}
	inTx := func(fn func(tx pgx.Tx) error) error {
		return pgx.BeginFunc(e.ctx, e.store.pool, fn)
	}
	var txns, postings int64
	count := func() (int64, int64) {
		return e.scalar(t, `SELECT count(*) FROM ledger_txns`), e.scalar(t, `SELECT count(*) FROM postings`)
	}
	txns, postings = count()

	// An overdraft: balance 500, debit 501.
	err := inTx(func(tx pgx.Tx) error {
		_, err := post(e.ctx, tx, "pay", "t1", posting{account, -501}, posting{sysMerchantPayable, 501})
		return err
	})
	wantRefused(t, "overdraft", err, "23514", "balance_non_negative")

	// Unbalanced, written as raw SQL (ledgerArgs would refuse it in Go).
	err = exec(`WITH t AS (INSERT INTO ledger_txns (kind, order_id) VALUES ('pay', 't2') RETURNING txn_id)
INSERT INTO postings (txn_id, account_id, amount) SELECT txn_id, a, m FROM t,
    unnest(ARRAY[$1, 'SYS-MERCHANT-PAYABLE'], ARRAY[-100, 99]::bigint[]) AS u(a, m)`, account)
	wantRefused(t, "unbalanced", err, "23000", "")

	// A customer leg of no account, balanced.
	err = inTx(func(tx pgx.Tx) error {
		_, err := post(e.ctx, tx, "topup", "t3", posting{"9999000000000001", 100}, posting{sysTopUp, -100})
		return err
	})
	wantRefused(t, "unknown account", err, "23503", "")

	// Postings of no ledger transaction, balanced.
	err = exec(`INSERT INTO postings (txn_id, account_id, amount) VALUES (987654321, $1, 10), (987654321, 'SYS-TOPUP', -10)`, account)
	wantRefused(t, "unknown ledger transaction", err, "23503", "")

	// A leg added to a balanced transaction in a later statement: the
	// transaction no longer balances, whatever the new statement sums to.
	var topupTxn int64
	if err := e.store.pool.QueryRow(e.ctx, `SELECT txn_id FROM topups WHERE reference = 't-15800001234'`).Scan(&topupTxn); err != nil {
		t.Fatal(err)
	}
	err = exec(`INSERT INTO postings (txn_id, account_id, amount) VALUES ($1, 'SYS-DISCOUNT', 7)`, topupTxn)
	wantRefused(t, "leg added later", err, "23000", "")

	// The legs of one transaction in two statements: refused at the first.
	err = inTx(func(tx pgx.Tx) error {
		var txn int64
		if err := tx.QueryRow(e.ctx, `INSERT INTO ledger_txns (kind, order_id) VALUES ('topup', 't5') RETURNING txn_id`).Scan(&txn); err != nil {
			return err
		}
		if _, err := tx.Exec(e.ctx, `INSERT INTO postings (txn_id, account_id, amount) VALUES ($1, $2, 10)`, txn, account); err != nil {
			return err
		}
		_, err := tx.Exec(e.ctx, `INSERT INTO postings (txn_id, account_id, amount) VALUES ($1, 'SYS-TOPUP', -10)`, txn)
		return err
	})
	wantRefused(t, "legs in two statements", err, "23000", "")

	// Append-only: no UPDATE, DELETE or TRUNCATE of the ledger.
	for _, q := range []string{
		`UPDATE postings SET amount = amount * 2 WHERE account_id = 'SYS-TOPUP'`,
		`DELETE FROM postings WHERE account_id = 'SYS-TOPUP'`,
		`UPDATE ledger_txns SET order_id = 'x'`,
		`DELETE FROM ledger_txns`,
		`TRUNCATE postings`,
		`TRUNCATE ledger_txns CASCADE`,
	} {
		err := exec(q)
		wantRefused(t, q, err, "23000", "")
		if !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: %v", q, err)
		}
	}

	// A transaction written like the settlement's (its row first, all its
	// legs in one later statement) is accepted and moves the balance.
	if err := inTx(func(tx pgx.Tx) error {
		var txn int64
		if err := tx.QueryRow(e.ctx, `INSERT INTO ledger_txns (kind, order_id) VALUES ('topup', 't6') RETURNING txn_id`).Scan(&txn); err != nil {
			return err
		}
		_, err := tx.Exec(e.ctx, `INSERT INTO postings (txn_id, account_id, amount) VALUES ($1, $2, 25), ($1, 'SYS-TOPUP', -25)`, txn, account)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := e.balance(t, account); got != 525 {
		t.Fatalf("balance %d, want 525", got)
	}
	gotTxns, gotPostings := count()
	if gotTxns != txns+1 || gotPostings != postings+2 {
		t.Fatalf("ledger %d transactions, %d postings; want %d, %d", gotTxns, gotPostings, txns+1, postings+2)
	}
	e.verify(t)
}

// Group commit writes many ledger transactions in one statement
// (ledgerManyCTE): two pays of one account move its balance by their sum,
// and the overdraft CHECK sees the statement's total, not each pay alone.
func TestLedgerManyOneStatement(t *testing.T) {
	e := newEnv(t)
	a := newPayer(t, e, "15800002001", 1000)
	b := newPayer(t, e, "15800002002", 50)
	write := func(ids []string, legs [][]mapfront.Leg) error {
		args, err := ledgerManyArgs("pay", ids, legs)
		if err != nil {
			return err
		}
		_, err = e.store.pool.Exec(e.ctx, ledgerManyCTE+`SELECT count(*) FROM t`, args...)
		return err
	}
	pay := func(account string, amount int64) []mapfront.Leg {
		return []mapfront.Leg{{Account: account, Amount: -amount}, {Account: sysMerchantPayable, Amount: amount}}
	}
	if err := write([]string{"m1", "m2", "m3"}, [][]mapfront.Leg{pay(a, 300), pay(b, 50), pay(a, 450)}); err != nil {
		t.Fatal(err)
	}
	if got := e.balance(t, a); got != 250 {
		t.Fatalf("balance of a %d, want 1000 - 300 - 450 = 250", got)
	}
	if got := e.balance(t, b); got != 0 {
		t.Fatalf("balance of b %d, want 0", got)
	}
	// 200 + 100 > 250: each alone fits, together they overdraw.
	err := write([]string{"m4", "m5"}, [][]mapfront.Leg{pay(a, 200), pay(a, 100)})
	wantRefused(t, "two pays over the balance", err, "23514", "balance_non_negative")
	if got := e.balance(t, a); got != 250 {
		t.Fatalf("balance of a %d after the refused statement, want 250", got)
	}
	if n := e.scalar(t, `SELECT count(*) FROM ledger_txns WHERE order_id IN ('m4', 'm5')`); n != 0 {
		t.Fatalf("refused statement left %d ledger transactions", n)
	}
	e.verify(t)

	// The statements, newest first (a customer account's through
	// postings_by_account, a system account's without it).
	for _, c := range []struct {
		account string
		want    []int64
	}{{a, []int64{-450, -300, 1000}}, {sysMerchantPayable, []int64{450, 50}}} {
		_, lines, err := e.store.ListStatement(e.ctx, c.account, len(c.want))
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, l := range lines {
			got = append(got, l.Amount)
		}
		if !slices.Equal(got, c.want) {
			t.Fatalf("statement of %s: %v, want %v", c.account, got, c.want)
		}
	}
}

// VerifyLedger finds what the triggers would refuse, had it been written
// past them (here with the triggers disabled, as a restore or a hand edit
// could): an unbalanced transaction, postings of no transaction, a balance
// that is not its postings' sum, a negative balance, postings of no account.
func TestVerifyLedgerFindsEveryBreak(t *testing.T) {
	e := newEnv(t)
	account := newPayer(t, e, "15800003001", 100)
	e.verify(t)
	conn, err := e.store.pool.Acquire(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, q := range []string{
		`SET session_replication_role = replica`, // no triggers fire
		`ALTER TABLE accounts DROP CONSTRAINT balance_non_negative`,
		`INSERT INTO ledger_txns (kind, order_id) OVERRIDING SYSTEM VALUE VALUES ('pay', 'x') RETURNING txn_id`,
		`INSERT INTO postings (txn_id, account_id, amount) SELECT max(txn_id), 'SYS-TOPUP', 5 FROM ledger_txns`,
		`INSERT INTO postings (txn_id, account_id, amount) VALUES (987654321, 'SYS-TOPUP', 5), (987654321, 'SYS-DISCOUNT', -5)`,
		`INSERT INTO postings (txn_id, account_id, amount) SELECT max(txn_id), '9999000000000002', 5 FROM ledger_txns`,
		`UPDATE accounts SET balance = -1 WHERE account_id = '` + account + `'`,
	} {
		if _, err := conn.Exec(e.ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	r, err := e.store.VerifyLedger(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(append(append(r.Unbalanced, r.Mismatched...), r.Negative...), "\n")
	for _, want := range []string{"postings sum to 10", "txn 987654321: postings of no ledger transaction",
		account + ": balance -1, postings 100", "9999000000000002: no account, postings 5", account + ": balance -1"} {
		if !strings.Contains(all, want) {
			t.Errorf("report lacks %q:\n%s", want, all)
		}
	}
	if r.OK {
		t.Fatal("ledger proves")
	}
}

// Migration 0010 carries a database of 0001..0009 over: the rows written
// under the per-row triggers stay as they were, the ledger proves, and the
// next movements go through the new triggers.
func TestMigration0010CarriesTheLedgerOver(t *testing.T) {
	ctx := context.Background()
	url, conn, exec := migratedBefore(t, "0010")
	exec(`INSERT INTO customers (mobile, id_number) VALUES ('13700000001', '110105194912310038')`)
	exec(`INSERT INTO accounts (account_id, kind, customer_id, status, activated_at)
SELECT '9999000000000097', 'cash', customer_id, 'active', now() FROM customers`)
	// Under the old per-row triggers: a top-up of 1000, a pay of 300.
	for _, m := range []struct {
		kind   string
		amount int64
		other  string
	}{{"topup", 1000, "SYS-TOPUP"}, {"pay", -300, "SYS-MERCHANT-PAYABLE"}} {
		exec(`WITH t AS (INSERT INTO ledger_txns (kind, order_id) VALUES ($1, '') RETURNING txn_id)
INSERT INTO postings (txn_id, account_id, amount) SELECT txn_id, a, m FROM t,
    unnest(ARRAY['9999000000000097', $2], ARRAY[$3::bigint, -$3::bigint]) AS u(a, m)`, m.kind, m.other, m.amount)
	}
	dump := func() string {
		var s string
		if err := conn.QueryRow(ctx, `SELECT (SELECT string_agg(format('%s %s %s', txn_id, account_id, amount), ',' ORDER BY txn_id, account_id) FROM postings)
|| '|' || (SELECT string_agg(format('%s %s', account_id, balance), ',' ORDER BY account_id) FROM accounts)`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := dump()

	zone, _ := time.LoadLocation("Asia/Shanghai")
	e := keyedEnv(t, url, testKeys(t, keyA), &testClock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, zone)})
	if after := dump(); after != before {
		t.Fatalf("migration changed the ledger:\n%s\n%s", before, after)
	}
	if got := e.balance(t, "9999000000000097"); got != 700 {
		t.Fatalf("balance %d, want 700", got)
	}
	e.verify(t)
	var perRow int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgrelid = 'postings'::regclass
AND NOT tgisinternal AND tgtype & 1 = 1 AND tgtype & 4 = 4`).Scan(&perRow); err != nil {
		t.Fatal(err)
	}
	if perRow != 0 {
		t.Fatalf("%d per-row INSERT triggers left on postings", perRow)
	}
	err := pgx.BeginFunc(ctx, e.store.pool, func(tx pgx.Tx) error {
		_, err := post(ctx, tx, "pay", "after", posting{"9999000000000097", -701}, posting{sysMerchantPayable, 701})
		return err
	})
	wantRefused(t, "overdraft after the migration", err, "23514", "balance_non_negative")
	if err := pgx.BeginFunc(ctx, e.store.pool, func(tx pgx.Tx) error {
		_, err := post(ctx, tx, "pay", "after", posting{"9999000000000097", -700}, posting{sysMerchantPayable, 700})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := e.balance(t, "9999000000000097"); got != 0 {
		t.Fatalf("balance %d, want 0", got)
	}
	e.verify(t)
}

// Migration 0014: settlement writes an order active first and its credit
// after; the ledger trigger then makes the pending card account active, with
// the order's activation time, in the write that moves its balance (one write
// per account). Posted while the order is still pending (how card sales,
// offline and manual activation write), the credit leaves the status to the
// statement that follows it.
func TestLedgerActivatesTheCardOfAnActiveOrder(t *testing.T) {
	e := newEnv(t)
	a := stlOpen(t, e, "13800000091", stlID("11010519900101091"), "1012", "000091", 150000)
	var o cardOrder
	var err error
	if err := pgx.BeginFunc(e.ctx, e.store.pool, func(tx pgx.Tx) error {
		p, err := scanCardOrder(tx.QueryRow(e.ctx, `SELECT `+cardOrderColumns+` FROM card_orders WHERE order_id = $1`, a.OrderID))
		if p != nil {
			o = *p
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if o.status != "pending" || o.credited {
		t.Fatalf("order %+v, want pending", o)
	}
	account := func() (status string, at *time.Time, balance int64) {
		t.Helper()
		if err := e.store.pool.QueryRow(e.ctx, `SELECT status, activated_at, balance FROM accounts WHERE account_id = $1`,
			o.accountID).Scan(&status, &at, &balance); err != nil {
			t.Fatal(err)
		}
		return
	}
	face := o.faceValue

	// The credit first, the order still pending: the status stays (rolled
	// back afterwards, so that the card can be activated below).
	errRollback := errors.New("rollback")
	err = pgx.BeginFunc(e.ctx, e.store.pool, func(tx pgx.Tx) error {
		if _, err := post(e.ctx, tx, "activate", o.id, activationLegs(&o)...); err != nil {
			return err
		}
		var status string
		var balance int64
		if err := tx.QueryRow(e.ctx, `SELECT status, balance FROM accounts WHERE account_id = $1`, o.accountID).Scan(&status, &balance); err != nil {
			return err
		}
		if status != "pending" || balance != face {
			t.Errorf("credit before the order: account %s balance %d, want pending %d", status, balance, face)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}

	// The order first, then the credit: active, at the order's time, in one
	// account write.
	at := time.Date(2026, 11, 26, 23, 59, 0, 0, time.UTC)
	if err := pgx.BeginFunc(e.ctx, e.store.pool, func(tx pgx.Tx) error {
		// The backend's counts not yet reported (they are reported between
		// transactions, never within one): the difference is the credit's.
		const counts = `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'accounts'`
		var updates0, hot0, updates, hot int64
		if err := tx.QueryRow(e.ctx, counts).Scan(&updates0, &hot0); err != nil {
			return err
		}
		if _, err := tx.Exec(e.ctx, `UPDATE card_orders SET status = 'active', credited = true, released = 1, filling = false,
    activated_at = $2 WHERE order_id = $1`, o.id, at); err != nil {
			return err
		}
		if _, err := post(e.ctx, tx, "activate", o.id, activationLegs(&o)...); err != nil {
			return err
		}
		// One update of the account, HOT (no indexed column changed:
		// accounts_by_customer no longer holds activated_at).
		if err := tx.QueryRow(e.ctx, counts).Scan(&updates, &hot); err != nil {
			return err
		}
		if updates-updates0 != 1 || hot-hot0 != 1 {
			t.Errorf("accounts: %d updates, %d HOT in the activation, want 1 and 1", updates-updates0, hot-hot0)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	status, gotAt, balance := account()
	if status != "active" || gotAt == nil || !gotAt.Equal(at) || balance != face {
		t.Fatalf("account %s at %v balance %d, want active at %v, %d", status, gotAt, balance, at, face)
	}

	// A later credit (an active account) changes nothing but the balance.
	if err := pgx.BeginFunc(e.ctx, e.store.pool, func(tx pgx.Tx) error {
		_, err := post(e.ctx, tx, "release", o.id, posting{o.accountID, 5}, posting{sysInstallment, -5})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	status, gotAt, balance = account()
	if status != "active" || !gotAt.Equal(at) || balance != face+5 {
		t.Fatalf("after a release: account %s at %v balance %d", status, gotAt, balance)
	}
	e.verify(t)
}
