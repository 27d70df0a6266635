package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
)

// LedgerReport is the outcome of VerifyLedger.
type LedgerReport struct {
	OK           bool
	Transactions int64
	Postings     int64
	Accounts     int64
	Unbalanced   []string // "txn 12: sum 5"
	Mismatched   []string // "1010…: balance 10, postings 5"
	Negative     []string // "1010…: balance -5"
}

// VerifyLedger proves the ledger invariants of SPEC section 4 on one
// consistent snapshot: every transaction's postings sum to zero, every
// customer account's balance equals the sum of its postings, and no customer
// balance is negative. It lists the first offending rows when not.
func (s *Store) VerifyLedger(ctx context.Context) (*LedgerReport, error) {
	r := &LedgerReport{}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM ledger_txns), (SELECT count(*) FROM postings),
(SELECT count(*) FROM accounts WHERE kind <> 'system')`).Scan(&r.Transactions, &r.Postings, &r.Accounts); err != nil {
			return err
		}
		checks := []struct {
			q   string
			out *[]string
		}{
			{`SELECT format('txn %s: postings sum to %s', t.txn_id, coalesce(sum(p.amount), 0))
FROM ledger_txns t LEFT JOIN postings p USING (txn_id) GROUP BY t.txn_id
HAVING coalesce(sum(p.amount), 0) <> 0 OR count(p.*) < 2 ORDER BY t.txn_id LIMIT 20`, &r.Unbalanced},
			{`SELECT format('%s: balance %s, postings %s', a.account_id, a.balance, coalesce(s.total, 0))
FROM accounts a LEFT JOIN (SELECT account_id, sum(amount) AS total FROM postings GROUP BY account_id) s USING (account_id)
WHERE a.kind <> 'system' AND a.balance <> coalesce(s.total, 0) ORDER BY a.account_id LIMIT 20`, &r.Mismatched},
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

// StatementLine is one posting on an account.
type StatementLine struct {
	TxnID     int64
	Kind      string
	OrderID   string
	Amount    int64
	CreatedAt time.Time
}

// ListStatement returns an account's balance and its newest postings.
// Errors: 10005.
func (s *Store) ListStatement(ctx context.Context, accountID string, limit int) (int64, []StatementLine, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	var balance int64
	err := s.pool.QueryRow(ctx, `SELECT balance FROM accounts WHERE account_id = $1`, accountID).Scan(&balance)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, mapfront.Errorf(mapfront.CodeNotFound, "账户%s不存在", accountID)
	}
	if err != nil {
		return 0, nil, s.wrap(err)
	}
	rows, err := s.pool.Query(ctx, `SELECT t.txn_id, t.kind, t.order_id, p.amount, t.created_at
FROM postings p JOIN ledger_txns t USING (txn_id) WHERE p.account_id = $1 ORDER BY t.txn_id DESC LIMIT $2`, accountID, limit)
	if err != nil {
		return 0, nil, s.wrap(err)
	}
	lines, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StatementLine, error) {
		var l StatementLine
		err := row.Scan(&l.TxnID, &l.Kind, &l.OrderID, &l.Amount, &l.CreatedAt)
		return l, err
	})
	return balance, lines, s.wrap(err)
}

// OrderView is a card or payment order as the back office sees it.
type OrderView struct {
	OrderID, Kind, Status, AccountID, Mobile, ProductID string
	Amount, Paid                                        int64
	SellerID, StoreID, TerminalID, BatchNo, TermOrderID string
	BusinessDate                                        time.Time
	CreatedAt                                           time.Time
	OriginalOrderID                                     string
	Payments                                            []PaymentView
}

// PaymentView is one open_card payment of a card order.
type PaymentView struct {
	TerminalID, BatchNo, TerminalOrderID, Status string
	PaySum                                       int64
	BusinessDate                                 time.Time
	Settled                                      bool
}

// GetOrder looks up a card order or a payment order. Errors: 10010.
func (s *Store) GetOrder(ctx context.Context, orderID string) (*OrderView, error) {
	var v OrderView
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
		v.Payments, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (PaymentView, error) {
			var p PaymentView
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

// Demo is the demo data of SPEC section 8.
type Demo struct {
	TPKHex string
	KCV    func([]byte) string
}

// LoadDemo loads the demo data of SPEC section 8; loading it again changes
// nothing. The demo card 1010123412341234 gets its fixed id and 300000 fen
// through an activation posting, like any card.
func (s *Store) LoadDemo(ctx context.Context, d Demo) error {
	for _, t := range [][3]string{{"SH01", "ST01", "POS01"}, {"SH12345", "ST12345", "ZJ000001"}, {"GM01", "ST01", "POS12345"}} {
		if err := s.UpsertSeller(ctx, t[0], "演示商户"+t[0], true); err != nil {
			return err
		}
		if err := s.UpsertStore(ctx, t[0], t[1], "演示门店"+t[1], true); err != nil {
			return err
		}
		if _, err := s.UpsertTerminal(ctx, TerminalSpec{TerminalID: t[2], SellerID: t[0], StoreID: t[1], Enabled: true, TPKHex: d.TPKHex}, d.KCV); err != nil {
			return err
		}
	}
	for _, p := range []mapfront.Product{
		{ID: "1010", Name: "乐驾包5000", ShortName: "乐驾包5000", Price: 450000, FaceValue: 500000, OnSale: true},
		{ID: "1011", Name: "乐驾包4000", ShortName: "乐驾包4000", Price: 350000, FaceValue: 400000, OnSale: true},
		{ID: "1012", Name: "乐驾包2000", ShortName: "乐驾包2000", Price: 150000, FaceValue: 200000, OnSale: true},
	} {
		if _, err := s.UpsertProduct(ctx, p); err != nil {
			return err
		}
	}
	const mobile, idNumber, card = "13912345678", "11010519491231002X", "1010123412341234"
	if _, err := s.CreateCustomer(ctx, mobile, idNumber); err != nil {
		return err
	}
	if err := s.SetPaymentPassword(ctx, mobile, "123456"); err != nil {
		return err
	}
	if _, _, err := s.TopUpCash(ctx, mobile, 1_000_000, "demo-cash-13912345678"); err != nil {
		return err
	}
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
