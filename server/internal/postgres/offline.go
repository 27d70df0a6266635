package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"mapfront/server/internal/mapfront"
)

// The Offline store (mapfront.OfflineStore): each Load sends one pipelined
// batch (BEGIN, the key lock, the locked reads) and returns the state with a
// unit; the unit's Persist sends one pipelined batch (the writes and COMMIT).
// A request is one transaction in two round trips; the decisions between
// them are the service's.

var _ mapfront.OfflineStore = (*Store)(nil)

// unit is a transaction begun by a Load, held on its pooled connection until
// Persist commits or Rollback ends it.
type unit[O any] struct {
	conn  *pgxpool.Conn
	what  string
	write func(b *pgx.Batch, o O) error
}

// begin acquires a connection and sends BEGIN with the reads queued in b
// (whose callbacks fill the state). Errors are classified (classify).
func begin[O any](ctx context.Context, s *Store, what string, b *pgx.Batch, write func(*pgx.Batch, O) error) (*unit[O], error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, classify(what+" load", err, false)
	}
	u := &unit[O]{conn: conn, what: what, write: write}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		u.Rollback()
		return nil, classify(what+" load", err, false)
	}
	return u, nil
}

// beginBatch starts a load batch with BEGIN and keyed plans for the whole
// transaction (its write and the ledger trigger too): every statement of a
// terminal transaction names its rows by key, and a statement prepared on a
// connection keeps its generic plan, which a table that was small when it
// was made (a new deployment's first minute, before autovacuum's first
// ANALYZE) would otherwise leave as a scan of the whole table. Measured at
// 1 client: the pay_orders lookup of a pay by its terminal key took 0.44 ms
// instead of 0.02 ms, and PostgreSQL's CPU per pay swung from 520 to
// 1,750 µs between runs of the same code.
func beginBatch() *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(keyedPlansSQL, "off")
	return b
}

// Persist writes o and commits, in one round trip.
func (u *unit[O]) Persist(ctx context.Context, o O) error {
	if u.conn == nil {
		return errors.New("store: " + u.what + ": persist after the unit ended")
	}
	b := &pgx.Batch{}
	if err := u.write(b, o); err != nil {
		return err
	}
	b.Queue("COMMIT")
	err := u.conn.SendBatch(ctx, b).Close()
	if err != nil {
		// The transaction may be open and aborted (a statement failed, so
		// COMMIT never ran): Rollback ends it before the connection goes
		// back to the pool.
		u.Rollback()
		// pgx says when nothing of the batch was sent (a context that had
		// already ended, a connection that failed before the write): then
		// COMMIT was not sent either.
		return classify(u.what+" persist", err, !pgconn.SafeToRetry(err))
	}
	u.conn.Release()
	u.conn = nil
	return nil
}

// Rollback ends the transaction if it is still open. A transaction left
// open on a pooled connection would be reused by the next request.
func (u *unit[O]) Rollback() {
	if u.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := u.conn.Exec(ctx, "ROLLBACK"); err != nil {
		// A connection that cannot roll back must not be reused.
		_ = u.conn.Conn().Close(ctx)
	}
	u.conn.Release()
	u.conn = nil
}

// Reads shared by the loads.
const (
	customerByMobileSQL  = `SELECT ` + customerColumns + ` FROM customers WHERE mobile = $1 FOR NO KEY UPDATE`
	customerByAccountSQL = `SELECT ` + customerColumns + ` FROM customers
WHERE customer_id = (SELECT customer_id FROM accounts WHERE account_id = $1 AND kind <> 'system') FOR NO KEY UPDATE`
	payAccountsByMobileSQL = `SELECT a.account_id, a.kind, a.status, a.balance FROM accounts a
JOIN customers c USING (customer_id) WHERE c.mobile = $1 AND a.status = 'active'
ORDER BY a.activated_at, a.account_id FOR NO KEY UPDATE OF a`
	payAccountByIDSQL = `SELECT account_id, kind, status, balance FROM accounts
WHERE account_id = $1 AND kind <> 'system' FOR NO KEY UPDATE`
	payOrderByKeySQL = `SELECT ` + payOrderColumns + ` FROM pay_orders
WHERE kind = 'pay' AND terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3`
	accountBalanceSQL   = `SELECT balance FROM accounts WHERE account_id = $1 FOR NO KEY UPDATE`
	orderSeqSQL         = `SELECT nextval('order_seq')`
	customerPasswordSQL = `UPDATE customers SET pw_failures = $2, pw_locked = $3, pw_hash = coalesce($4, pw_hash) WHERE customer_id = $1`
)

// queueTerminal queues the read of the request's terminal into *t.
func queueTerminal(b *pgx.Batch, o mapfront.Origin, t *mapfront.TerminalState) {
	queueTerminalSQL(b, terminalSQL, o, t)
}

// queueTerminalLocked reads the terminal as queueTerminal does and locks its
// row until the transaction ends: the password-bearing requests (pay,
// get_account_info) take it so that concurrent wrong PINs from one terminal
// see each other's count and a suspension the previous one committed (SPEC
// section 7), rather than all passing the check on the same old row. The
// lock comes after the key's and before the customer's and accounts', the
// order every such request takes them in.
func queueTerminalLocked(b *pgx.Batch, o mapfront.Origin, t *mapfront.TerminalState) {
	queueTerminalSQL(b, terminalSQL+` FOR NO KEY UPDATE OF t`, o, t)
}

func queueTerminalSQL(b *pgx.Batch, q string, o mapfront.Origin, t *mapfront.TerminalState) {
	b.Queue(q, o.TerminalID, o.SellerID, o.StoreID).QueryRow(func(row pgx.Row) error {
		err := scanTerminal(row, t)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
}

// scanTerminal scans terminalSQL's columns into *t (with any columns
// before them into before), marking it found.
func scanTerminal(row pgx.Row, t *mapfront.TerminalState, before ...any) error {
	var windowStart, suspendedUntil *time.Time
	err := row.Scan(append(before, &t.SealedTPK, &t.LegacyDES, &t.Enabled, &t.PINGuard.Failures, &windowStart, &suspendedUntil)...)
	if err != nil {
		return err
	}
	if windowStart != nil {
		t.PINGuard.WindowStart = *windowStart
	}
	if suspendedUntil != nil {
		t.PINGuard.SuspendedUntil = *suspendedUntil
	}
	t.Found = true
	return nil
}

// queueCustomer queues the locked read of the customer a consumerId names.
func queueCustomer(b *pgx.Batch, consumerID string, into **mapfront.Customer) {
	q := customerByAccountSQL
	if mapfront.ValidMobile(consumerID) {
		q = customerByMobileSQL
	}
	b.Queue(q, consumerID).QueryRow(func(row pgx.Row) error { return optional(scanCustomer(row))(into) })
}

// optional turns a scan of at most one row into a setter: no row leaves
// *into nil.
func optional[T any](v *T, err error) func(into **T) error {
	return func(into **T) error {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		*into = v
		return err
	}
}

// terminalPINFailureSQL counts one wrong PIN against a terminal
// (mapfront.PINFailure, whose PINGuard.Next is the same rule) in one
// statement whose expressions read only the row it updates (the loads lock
// the row; the statement would lose no count without it either). $2 the
// start of the current window, $3 now, $4 the limit, $5 the end of a
// suspension the count reaches.
const terminalPINFailureSQL = `UPDATE terminals SET
    pin_failures = CASE WHEN pin_window_start > $2 THEN pin_failures + 1 ELSE 1 END,
    pin_window_start = CASE WHEN pin_window_start > $2 THEN pin_window_start ELSE $3 END,
    pin_suspended_until = CASE WHEN (CASE WHEN pin_window_start > $2 THEN pin_failures + 1 ELSE 1 END) >= $4
        THEN $5 ELSE pin_suspended_until END
WHERE terminal_id = $1`

func queuePasswordChange(b *pgx.Batch, c *mapfront.PasswordChange) {
	if c == nil {
		return
	}
	b.Queue(customerPasswordSQL, c.CustomerID, c.Failures, c.Locked, c.Rehash)
	if f := c.Terminal; f != nil {
		b.Queue(terminalPINFailureSQL, f.TerminalID, f.WindowFrom, f.Now, f.Limit, f.SuspendUntil)
	}
}

// LoadPay implements mapfront.OfflineStore.
func (s *Store) LoadPay(ctx context.Context, r *mapfront.PayRequest) (*mapfront.PayState, mapfront.Unit[*mapfront.PayOutcome], error) {
	st := &mapfront.PayState{}
	k := r.Key()
	b := beginBatch()
	queueKeyLoad(b, mapfront.KindPay, k, &st.Key)
	b.Queue(payOrderByKeySQL, k.TerminalID, k.BatchNo, k.TerminalOrderID).QueryRow(func(row pgx.Row) error {
		return optional(scanPayOrder(row))(&st.Paid)
	})
	queueTerminalLocked(b, r.Origin, &st.Terminal)
	queueCustomer(b, r.ConsumerID, &st.Customer)
	q := payAccountByIDSQL
	if r.ByMobile() {
		q = payAccountsByMobileSQL
	}
	b.Queue(q, r.ConsumerID).Query(func(rows pgx.Rows) error {
		var err error
		st.Accounts, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapfront.AccountChoice, error) {
			var a mapfront.AccountChoice
			err := row.Scan(&a.ID, &a.Kind, &a.Status, &a.Balance)
			return a, err
		})
		return err
	})
	b.Queue(orderSeqSQL).QueryRow(func(row pgx.Row) error { return row.Scan(&st.OrderSeq) })
	u, err := begin(ctx, s, "pay", b, writePay)
	if err != nil {
		return nil, nil, err
	}
	return st, u, nil
}

func writePay(b *pgx.Batch, o *mapfront.PayOutcome) error {
	queuePasswordChange(b, o.Password)
	if o.Declined != nil {
		queueKeyRecord(b, mapfront.KindPay, o.Key, o.Declined)
	}
	if p := o.Approved; p != nil {
		return queuePayOrder(b, "pay", p, mapfront.PayLegs(p))
	}
	return nil
}

// insertPayOrderTail inserts a pay or cancel order after ledgerCTE.
const insertPayOrderTail = `INSERT INTO pay_orders (order_id, kind, seller_id, store_id, terminal_id, batch_no,
    terminal_order_id, operator_id, consumer_id, account_id, amount, balance_after, status, original_order_id,
    product_name, product_price, product_quantity, remark, business_date, pay_time, fingerprint)
VALUES ($5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)`

// queuePayOrder queues a pay or cancel order with its ledger transaction,
// in one statement.
func queuePayOrder(b *pgx.Batch, kind string, o *mapfront.PayOrder, legs []mapfront.Leg) error {
	var original any
	if o.OriginalOrderID != "" {
		original = o.OriginalOrderID
	}
	return queuePostWith(b, kind, o.ID, legs, insertPayOrderTail, o.ID, kind, o.SellerID, o.StoreID, o.TerminalID,
		o.BatchNo, o.TerminalOrderID, o.OperatorID, o.ConsumerID, o.AccountID, o.Amount, o.BalanceAfter,
		string(o.Status), original, o.ProductName, o.ProductPrice, o.ProductQuantity, o.Remark, o.BusinessDate,
		o.PayTime, o.Fingerprint)
}

// LoadCancel implements mapfront.OfflineStore.
func (s *Store) LoadCancel(ctx context.Context, r *mapfront.CancelPayRequest) (*mapfront.CancelState, mapfront.Unit[*mapfront.CancelOutcome], error) {
	st := &mapfront.CancelState{}
	b := beginBatch()
	queueKeyLoad(b, mapfront.KindPayCancel, r.Key(), &st.Key)
	queueTerminal(b, r.Origin, &st.Terminal)
	b.Queue(`SELECT `+payOrderColumns+` FROM pay_orders WHERE order_id = $1 AND kind = 'pay' FOR UPDATE`, r.OrderID).
		QueryRow(func(row pgx.Row) error { return optional(scanPayOrder(row))(&st.Original) })
	b.Queue(`SELECT balance FROM accounts WHERE account_id = (SELECT account_id FROM pay_orders
WHERE order_id = $1 AND kind = 'pay') FOR NO KEY UPDATE`, r.OrderID).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&st.OriginalBalance)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	b.Queue(orderSeqSQL).QueryRow(func(row pgx.Row) error { return row.Scan(&st.OrderSeq) })
	u, err := begin(ctx, s, "pay_cancel", b, writeCancel)
	if err != nil {
		return nil, nil, err
	}
	return st, u, nil
}

func writeCancel(b *pgx.Batch, o *mapfront.CancelOutcome) error {
	if c := o.Cancel; c != nil {
		if err := queuePayOrder(b, "cancel", c, mapfront.RefundLegs(c)); err != nil {
			return err
		}
		b.Queue(`UPDATE pay_orders SET status = 'cancelled' WHERE order_id = $1`, c.OriginalOrderID)
	}
	queueKeyRecord(b, mapfront.KindPayCancel, o.Key, o.Record)
	return nil
}

// LoadUndo implements mapfront.OfflineStore.
func (s *Store) LoadUndo(ctx context.Context, r *mapfront.UndoPayRequest) (*mapfront.UndoState, mapfront.Unit[*mapfront.UndoOutcome], error) {
	st := &mapfront.UndoState{}
	k := r.Key()
	b := beginBatch()
	queueTerminal(b, r.Origin, &st.Terminal)
	queueKeyLoad(b, mapfront.KindPay, k, &st.Key)
	b.Queue(payOrderByKeySQL+` FOR UPDATE`, k.TerminalID, k.BatchNo, k.TerminalOrderID).QueryRow(func(row pgx.Row) error {
		return optional(scanPayOrder(row))(&st.Paid)
	})
	b.Queue(`SELECT balance FROM accounts WHERE account_id = (SELECT account_id FROM pay_orders
WHERE kind = 'pay' AND terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3) FOR NO KEY UPDATE`,
		k.TerminalID, k.BatchNo, k.TerminalOrderID).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&st.PaidBalance)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	b.Queue(orderSeqSQL).QueryRow(func(row pgx.Row) error { return row.Scan(&st.OrderSeq) })
	u, err := begin(ctx, s, "pay_undo", b, writeUndo)
	if err != nil {
		return nil, nil, err
	}
	return st, u, nil
}

func writeUndo(b *pgx.Batch, o *mapfront.UndoOutcome) error {
	if p := o.Refund; p != nil {
		if err := queuePost(b, "undo", p.ID, mapfront.RefundLegs(p)...); err != nil {
			return err
		}
		b.Queue(`UPDATE pay_orders SET status = 'reversed' WHERE order_id = $1`, p.ID)
	}
	queueKeyRecord(b, mapfront.KindPay, o.Key, o.Record)
	return nil
}

// LoadOpenCard implements mapfront.OfflineStore. The numbers a payment may
// need are reserved in the load only when it will need them (a new key, a
// product on sale, no customer yet, no filling order yet), so that repeats
// and existing orders leave the sequences as they were.
func (s *Store) LoadOpenCard(ctx context.Context, r *mapfront.OpenCardRequest) (*mapfront.OpenCardState, mapfront.Unit[*mapfront.OpenCardOutcome], error) {
	st := &mapfront.OpenCardState{}
	k := r.Key()
	b := beginBatch()
	queueKeyLoad(b, mapfront.KindOpenCard, k, &st.Key)
	queueTerminal(b, r.Origin, &st.Terminal)
	b.Queue(`SELECT `+productColumns+` FROM products WHERE product_id = $1`, r.ProductID).QueryRow(func(row pgx.Row) error {
		return optional(scanProduct(row))(&st.Product)
	})
	b.Queue(`SELECT `+customerColumns+` FROM customers WHERE mobile = $1`, r.Mobile).QueryRow(func(row pgx.Row) error {
		return optional(scanCustomer(row))(&st.Customer)
	})
	b.Queue(`SELECT `+cardOrderColumns+` FROM card_orders WHERE customer_id = (SELECT customer_id FROM customers
WHERE mobile = $1) AND product_id = $2 AND filling FOR UPDATE`, r.Mobile, r.ProductID).QueryRow(func(row pgx.Row) error {
		o, err := scanCardOrder(row)
		if err == nil {
			st.Filling = o.domain()
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	const needed = `NOT EXISTS (SELECT 1 FROM terminal_requests WHERE kind = 'open_card' AND terminal_id = $1
    AND batch_no = $2 AND terminal_order_id = $3)
AND EXISTS (SELECT 1 FROM products WHERE product_id = $5 AND on_sale)`
	const noCustomer = `NOT EXISTS (SELECT 1 FROM customers WHERE mobile = $4)`
	const noFilling = `NOT EXISTS (SELECT 1 FROM card_orders o JOIN customers c USING (customer_id)
    WHERE c.mobile = $4 AND o.product_id = $5 AND o.filling)`
	args := []any{k.TerminalID, k.BatchNo, k.TerminalOrderID, r.Mobile, r.ProductID}
	// In this order, as a new customer's cash account, then their card,
	// then the order, took them before.
	for _, q := range []struct {
		seq, cond string
		into      *int64
	}{
		{"account_seq", noCustomer, &st.CashSeq},
		{"account_seq", noFilling, &st.CardSeq},
		{"order_seq", noFilling, &st.OrderSeq},
	} {
		b.Queue(`SELECT CASE WHEN `+needed+` AND `+q.cond+` THEN nextval('`+q.seq+`') ELSE 0 END`, args...).
			QueryRow(func(row pgx.Row) error { return row.Scan(q.into) })
	}
	u, err := begin(ctx, s, "open_card", b, writeOpenCard)
	if err != nil {
		return nil, nil, err
	}
	return st, u, nil
}

func writeOpenCard(b *pgx.Batch, o *mapfront.OpenCardOutcome) error {
	if o.Order != nil {
		mobile := o.Mobile
		if c := o.NewCustomer; c != nil {
			b.Queue(insertCustomerSQL, c.Mobile, c.ID.Sealed, c.ID.Index(), c.ID.Masked, c.PwHash)
			b.Queue(`INSERT INTO accounts (account_id, kind, customer_id, status, activated_at)
VALUES ($1, 'cash', (SELECT customer_id FROM customers WHERE mobile = $2), 'active', $3)`, c.CashAccountID, c.Mobile, o.Now)
		}
		if n := o.NewOrder; n != nil {
			b.Queue(`INSERT INTO accounts (account_id, kind, customer_id, product_id, status)
VALUES ($1, 'card', (SELECT customer_id FROM customers WHERE mobile = $2), $3, 'pending')`, n.AccountID, mobile, n.ProductID)
			b.Queue(`INSERT INTO card_orders (order_id, customer_id, product_id, account_id, price, face_value, installments,
    status, referrer, business_date)
VALUES ($1, (SELECT customer_id FROM customers WHERE mobile = $2), $3, $4, $5, $6, $7, 'pending', $8, $9)`,
				n.ID, mobile, n.ProductID, n.AccountID, n.Price, n.FaceValue, n.Installments, n.Referrer, o.Payment.BusinessDate)
		}
		p := o.Payment
		b.Queue(`INSERT INTO card_payments (order_id, seller_id, store_id, terminal_id, batch_no, terminal_order_id,
    operator_id, pay_sum, status, business_date)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'paid', $9)`, p.OrderID, p.Origin.SellerID, p.Origin.StoreID, p.Origin.TerminalID,
			p.BatchNo, p.TerminalOrderID, p.Origin.OperatorID, p.Sum, p.BusinessDate)
		b.Queue(`UPDATE card_orders SET paid = $2, filling = $3 WHERE order_id = $1`, o.Order.ID, o.Order.Paid, o.Order.Filling)
		if o.Activate {
			if err := queueActivation(b, o.Order, o.Now); err != nil {
				return err
			}
		}
	}
	queueKeyRecord(b, mapfront.KindOpenCard, o.Key, o.Record)
	return nil
}

// queueActivation queues the activation of a fully paid card (开卡生效): the
// postings of mapfront.ActivationLegs, the order and the card active.
func queueActivation(b *pgx.Batch, o *mapfront.CardOrder, now time.Time) error {
	if err := queuePost(b, "activate", o.ID, mapfront.ActivationLegs(o)...); err != nil {
		return err
	}
	b.Queue(`UPDATE card_orders SET status = 'active', credited = true, released = 1, filling = false, activated_at = $2
WHERE order_id = $1`, o.ID, now)
	b.Queue(`UPDATE accounts SET status = 'active', activated_at = $2 WHERE account_id = $1`, o.AccountID, now)
	return nil
}

// LoadRepeal implements mapfront.OfflineStore.
func (s *Store) LoadRepeal(ctx context.Context, r *mapfront.RepealCardRequest) (*mapfront.RepealState, mapfront.Unit[*mapfront.RepealOutcome], error) {
	st := &mapfront.RepealState{}
	k := r.Key()
	b := beginBatch()
	b.Queue(keyLockSQL, keyArgs(mapfront.KindOpenCard, k)...)
	queueTerminal(b, r.Origin, &st.Terminal)
	const payment = `(SELECT order_id FROM card_payments WHERE terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3)`
	args := []any{k.TerminalID, k.BatchNo, k.TerminalOrderID}
	b.Queue(`SELECT payment_id, order_id, status, seller_id, store_id, pay_sum, settled, business_date FROM card_payments
WHERE terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3 FOR UPDATE`, args...).QueryRow(func(row pgx.Row) error {
		var p mapfront.CardPaymentRow
		err := row.Scan(&p.ID, &p.OrderID, &p.Status, &p.Origin.SellerID, &p.Origin.StoreID, &p.Sum, &p.Settled, &p.BusinessDate)
		return optional(&p, err)(&st.Payment)
	})
	b.Queue(`SELECT `+cardOrderColumns+` FROM card_orders WHERE order_id = `+payment+` FOR UPDATE`, args...).
		QueryRow(func(row pgx.Row) error {
			o, err := scanCardOrder(row)
			if err == nil {
				st.Order = o.domain()
			}
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
	b.Queue(`SELECT c.mobile FROM customers c JOIN card_orders o USING (customer_id) WHERE o.order_id = `+payment, args...).
		QueryRow(func(row pgx.Row) error {
			if err := row.Scan(&st.Mobile); !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			return nil
		})
	// Spent: a pay ever posted to the card (cancelled or reversed since, it
	// still counts). Read from the card's own postings (postings_by_account,
	// whose predicate the query repeats): pay_orders has no index on the
	// account, and the EXISTS there read every pay ever made, per repeal
	// (found by a probe: 60 ms a repeal with a small ledger, growing with
	// every pay).
	b.Queue(`SELECT a.balance, EXISTS (SELECT 1 FROM postings p JOIN ledger_txns t USING (txn_id)
    WHERE p.account_id = a.account_id AND p.account_id NOT LIKE 'SYS-%' AND t.kind = 'pay'), a.status FROM accounts a
WHERE a.account_id = (SELECT account_id FROM card_orders WHERE order_id = `+payment+`) FOR UPDATE OF a`, args...).
		QueryRow(func(row pgx.Row) error {
			if err := row.Scan(&st.CardBalance, &st.CardSpent, &st.CardStatus); !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			return nil
		})
	b.Queue(`SELECT EXISTS (SELECT 1 FROM card_orders o JOIN card_orders f ON f.customer_id = o.customer_id
    AND f.product_id = o.product_id AND f.filling AND f.order_id <> o.order_id WHERE o.order_id = `+payment+`)`, args...).
		QueryRow(func(row pgx.Row) error { return row.Scan(&st.OtherFilling) })
	u, err := begin(ctx, s, "repeal_card", b, writeRepeal)
	if err != nil {
		return nil, nil, err
	}
	return st, u, nil
}

func writeRepeal(b *pgx.Batch, o *mapfront.RepealOutcome) error {
	ord := o.Order
	if o.TakeBack != nil {
		if err := queuePost(b, "repeal", ord.ID, o.TakeBack...); err != nil {
			return err
		}
	}
	b.Queue(`UPDATE card_payments SET status = 'repealed', repealed_at = $2 WHERE payment_id = $1`, o.PaymentID, o.Now)
	// A later repeat of the open_card itself must not answer success.
	b.Queue(keyReverseSQL, keyArgs(mapfront.KindOpenCard, o.Key)...)
	b.Queue(`UPDATE card_orders SET paid = $2, filling = $3, status = $4, credited = $5, released = $6, activated_at = $7
WHERE order_id = $1`, ord.ID, ord.Paid, ord.Filling, ord.Status, ord.Credited, ord.Released, ord.ActivatedAt)
	switch {
	case ord.Status == "closed":
		b.Queue(`UPDATE accounts SET status = 'closed', activated_at = NULL WHERE account_id = $1`, ord.AccountID)
	case o.TakeBack != nil:
		b.Queue(`UPDATE accounts SET status = 'pending', activated_at = NULL WHERE account_id = $1`, ord.AccountID)
	}
	return nil
}

// LoadAccountQuery implements mapfront.OfflineStore.
func (s *Store) LoadAccountQuery(ctx context.Context, r *mapfront.AccountQuery) (*mapfront.AccountQueryState, mapfront.Unit[*mapfront.PasswordChange], error) {
	st := &mapfront.AccountQueryState{}
	b := beginBatch()
	queueTerminalLocked(b, r.Origin, &st.Terminal)
	queueCustomer(b, r.ConsumerID, &st.Customer)
	q := `SELECT a.account_id, a.status, a.balance, coalesce(p.name, '现金账户') FROM accounts a
LEFT JOIN products p ON p.product_id = a.product_id WHERE `
	if mapfront.ValidMobile(r.ConsumerID) {
		q += `a.customer_id = (SELECT customer_id FROM customers WHERE mobile = $1) AND a.kind = 'cash'`
	} else {
		q += `a.account_id = $1 AND a.kind <> 'system'`
	}
	b.Queue(q, r.ConsumerID).QueryRow(func(row pgx.Row) error {
		var a mapfront.AccountInfo
		err := row.Scan(&a.AccountID, &a.Status, &a.Balance, &a.Remark)
		return optional(&a, err)(&st.Account)
	})
	u, err := begin(ctx, s, "get_account_info", b, func(b *pgx.Batch, c *mapfront.PasswordChange) error {
		queuePasswordChange(b, c)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return st, u, nil
}

// ProductsFor implements mapfront.OfflineStore: one round trip, one
// read-only snapshot.
func (s *Store) ProductsFor(ctx context.Context, o mapfront.Origin) (mapfront.TerminalState, []mapfront.Product, error) {
	var t mapfront.TerminalState
	var ps []mapfront.Product
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
	queueTerminal(b, o, &t)
	b.Queue(`SELECT ` + productColumns + ` FROM products WHERE on_sale ORDER BY product_id`).Query(func(rows pgx.Rows) error {
		var err error
		ps, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapfront.Product, error) {
			p, err := scanProduct(row)
			if err != nil {
				return mapfront.Product{}, err
			}
			return *p, nil
		})
		return err
	})
	b.Queue("COMMIT")
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return t, nil, classify("download_product", err, false)
	}
	return t, ps, nil
}
