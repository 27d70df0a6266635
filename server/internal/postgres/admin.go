package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
)

// VerifyLedger proves the ledger invariants of SPEC section 4 on one
// consistent snapshot: every transaction's postings sum to zero (and every
// posting belongs to a transaction), every customer account's balance equals
// the sum of its postings (and every posting names an account), and no
// customer balance is negative. It lists the first offending rows when not.
func (s *Store) VerifyLedger(ctx context.Context) (*mapfront.LedgerReport, error) {
	r := &mapfront.LedgerReport{}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM ledger_txns), (SELECT count(*) FROM postings),
(SELECT count(*) FROM accounts WHERE kind <> 'system')`).Scan(&r.Transactions, &r.Postings, &r.Accounts); err != nil {
			return err
		}
		checks := []struct {
			q   string
			out *[]string
		}{
			{`SELECT CASE WHEN t.txn_id IS NULL THEN format('txn %s: postings of no ledger transaction', txn_id)
    ELSE format('txn %s: postings sum to %s', txn_id, coalesce(p.total, 0)) END
FROM ledger_txns t FULL JOIN (SELECT txn_id, sum(amount) AS total, count(*) AS n FROM postings GROUP BY txn_id) p USING (txn_id)
WHERE t.txn_id IS NULL OR coalesce(p.total, 0) <> 0 OR coalesce(p.n, 0) < 2 ORDER BY txn_id LIMIT 20`, &r.Unbalanced},
			{`SELECT CASE WHEN a.account_id IS NULL THEN format('%s: no account, postings %s', account_id, s.total)
    ELSE format('%s: balance %s, postings %s', account_id, a.balance, coalesce(s.total, 0)) END
FROM accounts a FULL JOIN (SELECT account_id, sum(amount) AS total FROM postings GROUP BY account_id) s USING (account_id)
WHERE a.account_id IS NULL OR (a.kind <> 'system' AND a.balance <> coalesce(s.total, 0)) ORDER BY account_id LIMIT 20`, &r.Mismatched},
			{`SELECT format('%s: balance %s', account_id, balance) FROM accounts
WHERE kind <> 'system' AND balance < 0 ORDER BY account_id LIMIT 20`, &r.Negative},
		}
		for _, c := range checks {
			rows, err := tx.Query(ctx, c.q)
			if err != nil {
				return err
			}
			if *c.out, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	r.OK = len(r.Unbalanced) == 0 && len(r.Mismatched) == 0 && len(r.Negative) == 0
	return r, nil
}

// ListStatement returns an account's balance and its newest postings. A
// system account's balance is not kept (every pay would write that one row):
// it reads 0, and its lines are its movements. Errors: 10005.
func (s *Store) ListStatement(ctx context.Context, accountID string, limit int) (int64, []mapfront.StatementLine, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	// The balance and the lines from one snapshot, so that a pay committing
	// between the two reads cannot make the statement disagree with its
	// balance.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, nil, s.wrap(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var balance int64
	err = tx.QueryRow(ctx, `SELECT balance FROM accounts WHERE account_id = $1`, accountID).Scan(&balance)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, mapfront.Errorf(mapfront.CodeNotFound, "账户%s不存在", accountID)
	}
	if err != nil {
		return 0, nil, s.wrap(err)
	}
	// A customer account's legs are read newest first from
	// postings_by_account; the query repeats the index's predicate, or the
	// planner cannot use a partial index for a parameter (and scans every
	// posting). System accounts' legs are not in that index.
	q := `SELECT t.txn_id, t.kind, t.order_id, p.amount, t.created_at
FROM postings p JOIN ledger_txns t USING (txn_id) WHERE p.account_id = $1`
	if !strings.HasPrefix(accountID, "SYS-") {
		q += ` AND p.account_id NOT LIKE 'SYS-%'`
	}
	rows, err := tx.Query(ctx, q+` ORDER BY p.txn_id DESC LIMIT $2`, accountID, limit)
	if err != nil {
		return 0, nil, s.wrap(err)
	}
	lines, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapfront.StatementLine, error) {
		var l mapfront.StatementLine
		err := row.Scan(&l.TxnID, &l.Kind, &l.OrderID, &l.Amount, &l.CreatedAt)
		return l, err
	})
	return balance, lines, s.wrap(err)
}

// GetOrder looks up a card order or a payment order. Errors: 10010.
func (s *Store) GetOrder(ctx context.Context, orderID string) (*mapfront.OrderView, error) {
	var v mapfront.OrderView
	err := s.pool.QueryRow(ctx, `SELECT o.order_id, 'card', o.status, o.account_id, c.mobile, o.product_id, o.price, o.paid,
    o.business_date, o.created_at
FROM card_orders o JOIN customers c USING (customer_id) WHERE o.order_id = $1`, orderID).Scan(
		&v.OrderID, &v.Kind, &v.Status, &v.AccountID, &v.Mobile, &v.ProductID, &v.Amount, &v.Paid, &v.BusinessDate, &v.CreatedAt)
	if err == nil {
		rows, err := s.pool.Query(ctx, `SELECT terminal_id, batch_no, terminal_order_id, status, pay_sum, business_date, settled
FROM card_payments WHERE order_id = $1 ORDER BY payment_id`, orderID)
		if err != nil {
			return nil, s.wrap(err)
		}
		v.Payments, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapfront.PaymentView, error) {
			var p mapfront.PaymentView
			err := row.Scan(&p.TerminalID, &p.BatchNo, &p.TerminalOrderID, &p.Status, &p.PaySum, &p.BusinessDate, &p.Settled)
			return p, err
		})
		return &v, s.wrap(err)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, s.wrap(err)
	}
	err = s.pool.QueryRow(ctx, `SELECT order_id, kind, status, account_id, consumer_id, amount, seller_id, store_id,
    terminal_id, batch_no, terminal_order_id, business_date, pay_time, coalesce(original_order_id, '')
FROM pay_orders WHERE order_id = $1`, orderID).Scan(&v.OrderID, &v.Kind, &v.Status, &v.AccountID, &v.Mobile, &v.Amount,
		&v.SellerID, &v.StoreID, &v.TerminalID, &v.BatchNo, &v.TermOrderID, &v.BusinessDate, &v.CreatedAt, &v.OriginalOrderID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mapfront.Errorf(mapfront.CodeNoOriginal, "订单%s不存在", orderID)
	}
	return &v, s.wrap(err)
}

// LoadDemoCard adds the demo card of SPEC section 8 to the customer of
// mobile, once: a fixed id and 300000 fen through an activation posting, like
// any card.
func (s *Store) LoadDemoCard(ctx context.Context, mobile, card string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE account_id = $1)`, card).Scan(&exists); err != nil || exists {
			return err
		}
		var customerID int64
		if err := tx.QueryRow(ctx, `SELECT customer_id FROM customers WHERE mobile = $1`, mobile).Scan(&customerID); err != nil {
			return err
		}
		now := s.clock.Now()
		if _, err := tx.Exec(ctx, `INSERT INTO accounts (account_id, kind, customer_id, product_id, status, activated_at)
VALUES ($1, 'card', $2, '1010', 'active', $3)`, card, customerID, now); err != nil {
			return err
		}
		id, err := s.newOrderID(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO card_orders (order_id, customer_id, product_id, account_id, price, face_value,
    paid, filling, status, credited, released, business_date, activated_at)
VALUES ($1, $2, '1010', $3, 450000, 500000, 450000, false, 'active', true, 1, $4, $5)`, id, customerID, card, s.clock.Today(), now); err != nil {
			return err
		}
		// The demo card has spent 200000 of its 500000 before the demo starts.
		_, err = post(ctx, tx, "demo", id, posting{card, 300_000}, posting{sysCardSales, -450_000}, posting{sysDiscount, -50_000},
			posting{sysMerchantPayable, 200_000})
		if err != nil {
			return fmt.Errorf("demo card: %w", err)
		}
		return nil
	})
}
