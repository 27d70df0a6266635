package postgres

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Review of 92ca639 (migration 0021, ledgerManyCTE): settlement's
// creditOrders writes a slice of settleSlice orders in one statement. Its
// postings' insert ends in ORDER BY 1, and the rows it sorts carry the whole
// array of the slice's transaction ids (i.ids, 8 bytes per order) because
// the projection above the sort still needs i.ids[l.k]: the sort holds
// orders x legs x 8 bytes, 5,000 x 15,000 x 8 = 600 MB, and spills it to
// disk (quadratic in the slice). Before the commit the same slice sorted a
// few MB. The test runs creditOrders itself on a slice of settleSlice
// pending cards, with temp files bounded at 32 MB (a linear write of the
// slice needs none at the default work_mem).
func TestReviewCreditOrdersSortIsNotQuadratic(t *testing.T) {
	e := newEnv(t)
	n := settleSlice
	if _, err := e.store.pool.Exec(e.ctx, `
INSERT INTO products (product_id, name, short_name, price, face_value, kind) VALUES ('4321', 'r', 'r', 1000, 1200, 'discount');
CREATE TEMP TABLE rv AS SELECT g, '1' || lpad((5000000000 + g)::text, 10, '0') AS mobile,
    '4321' || lpad(g::text, 12, '0') AS account, '9' || lpad(g::text, 19, '0') AS order_id FROM generate_series(1, `+fmt.Sprint(n)+`) g;
INSERT INTO customers (mobile, id_number) SELECT mobile, '11010119900101123X' FROM rv;
INSERT INTO accounts (account_id, kind, customer_id, product_id, status)
  SELECT rv.account, 'card', c.customer_id, '4321', 'pending' FROM rv JOIN customers c USING (mobile);
INSERT INTO card_orders (order_id, customer_id, product_id, account_id, price, face_value, paid, filling, status, credited,
    business_date, activated_at)
  SELECT rv.order_id, c.customer_id, '4321', rv.account, 1000, 1200, 1000, false, 'active', true, current_date, now()
  FROM rv JOIN customers c USING (mobile);
ANALYZE;`); err != nil {
		t.Fatal(err)
	}
	orders := make([]*settledOrder, n)
	for i := range orders {
		orders[i] = &settledOrder{cardOrder: cardOrder{id: fmt.Sprintf("9%019d", i+1), productID: "4321",
			accountID: fmt.Sprintf("4321%012d", i+1), price: 1000, faceValue: 1200, installments: 1}}
	}
	now := e.clock.now

	start := time.Now()
	err := pgx.BeginFunc(e.ctx, e.store.pool, func(tx pgx.Tx) error {
		if err := keyedPlans(e.ctx, tx, true); err != nil { // as settleOrders runs creditOrders
			return err
		}
		if _, err := tx.Exec(e.ctx, `SET LOCAL temp_file_limit = '32MB'`); err != nil {
			return err
		}
		if err := creditOrders(e.ctx, tx, orders, now); err != nil {
			return err
		}
		return checkActivated(e.ctx, tx, orders)
	})
	t.Logf("creditOrders of %d orders: %v", n, time.Since(start))
	if err != nil {
		t.Fatalf("creditOrders of one settlement slice (%d orders) needs more than 32 MB of temporary files: %v", n, err)
	}
	e.verify(t)
}

// The plan of the writer for one slice, as creditOrders runs it: the sort
// under the postings' insert spills hundreds of MB (its rows carry i.ids).
func TestReviewLedgerManySortSpill(t *testing.T) {
	e := newEnv(t)
	n := settleSlice
	a := newPayer(t, e, "15800009001", 0)
	ids := make([]string, n)
	legOrders, accounts, amounts := make([]int32, 0, 3*n), make([]string, 0, 3*n), make([]int64, 0, 3*n)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%d", i)
		// Each order credits the cash account 1 fen against two system accounts.
		legOrders = append(legOrders, int32(i+1), int32(i+1), int32(i+1))
		accounts = append(accounts, a, sysCardSales, sysDiscount)
		amounts = append(amounts, 2, -1, -1)
	}
	var plan []byte
	err := pgx.BeginFunc(e.ctx, e.store.pool, func(tx pgx.Tx) error {
		if err := keyedPlans(e.ctx, tx, true); err != nil {
			return err
		}
		return tx.QueryRow(e.ctx, `EXPLAIN (ANALYZE, TIMING off, FORMAT JSON) `+ledgerManyCTE+`SELECT count(*) FROM t`,
			"activate", ids, legOrders, accounts, amounts).Scan(&plan)
	})
	if err != nil {
		t.Fatal(err)
	}
	var doc []struct {
		Plan          map[string]any `json:"Plan"`
		ExecutionTime float64        `json:"Execution Time"`
	}
	if err := json.Unmarshal(plan, &doc); err != nil {
		t.Fatal(err)
	}
	var worst float64
	var walk func(m map[string]any)
	walk = func(m map[string]any) {
		if m["Node Type"] == "Sort" {
			if kb, ok := m["Sort Space Used"].(float64); ok && kb > worst {
				worst = kb
			}
		}
		if ps, ok := m["Plans"].([]any); ok {
			for _, p := range ps {
				walk(p.(map[string]any))
			}
		}
	}
	walk(doc[0].Plan)
	t.Logf("%d orders, %d legs: largest sort %.0f kB, execution %.0f ms", n, len(amounts), worst, doc[0].ExecutionTime)
	// 15,000 legs of a few dozen bytes each: a few MB at most when linear.
	if worst > 32*1024 {
		t.Fatalf("the writer's largest sort holds %.0f kB for %d orders and %d legs: quadratic (each sorted row carries the slice's array of transaction ids)",
			worst, n, len(amounts))
	}
}

// Review of 92ca639 (migration 0021): the trigger is skipped for every
// statement of a transaction in which the writer ran, and for any session
// that sets mapfront.ledger_writer itself (a user setting: SET LOCAL, SET,
// PGOPTIONS, ALTER ROLE/DATABASE ... SET). The migration says any other
// statement that inserts postings "is checked by the trigger exactly as
// before" and "What the database refuses is unchanged"; SPEC section 4: the
// database enforces the invariants. Here a statement that is not the writer
// inserts an unbalanced transaction and a customer leg that moves no
// balance, and the database accepts both (before 0021: 23000).
func TestReviewLedgerMarkOutlivesTheWriterStatement(t *testing.T) {
	e := newEnv(t)
	a := newPayer(t, e, "15800009101", 1000)
	handWritten := func(tx pgx.Tx, order string, credit, debit int64) error {
		var txn int64
		if err := tx.QueryRow(e.ctx, `INSERT INTO ledger_txns (kind, order_id) VALUES ('topup', $1) RETURNING txn_id`, order).Scan(&txn); err != nil {
			return err
		}
		_, err := tx.Exec(e.ctx, `INSERT INTO postings (txn_id, account_id, amount) VALUES ($1, $2, $3), ($1, 'SYS-TOPUP', $4)`,
			txn, a, credit, debit)
		return err
	}
	// 1. After the writer, in the same transaction.
	err := pgx.BeginFunc(e.ctx, e.store.pool, func(tx pgx.Tx) error {
		if _, err := post(e.ctx, tx, "topup", "rv1", posting{a, 5}, posting{sysTopUp, -5}); err != nil {
			return err
		}
		return handWritten(tx, "rv2", 10, -9) // does not balance
	})
	var refusedAfterWriter bool
	if err != nil {
		wantRefused(t, "unbalanced insert after the writer", err, "23000", "")
		refusedAfterWriter = true
	}
	// 2. A session that marks itself.
	err = pgx.BeginFunc(e.ctx, e.store.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(e.ctx, `SET LOCAL mapfront.ledger_writer = 'on'`); err != nil {
			return err
		}
		return handWritten(tx, "rv3", 10, -9)
	})
	var refusedMarked bool
	if err != nil {
		wantRefused(t, "unbalanced insert in a self-marked transaction", err, "23000", "")
		refusedMarked = true
	}
	r, verr := e.store.VerifyLedger(e.ctx)
	if verr != nil {
		t.Fatal(verr)
	}
	if !refusedAfterWriter || !refusedMarked || !r.OK {
		t.Fatalf("the database accepted unbalanced postings not written by the writer: after the writer in the same transaction %v, in a transaction that set mapfront.ledger_writer %v; ledger proves: %+v (balance %d)",
			!refusedAfterWriter, !refusedMarked, r, e.balance(t, a))
	}
}
