package postgres

import (
	"context"
	"errors"
	"strconv"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// The manual-handling queue (人工处理, SPEC section 6).

const exceptionColumns = `exception_id, type, business_date, line_no, trade_id, order_id, terminal_id, batch_no,
terminal_order_id, amount, expected, detail, state, coalesce(action, ''), operator, note, linked_order_id,
created_at, resolved_at,
(SELECT r.business_date FROM settlement_runs r WHERE r.run_id = settlement_exceptions.resolved_run_id) AS resolved_by_batch`

func scanException(row pgx.Row) (*mapfront.Exception, error) {
	var e mapfront.Exception
	err := row.Scan(&e.ID, &e.Type, &e.BusinessDate, &e.LineNo, &e.TradeID, &e.OrderID, &e.TerminalID, &e.BatchNo,
		&e.TerminalOrderID, &e.Amount, &e.Expected, &e.Detail, &e.State, &e.Action, &e.Operator, &e.Note,
		&e.LinkedOrderID, &e.CreatedAt, &e.ResolvedAt, &e.ResolvedByBatch)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// ListExceptions returns queue items, newest business date first and in
// filing order within a date. Errors: 10001.
func (s *Store) ListExceptions(ctx context.Context, f mapfront.ExceptionFilter) ([]mapfront.Exception, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var date any
	if !f.BusinessDate.IsZero() {
		date = f.BusinessDate
	}
	rows, err := s.pool.Query(ctx, `SELECT `+exceptionColumns+` FROM settlement_exceptions
WHERE ($1 = '' OR state = $1) AND ($2::date IS NULL OR business_date = $2)
ORDER BY business_date DESC, exception_id LIMIT $3`, f.State, date, f.Limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapfront.Exception, error) {
		e, err := scanException(row)
		if err != nil {
			return mapfront.Exception{}, err
		}
		return *e, nil
	})
	return out, s.wrap(err)
}

// GetException returns one queue item. Errors: 10010.
func (s *Store) GetException(ctx context.Context, id int64) (*mapfront.Exception, error) {
	e, err := scanException(s.pool.QueryRow(ctx, `SELECT `+exceptionColumns+` FROM settlement_exceptions
WHERE exception_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mapfront.Errorf(mapfront.CodeNoOriginal, "异常记录%d不存在", id)
	}
	return e, s.wrap(err)
}

// ResolveException settles an open queue item, in one transaction with
// what the action does. Resolving is the conditional transition open →
// resolved: an item already resolved is returned as it stands with
// already = true, and nothing changes, whatever this request asked.
//
//   - activate: the order (r.OrderID, else the item's) is activated through
//     the ledger as settlement would have (开卡生效). It must be paid in full
//     by our records; an order already credited is only verified.
//   - refund_owed: the customer is owed a refund, paid outside mapfront; no
//     money moves here. A missing_from_file item's payment stops counting
//     toward its order (mapfront.RefundOwed): refused when the payment was
//     repealed or refunded (10011), confirmed by a record or its card
//     already credited (10013).
//   - ignore: nothing to do.
//   - link_order: the item belongs to r.OrderID, which must exist.
//
// Errors: 10001, 10003 (a proposed resolution of the item waits for a
// supervisor), 10006 (the order is closed), 10010 (no such item or order),
// 10011 and 10013 (refund_owed, above), 10015 (the order is not paid in
// full), 10018.
func (s *Store) ResolveException(ctx context.Context, r mapfront.Resolution) (*mapfront.Exception, bool, error) {
	if err := r.Validate(); err != nil {
		return nil, false, err
	}
	var out *mapfront.Exception
	var already bool
	err := s.auditedTx(ctx, audit.Change{Op: "ResolveException", Target: "exception:" + strconv.FormatInt(r.ID, 10),
		Args: map[string]any{"action": r.Action, "order_id": r.OrderID, "operator": r.Operator, "note": r.Note}}, func(tx pgx.Tx) error {
		var err error
		out, already, err = s.resolveTx(ctx, tx, r, true)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if !already {
		s.log.Info("settlement exception resolved", "id", out.ID, "type", out.Type, "action", out.Action,
			"operator", out.Operator, "order", out.LinkedOrderID)
	}
	return out, already, nil
}

// resolveTx is ResolveException's work inside tx (direct), also an approved
// proposal's, in the transaction that marks it approved (not direct).
func (s *Store) resolveTx(ctx context.Context, tx pgx.Tx, r mapfront.Resolution, direct bool) (out *mapfront.Exception, already bool, _ error) {
	err := func() error {
		// A refund of a payment locks the payment and its order before the
		// item, in the order settlement locks them (it confirms a payment,
		// then resolves its item), so that the two never deadlock.
		var refund *lockedRefund
		if r.Action == mapfront.ActionRefundOwed {
			var err error
			if refund, err = lockRefund(ctx, tx, r.ID); err != nil {
				return err
			}
		}
		e, err := scanException(tx.QueryRow(ctx, `SELECT `+exceptionColumns+` FROM settlement_exceptions
WHERE exception_id = $1 FOR UPDATE`, r.ID))
		if errors.Is(err, pgx.ErrNoRows) {
			return mapfront.Errorf(mapfront.CodeNoOriginal, "异常记录%d不存在", r.ID)
		}
		if err != nil {
			return err
		}
		if e.State != mapfront.ExceptionOpen {
			out, already = e, true
			return nil
		}
		if direct {
			// A resolution waiting for a supervisor (four eyes) holds the
			// item: another resolution, even one that moves no money,
			// waits for that decision (10003), as a second proposal does
			// (0019); resolving it meanwhile left the proposal approved
			// with nothing done (found by a newcomer's trial). Read under
			// the item's lock, which CreateProposal takes too, so that a
			// proposal filed at the same moment is seen or waits. An
			// expired one no longer holds it.
			var pending int64
			err := tx.QueryRow(ctx, `SELECT proposal_id FROM proposals
WHERE kind = 'resolve_exception' AND state = 'pending' AND target = $1 AND expires_at > $2
ORDER BY proposal_id LIMIT 1`, "exception:"+strconv.FormatInt(r.ID, 10), s.clock.Now()).Scan(&pending)
			switch {
			case err == nil:
				return mapfront.Errorf(mapfront.CodeKeyReused, "异常%d有待主管复核的处理提案%d，须先由主管决定", r.ID, pending)
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
		}
		linked := r.OrderID
		switch r.Action {
		case mapfront.ActionActivate:
			if linked == "" {
				linked = e.OrderID
			}
			if linked == "" {
				return mapfront.Missing("order_id")
			}
			if err := s.activateManually(ctx, tx, linked, e); err != nil {
				return err
			}
		case mapfront.ActionRefundOwed:
			if refund != nil {
				if err := s.refundPayment(ctx, tx, refund); err != nil {
					return err
				}
			}
		case mapfront.ActionLinkOrder:
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM card_orders WHERE order_id = $1)
    OR EXISTS (SELECT 1 FROM pay_orders WHERE order_id = $1)`, linked).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return mapfront.Errorf(mapfront.CodeNoOriginal, "订单%s不存在", linked)
			}
		}
		const q = `
UPDATE settlement_exceptions SET state = 'resolved', action = $2, operator = $3, note = $4, linked_order_id = $5,
    resolved_at = $6
WHERE exception_id = $1 AND state = 'open'
RETURNING ` + exceptionColumns
		out, err = scanException(tx.QueryRow(ctx, q, r.ID, string(r.Action), r.Operator, r.Note, linked, s.clock.Now()))
		return err
	}()
	return out, already, err
}

// lockedRefund is the payment a refund_owed resolution refunds, with its
// order, both locked.
type lockedRefund struct {
	payment      mapfront.CardPaymentRow
	order        *cardOrder
	otherFilling bool
}

// lockRefund locks the payment named by queue item id, if it is a
// missing_from_file item (the one type whose refund is a payment's), and the
// payment's order; nil when the item names no such payment (the resolution
// then records the decision only). The item itself is read unlocked here:
// the caller locks it next and decides only if it is still open.
func lockRefund(ctx context.Context, tx pgx.Tx, id int64) (*lockedRefund, error) {
	var typ string
	var paymentID *int64
	err := tx.QueryRow(ctx, `SELECT type, payment_id FROM settlement_exceptions WHERE exception_id = $1`, id).Scan(&typ, &paymentID)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && (typ != string(mapfront.ExMissing) || paymentID == nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rf := &lockedRefund{}
	p := &rf.payment
	if err := tx.QueryRow(ctx, `SELECT payment_id, order_id, status, seller_id, store_id, terminal_id, batch_no,
    terminal_order_id, pay_sum, settled, business_date
FROM card_payments WHERE payment_id = $1 FOR UPDATE`, *paymentID).Scan(&p.ID, &p.OrderID, &p.Status,
		&p.Origin.SellerID, &p.Origin.StoreID, &p.Origin.TerminalID, &p.BatchNo, &p.TerminalOrderID, &p.Sum,
		&p.Settled, &p.BusinessDate); err != nil {
		return nil, err
	}
	if rf.order, err = scanCardOrder(tx.QueryRow(ctx, `SELECT `+cardOrderColumns+` FROM card_orders
WHERE order_id = $1 FOR UPDATE`, p.OrderID)); err != nil {
		return nil, err
	}
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM card_orders f WHERE f.customer_id = $1 AND f.product_id = $2
    AND f.filling AND f.order_id <> $3)`, rf.order.customerID, rf.order.productID, rf.order.id).Scan(&rf.otherFilling); err != nil {
		return nil, err
	}
	return rf, nil
}

// CheckRefund implements mapfront.AdminStore: RefundOwed on the item's
// payment and order as they are now, in a transaction rolled back at once.
func (s *Store) CheckRefund(ctx context.Context, id int64) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	rf, err := lockRefund(ctx, tx, id)
	if err != nil || rf == nil {
		return s.wrap(err)
	}
	_, err = mapfront.RefundOwed(&rf.payment, *rf.order.domain(), rf.otherFilling)
	return err
}

// refundPayment takes a refunded payment out of its order (RefundOwed): the
// payment refunded, its open_card key reversed (a repeat is then answered as
// after a repeal), the order's paid sum and state as a repeal leaves them,
// and a closed order's card account closed. Errors: 10011, 10013.
func (s *Store) refundPayment(ctx context.Context, tx pgx.Tx, rf *lockedRefund) error {
	o, err := mapfront.RefundOwed(&rf.payment, *rf.order.domain(), rf.otherFilling)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE card_payments SET status = 'refunded', refunded_at = $2 WHERE payment_id = $1`,
		rf.payment.ID, s.clock.Now()); err != nil {
		return err
	}
	// As a repeal: a later repeat of the open_card itself must not answer
	// success.
	k := mapfront.TerminalKey{TerminalID: rf.payment.Origin.TerminalID, BatchNo: rf.payment.BatchNo,
		TerminalOrderID: rf.payment.TerminalOrderID}
	if _, err := tx.Exec(ctx, keyReverseSQL, keyArgs(mapfront.KindOpenCard, k)...); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE card_orders SET paid = $2, filling = $3, status = $4 WHERE order_id = $1`,
		o.ID, o.Paid, o.Filling, o.Status); err != nil {
		return err
	}
	if o.Status == "closed" {
		_, err = tx.Exec(ctx, `UPDATE accounts SET status = 'closed', activated_at = NULL WHERE account_id = $1`, o.AccountID)
	}
	return err
}

// activateManually activates an order an operator vouches for: our records
// must show it paid in full; its card is credited through activate unless
// it already is (immediate policy), and it is counted once as activated.
func (s *Store) activateManually(ctx context.Context, tx pgx.Tx, orderID string, e *mapfront.Exception) error {
	o, err := scanCardOrder(tx.QueryRow(ctx, `SELECT `+cardOrderColumns+` FROM card_orders WHERE order_id = $1 FOR UPDATE`, orderID))
	if errors.Is(err, pgx.ErrNoRows) {
		return mapfront.Errorf(mapfront.CodeNoOriginal, "开卡订单%s不存在", orderID)
	}
	if err != nil {
		return err
	}
	switch {
	case o.status == "closed":
		return mapfront.Errorf(mapfront.CodeAccountState, "订单%s已关闭", orderID)
	case o.paid < o.price:
		return mapfront.Errorf(mapfront.CodeAmount, "订单尚欠%s元，不能生效", mapfront.FormatYuan(o.price-o.paid))
	}
	var payments int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM card_payments WHERE order_id = $1 AND status = 'paid'`, orderID).Scan(&payments); err != nil {
		return err
	}
	credited := !o.credited
	if credited {
		if err := s.activate(ctx, tx, o); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO settlement_activations (order_id, business_date, exception_id, payments, credited,
    manual, activated_at) VALUES ($1, $2, $3, $4, $5, true, $6) ON CONFLICT (order_id) DO NOTHING`,
		orderID, e.BusinessDate, e.ID, payments, credited, s.clock.Now())
	return err
}
