package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
)

// Step 4 of a run (settle.go) and the day's time-driven work: merge and
// activate (SPEC section 6), installment releases (SPEC section 4, 分期卡)
// and orders past the completion window.

// activateOrders takes every order that a 交易id of the date confirmed a
// payment of, a slice of orders per transaction, in order id order (the
// settlement_trades_by_date index gives them without a sort). Slices hold
// disjoint orders and their accounts, and the system accounts they post to
// are never locked (their balance is computed, not stored), so they run on
// settleWorkers connections at once.
func (s *Store) activateOrders(ctx context.Context, r *run) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan []string)
	errc := make(chan error, settleWorkers)
	var wg sync.WaitGroup
	for i := 0; i < settleWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ids := range pages {
				if err := s.settleTx(ctx, func(tx pgx.Tx) error { return s.settleOrders(ctx, tx, r, ids, false) }); err != nil {
					errc <- err
					cancel()
					return
				}
			}
		}()
	}
	err := s.orderPages(ctx, r, pages)
	close(pages)
	wg.Wait()
	select {
	case werr := <-errc:
		return werr
	default:
	}
	return err
}

// activateEarly starts settleWorkers/2 connections that settle, while the
// records are still being matched, the orders that each matched slice
// confirmed a payment of (settled receives them once the slice has
// committed). Those whose verdict no later record of the run can change are
// settled at once (settleOrders, early); the rest wait for activateOrders.
// An order whose payments two slices confirm is sent by both, and the one
// sent last, after both committed, sees them all. Matching leaves a core
// partly idle (a slice's round trips, the classification in Go), which this
// fills. The returned wait, called after settled is closed, answers the
// first error of the workers (the others may be the cancellation it caused);
// an error also cancels ctx through cancel.
func (s *Store) activateEarly(ctx context.Context, cancel context.CancelFunc, r *run, settled <-chan []string) (wait func() error) {
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range max(settleWorkers/2, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ids := range settled {
				if ctx.Err() != nil {
					continue // drain, so that the senders never block
				}
				if err := s.settleTx(ctx, func(tx pgx.Tx) error { return s.settleOrders(ctx, tx, r, ids, true) }); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
				}
			}
		}()
	}
	return func() error {
		wg.Wait()
		return first
	}
}

// orderPages sends the date's confirmed orders to pages, settleSlice at a
// time, until there are no more or ctx ends.
func (s *Store) orderPages(ctx context.Context, r *run, pages chan<- []string) error {
	after := ""
	for {
		var ids []string
		if err := s.settleTx(ctx, func(tx pgx.Tx) error {
			var err error
			ids, err = orderPage(ctx, tx, r.date, after, r.id)
			return err
		}); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		select {
		case pages <- ids:
		case <-ctx.Done():
			return ctx.Err()
		}
		after = ids[len(ids)-1]
	}
}

// orderPageSQL reads the next page of the date's confirmed orders as one
// walk of settlement_trades_by_date from after, stopping at $3 orders,
// leaving out the orders run $4 has already counted (activateEarly settled
// them behind the matching): a keyed probe per trade, where settleOrders
// would look each order up, then skip it.
const orderPageSQL = `SELECT DISTINCT t.order_id FROM settlement_trades t
WHERE t.business_date = $1 AND t.order_id > $2
  AND NOT EXISTS (SELECT 1 FROM settlement_activations a WHERE a.order_id = t.order_id AND a.run_id = $4)
ORDER BY t.order_id LIMIT $3`

// orderPage answers the settleSlice orders of date after the order id after,
// in id order. The plan must be the index walk: planned with the statistics
// of a table that was nearly empty when the day began, the page was a bitmap
// scan of every trade of the date still to come, hashed (spilling to disk)
// and sorted, per page: 390 ms per page at 200,000 records
// (auto_explain), quadratic in the file. Scans, bitmaps, sorts, hashing and
// merge joins are off for this read only. Orders run counted are left out.
func orderPage(ctx context.Context, tx pgx.Tx, date time.Time, after string, run int64) ([]string, error) {
	if _, err := tx.Exec(ctx, `SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true),
       set_config('enable_sort', 'off', true), set_config('enable_hashagg', 'off', true),
       set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, orderPageSQL, date, after, settleSlice, run)
	if err != nil {
		return nil, err
	}
	return pgx.AppendRows(make([]string, 0, settleSlice), rows, pgx.RowTo[string])
}

// settledOrder is a card order with the sum and count of its confirmed
// (settled, not repealed) payments.
type settledOrder struct {
	cardOrder
	confirmed int64
	payments  int
}

// settleOrders merges and activates the given orders (SPEC section 6):
// confirmed payments equal to the price activate the card (or, already
// credited under the immediate policy, are verified: no second credit);
// short of it the order waits; over it is an overpaid exception. However
// many orders, it is three statements: read and lock, the ledger, the rest.
// early says the records of the run are still being matched (activateEarly).
func (s *Store) settleOrders(ctx context.Context, tx pgx.Tx, r *run, ids []string, early bool) error {
	// The orders are locked in id order, each with the sum and count of its
	// confirmed payments (a keyed lookup per order on card_payments_by_order).
	//
	// Early (while the records are still being matched), an order is taken
	// only when no record of this run can change its verdict any more:
	// every paid payment of it is confirmed (matching confirms only
	// unconfirmed ones) and it is not filling (the open pass adds payments
	// only to filling orders). Otherwise it is left, unlocked, to the pass
	// after matching, which in turn skips the orders this run has already
	// counted (their settlement_activations row): for them it would only
	// verify what is done.
	const final = `
SELECT ` + qualifiedCardOrderColumns + `, c.confirmed, c.payments
FROM card_orders o,
     LATERAL (SELECT coalesce(sum(p.pay_sum), 0) AS confirmed, count(*) AS payments FROM card_payments p
              WHERE p.order_id = o.order_id AND p.status = 'paid' AND p.settled) c
WHERE o.order_id = ANY($1)
  AND NOT EXISTS (SELECT 1 FROM settlement_activations a WHERE a.order_id = o.order_id AND a.run_id = $2)
ORDER BY o.order_id FOR UPDATE OF o`
	const earlyQ = `
SELECT ` + qualifiedCardOrderColumns + `, c.confirmed, c.payments
FROM card_orders o,
     LATERAL (SELECT coalesce(sum(p.pay_sum) FILTER (WHERE p.settled), 0) AS confirmed,
                     count(*) FILTER (WHERE p.settled) AS payments, count(*) FILTER (WHERE NOT p.settled) AS unsettled
              FROM card_payments p WHERE p.order_id = o.order_id AND p.status = 'paid') c
WHERE o.order_id = ANY($1) AND NOT o.filling AND c.unsettled = 0
ORDER BY o.order_id FOR UPDATE OF o`
	if err := keyedPlans(ctx, tx, true); err != nil {
		return err
	}
	var rows pgx.Rows
	var err error
	if early {
		rows, err = tx.Query(ctx, earlyQ, ids)
	} else {
		rows, err = tx.Query(ctx, final, ids, r.id)
	}
	if err != nil {
		return err
	}
	orders, err := pgx.AppendRows(make([]settledOrder, 0, len(ids)), rows, func(row pgx.CollectableRow) (settledOrder, error) {
		var o settledOrder
		err := row.Scan(&o.id, &o.customerID, &o.productID, &o.accountID, &o.price, &o.faceValue, &o.installments,
			&o.released, &o.paid, &o.filling, &o.status, &o.credited, &o.activatedAt, &o.confirmed, &o.payments)
		return o, err
	})
	if err != nil {
		return err
	}
	var credit, counted []*settledOrder
	var overpaid []exceptionRow
	for i := range orders {
		o := &orders[i]
		switch mapfront.DecideOrder(o.price, o.confirmed, o.credited) {
		case mapfront.OrderActivate:
			credit = append(credit, o)
			counted = append(counted, o)
		case mapfront.OrderVerify:
			counted = append(counted, o)
		case mapfront.OrderOverpaid:
			overpaid = append(overpaid, exceptionRow{typ: mapfront.ExOverpaid, dedupe: "overpaid|order|" + o.id,
				orderID: o.id, amount: o.confirmed, expected: o.price,
				detail: fmt.Sprintf("已对账%s元，超过价格%s元", mapfront.FormatYuan(o.confirmed), mapfront.FormatYuan(o.price))})
		}
	}
	// The orders first, then the ledger: the ledger trigger makes each
	// credited order's pending account active in the write that moves its
	// balance (migration 0014), one write per account.
	now := r.at // one activation time per run (run.at)
	if err := markActivated(ctx, tx, r, credit, counted, now); err != nil {
		return err
	}
	if err := keyedPlans(ctx, tx, false); err != nil {
		return err
	}
	if err := creditOrders(ctx, tx, credit, now); err != nil {
		return err
	}
	if err := keyedPlans(ctx, tx, true); err != nil {
		return err
	}
	if err := checkActivated(ctx, tx, credit); err != nil {
		return err
	}
	return insertExceptions(ctx, tx, r.date, &r.id, now, overpaid)
}

const qualifiedCardOrderColumns = `o.order_id, o.customer_id, o.product_id, o.account_id, o.price, o.face_value,
o.installments, o.released, o.paid, o.filling, o.status, o.credited, o.activated_at`

// activationLegs are the postings of an activation, as activate writes them
// (cardsale.go): the card gets the face value, or the first installment
// with the rest held in SYS-INSTALLMENT; the price is owed by the POSP
// (SYS-CARD-SALES) and the discount is an expense (SYS-DISCOUNT).
func activationLegs(o *cardOrder) []posting {
	first := mapfront.InstallmentPart(o.faceValue, o.installments, 1)
	return []posting{
		{o.accountID, first},
		{sysInstallment, o.faceValue - first},
		{sysCardSales, -o.price},
		{sysDiscount, -(o.faceValue - o.price)},
	}
}

// creditOrders writes the activation of locked, fully confirmed orders,
// already marked active (markActivated), to the ledger: one balanced
// transaction per order, every transaction of the slice and all their legs
// in one statement (ledgerManyCTE), so that a day of a million cards is a
// few hundred statements, not millions. The ledger trigger makes each
// card's pending account active as it credits it (migration 0014); a card
// whose first part is zero fen has no leg of its own, and its account is
// made active here (at now).
func creditOrders(ctx context.Context, tx pgx.Tx, orders []*settledOrder, now time.Time) error {
	if len(orders) == 0 {
		return nil
	}
	ids := make([]string, len(orders))
	legs := make([][]mapfront.Leg, len(orders))
	var unposted []string
	for i, o := range orders {
		ids[i] = o.id
		legs[i] = make([]mapfront.Leg, 0, 4)
		for _, l := range activationLegs(&o.cardOrder) {
			legs[i] = append(legs[i], mapfront.Leg{Account: l.account, Amount: l.amount})
			if l.account == o.accountID && l.amount == 0 {
				unposted = append(unposted, o.accountID)
			}
		}
	}
	if len(unposted) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE accounts SET status = 'active', activated_at = $2
WHERE account_id = ANY($1) AND status = 'pending'`, unposted, now); err != nil {
			return err
		}
	}
	args, err := ledgerManyArgs("activate", ids, legs)
	if err != nil {
		return err
	}
	var n int
	if err := tx.QueryRow(ctx, ledgerManyCTE+`SELECT count(*) FROM t`, args...).Scan(&n); err != nil {
		return fmt.Errorf("ledger activate: %w", err)
	}
	if n != len(ids) {
		return fmt.Errorf("settlement: wrote %d activation transactions, expected %d", n, len(ids))
	}
	return nil
}

// checkActivated fails the slice unless every credited order's account is
// now active: the ledger trigger activates only a pending account (0014),
// so an account in any other state (a writer that broke the pairing of an
// order and its account) would otherwise be credited and left unspendable
// while the report says activated. One keyed lookup per card.
func checkActivated(ctx context.Context, tx pgx.Tx, credited []*settledOrder) error {
	if len(credited) == 0 {
		return nil
	}
	accounts := make([]string, len(credited))
	for i, o := range credited {
		accounts[i] = o.accountID
	}
	var bad string
	err := tx.QueryRow(ctx, `SELECT a.account_id || ' ' || a.status FROM unnest($1::text[]) AS k(account_id)
JOIN accounts a USING (account_id) WHERE a.status <> 'active' LIMIT 1`, accounts).Scan(&bad)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("settlement: credited account %s is not active", bad)
}

// markActivated makes the credited orders active and counts the counted
// orders (credited or verified) as activated by the date, once per order:
// one statement. Their accounts become active when creditOrders then writes
// their credit (the ledger trigger, migration 0014). The orders are joined
// by key (keyedPlans): "order_id = ANY" was planned as a scan of every
// pending order of the table, per slice.
func markActivated(ctx context.Context, tx pgx.Tx, r *run, credited, counted []*settledOrder, now time.Time) error {
	if len(counted) == 0 {
		return nil
	}
	creditIDs := make([]string, len(credited))
	for i, o := range credited {
		creditIDs[i] = o.id
	}
	ids := make([]string, len(counted))
	payments := make([]int32, len(counted))
	byUs := make([]bool, len(counted))
	for i, o := range counted {
		// credited here means credited by this settlement: an order that
		// was credited before (immediate policy) is only verified.
		ids[i], payments[i], byUs[i] = o.id, int32(o.payments), o.status == "pending"
	}
	const q = `
WITH o AS (UPDATE card_orders SET status = 'active', credited = true, released = 1, filling = false, activated_at = $1
           FROM unnest($2::text[]) AS k(order_id)
           WHERE card_orders.order_id = k.order_id AND status = 'pending' AND NOT credited
           RETURNING 1),
     c AS (INSERT INTO settlement_activations (order_id, business_date, run_id, payments, credited, activated_at)
           SELECT u.order_id, $3, $4, u.payments, u.credited, $1
           FROM unnest($5::text[], $6::int[], $7::boolean[]) AS u(order_id, payments, credited)
           ON CONFLICT (order_id) DO NOTHING)
SELECT count(*) FROM o`
	var orders int
	if err := tx.QueryRow(ctx, q, now, creditIDs, r.date, r.id, ids, payments, byUs).Scan(&orders); err != nil {
		return err
	}
	if orders != len(creditIDs) {
		return fmt.Errorf("settlement: activated %d orders, expected %d", orders, len(creditIDs))
	}
	return nil
}

// RunDaily does the day's time-driven work (SPEC sections 4 and 6): it
// releases every installment part that has fallen due, each once per card
// and part, and files the pending orders that have waited longer than
// window (zero: mapfront.DefaultCompletionWindow) as incomplete_after_window.
// Running it again, or twice at once, releases and files nothing more.
// Each card's releases are one transaction with its postings.
// Errors: 10018.
func (s *Store) RunDaily(ctx context.Context, window time.Duration) (*mapfront.DailyResult, error) {
	res := &mapfront.DailyResult{}
	today := s.clock.Today()
	after := ""
	for {
		// card_orders_releasing holds the installment cards with parts
		// still to release (migration 0021); releaseDue checks each again.
		rows, err := s.pool.Query(ctx, `SELECT order_id FROM card_orders_releasing
WHERE order_id > $1 ORDER BY order_id LIMIT $2`, after, settleSlice)
		if err != nil {
			return nil, s.wrap(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, s.wrap(err)
		}
		if len(ids) == 0 {
			break
		}
		var n int64
		if err := s.settleTx(ctx, func(tx pgx.Tx) error {
			var err error
			n, err = s.releaseDue(ctx, tx, ids, today)
			return err
		}); err != nil {
			return nil, err
		}
		res.InstallmentsReleased += n
		after = ids[len(ids)-1]
	}
	n, err := s.flagIncomplete(ctx, today, window)
	if err != nil {
		return nil, err
	}
	res.IncompleteFlagged = n
	if res.InstallmentsReleased > 0 || res.IncompleteFlagged > 0 {
		s.log.Info("daily settlement work", "date", mapfront.DateString(today),
			"installments_released", res.InstallmentsReleased, "incomplete_flagged", res.IncompleteFlagged)
	}
	return res, nil
}

// releaseDue releases the parts due by today of the given orders. The rows
// are locked and read again, so a concurrent RunDaily that released first
// is seen; released moves only from n-1 to n and the release row is unique
// per order and part, so no part is credited twice whatever the timing.
func (s *Store) releaseDue(ctx context.Context, tx pgx.Tx, ids []string, today time.Time) (int64, error) {
	rows, err := tx.Query(ctx, `SELECT `+cardOrderColumns+` FROM card_orders
WHERE order_id = ANY($1) AND status = 'active' AND credited AND released < installments
ORDER BY order_id FOR UPDATE`, ids)
	if err != nil {
		return 0, err
	}
	orders, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*cardOrder, error) { return scanCardOrder(row) })
	if err != nil {
		return 0, err
	}
	now := s.clock.Now()
	var n int64
	for _, o := range orders {
		if o.activatedAt == nil {
			continue
		}
		activated := s.clock.BusinessDate(*o.activatedAt)
		for _, part := range mapfront.DueParts(activated, o.installments, o.released, today) {
			amount := mapfront.InstallmentPart(o.faceValue, o.installments, part)
			var txn *int64
			if amount > 0 {
				id, err := post(ctx, tx, "release", o.id, posting{o.accountID, amount}, posting{sysInstallment, -amount})
				if err != nil {
					return 0, err
				}
				txn = &id
			}
			tag, err := tx.Exec(ctx, `UPDATE card_orders SET released = $2 WHERE order_id = $1 AND released = $2 - 1`, o.id, part)
			if err != nil {
				return 0, err
			}
			if tag.RowsAffected() != 1 {
				return 0, fmt.Errorf("release %s part %d: order not at part %d", o.id, part, part-1)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO installment_releases (order_id, part, due_date, amount, txn_id, released_at)
VALUES ($1, $2, $3, $4, $5, $6)`, o.id, part, mapfront.InstallmentDue(activated, part), amount, txn, now); err != nil {
				return 0, err
			}
			n++
		}
	}
	return n, nil
}

// sqlYuan is SQL that shows the fen of a non-negative integer expression as
// yuan with two decimals, as mapfront.FormatYuan does ("2000.00"): the
// exception details speak yuan.
func sqlYuan(fen string) string {
	return "((" + fen + ")::bigint / 100)::text || '.' || lpad(((" + fen + ")::bigint % 100)::text, 2, '0')"
}

// flagIncomplete files, once per order, the pending orders whose business
// date is at least window before today: still short of the price, or paid
// but not all confirmed (SPEC section 6: "after a configurable window
// becomes an exception"). The pending orders are those of
// card_orders_pending (migration 0021), read up to the cutoff, each order
// then by its key.
func (s *Store) flagIncomplete(ctx context.Context, today time.Time, window time.Duration) (int64, error) {
	cutoff := mapfront.WindowCutoff(today, window)
	var n int64
	err := s.settleTx(ctx, func(tx pgx.Tx) error {
		q := `
INSERT INTO settlement_exceptions (type, business_date, dedupe, order_id, amount, expected, detail, created_at)
SELECT 'incomplete_after_window', o.business_date, 'incomplete|' || o.order_id, o.order_id, c.confirmed, o.price,
       format('超过完成期限仍未生效：已付%s元，已对账%s元，价格%s元', ` + sqlYuan("o.paid") + `, ` + sqlYuan("c.confirmed") + `,
           ` + sqlYuan("o.price") + `), $2
FROM card_orders_pending q
     JOIN card_orders o ON o.order_id = q.order_id,
     LATERAL (SELECT coalesce(sum(p.pay_sum), 0) AS confirmed FROM card_payments p
              WHERE p.order_id = o.order_id AND p.status = 'paid' AND p.settled) c
WHERE q.business_date <= $1 AND o.status = 'pending' AND o.paid > 0
ON CONFLICT (business_date, dedupe) DO NOTHING`
		if err := keyedPlans(ctx, tx, true); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, q, cutoff, s.clock.Now())
		n = tag.RowsAffected()
		return err
	})
	return n, err
}
