package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mapfront/server/internal/mapfront"
)

// Step 3 of a run (settle.go): the staged records, a slice per
// transaction, the parts of the terminal keys side by side and each in line
// order (applyRecords). A slice locks the payments its records name, reads
// each record with what the store holds for its 交易id and its terminal key
// (keyed lookups on unique indexes: the "map keyed by the match key", kept
// by the database), lets mapfront.Classify decide, and writes the outcome:
// confirmations in one statement, exceptions in one insert; openings are
// marked and done by the last pass (settle_open.go).

// stagedRecord is a staged record and what the store holds for it.
type stagedRecord struct {
	rec       mapfront.SettlementRecord
	dup       bool
	prior     mapfront.Prior
	match     mapfront.Match
	paymentID int64
	orderID   string
	// paidOn is the payment's business date; missingOpen says an open
	// missing_from_file item of an earlier batch names the payment.
	paidOn      time.Time
	missingOpen bool
}

// exceptionRow is a queue item to file.
type exceptionRow struct {
	typ             mapfront.ExceptionType
	dedupe          string
	lineNo          int64
	tradeID         string
	orderID         string
	paymentID       *int64
	terminalID      string
	batchNo         string
	terminalOrderID string
	amount          int64
	expected        int64
	detail          string
}

// recordException files a record's problem. The dedupe key is the 交易id,
// so a re-run of the date does not file the same problem again; duplicates
// are keyed by line as well, since their 交易id is by nature not unique.
func recordException(st *stagedRecord, t mapfront.ExceptionType, expected int64, detail string) exceptionRow {
	dedupe := string(t) + "|" + st.rec.TradeID
	if t == mapfront.ExDuplicate {
		dedupe += fmt.Sprintf("|%d", st.rec.LineNo)
	}
	e := exceptionRow{typ: t, dedupe: dedupe, lineNo: st.rec.LineNo, tradeID: st.rec.TradeID, orderID: st.orderID,
		terminalID: st.rec.TerminalID, batchNo: st.rec.BatchNo, terminalOrderID: st.rec.TerminalOrderID,
		amount: st.rec.Amount, expected: expected, detail: detail}
	if st.paymentID != 0 {
		id := st.paymentID
		e.paymentID = &id
	}
	return e
}

// matchWorkers is how many connections match staged records at once: one
// per part of the terminal keys (settlement_staging.part, migration 0011).
const matchWorkers = 2

// slice names staged records of a run: those with after < line_no <= upper,
// of one part (part < 0: any), and, in the last pass, only those left to be
// opened (openPass).
type slice struct {
	after, upper int64
	part         int
	openPass     bool
}

// sliceWhere is the condition of a slice's records on settlement_staging s,
// with $1 run, $2 after, $3 upper, $4 part, $5 openPass.
const sliceWhere = `s.run_id = $1 AND NOT s.bad AND s.line_no > $2 AND s.line_no <= $3
    AND ($4::int < 0 OR s.part = $4) AND (NOT $5::boolean OR s.open_later)`

// applyRecords applies every staged record of a run (step 3) in two
// passes. The first takes the parts of the terminal keys side by side
// (matchWorkers connections): it applies confirmations and exceptions and
// leaves the cards to open from the file marked open_later. Two records
// naming the same terminal key are in one part, so it applies them in line
// order as one pass over the file would; a record naming the terminal key
// of a card that an earlier line opens is left to be opened too, and the
// last pass, which classifies it again, finds that card. The last pass
// opens the cards, in line order over the whole file, so that each opening
// sees the customers and orders of the openings before it, and their
// exceptions are filed in line order.
func (s *Store) applyRecords(ctx context.Context, r *run) error {
	products, err := s.ListProducts(ctx, false)
	if err != nil {
		return err
	}
	// Unknown products are not_openable; a product that exists but is off
	// sale now was on sale when the POSP took the money, so it opens.
	byID := make(map[string]*mapfront.Product, len(products))
	for i := range products {
		byID[products[i].ID] = &products[i]
	}
	// The orders confirmed are settled behind the matching, where nothing
	// later in the run can change them (activateEarly); the early settling
	// ends before the open pass.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	settled := make(chan []string, matchWorkers)
	wait := s.activateEarly(ctx, cancel, r, settled)
	err = s.inParts(ctx, func(ctx context.Context, part int) error {
		return s.applySlices(ctx, r, part, false, byID, settled)
	})
	close(settled)
	// An error of the early settling is the cause: it cancelled the
	// matching (which never cancels it in turn: inParts cancels its own
	// context).
	if werr := wait(); werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	return s.applySlices(ctx, r, -1, true, byID, nil)
}

// inParts runs fn for each part 0..matchWorkers-1 at once. The first error
// cancels the others and is the one returned (not the cancellation it
// caused).
func (s *Store) inParts(ctx context.Context, fn func(ctx context.Context, part int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The first error in time is the cause; the others' errors, once it
	// cancelled them, are its consequences, however their cause is wrapped
	// (the store's errors carry it as text: errors.Is cannot see it).
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for part := range matchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, part); err != nil {
				once.Do(func() { first = err })
				cancel()
			}
		}()
	}
	wg.Wait()
	return first
}

// applySlices applies the records of part (or, openPass, those left to be
// opened) a slice per transaction, in line order. Once a slice has
// committed, the orders it confirmed payments of go to settled (if not
// nil).
func (s *Store) applySlices(ctx context.Context, r *run, part int, openPass bool, products map[string]*mapfront.Product,
	settled chan<- []string) error {
	const bound = `
SELECT max(line_no) FROM (SELECT s.line_no FROM settlement_staging s
                          WHERE ` + sliceWhere + ` ORDER BY s.line_no LIMIT $6) x`
	sl := slice{part: part, openPass: openPass}
	for {
		var upper *int64
		if err := s.pool.QueryRow(ctx, bound, r.id, sl.after, int64(math.MaxInt64), part, openPass, settleSlice).Scan(&upper); err != nil {
			return s.wrap(err)
		}
		if upper == nil {
			return nil
		}
		sl.upper = *upper
		var orders []string
		if err := s.settleTx(ctx, func(tx pgx.Tx) error {
			var err error
			orders, err = s.applySlice(ctx, tx, r, sl, products)
			return err
		}); err != nil {
			return err
		}
		if settled != nil && len(orders) > 0 {
			select {
			case settled <- orders:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		sl.after = sl.upper
	}
}

// applySlice applies the staged records of sl. It may run more than once
// (inTx retries a deadlock), so it keeps no state outside the transaction.
// Outside the open pass, a record to be opened is only marked open_later.
// It answers the orders of the payments it confirmed.
func (s *Store) applySlice(ctx context.Context, tx pgx.Tx, r *run, sl slice, products map[string]*mapfront.Product) ([]string, error) {
	// The payments named are locked first, in id order, so that what is
	// read below cannot change (a repeal, a concurrent run of another date)
	// before it is written. The read locks again what it reads: a payment
	// a POS created after the first lock (an open_card resent after the
	// day ended) is locked there too, or a repeal committing before the
	// confirmation left the slice confirming fewer payments than it read,
	// and the run failed (found by a probe). A slice holds no order or
	// account row while it reads, so a POS transaction waiting on the
	// slice never holds what the slice waits for. Each record finds its payment and its prior
	// 交易id by a keyed lookup on a unique index (LATERAL … LIMIT 1 keeps
	// the planner from hashing the whole card_payments table once per
	// slice): a slice costs what its records cost, however many payments
	// the years have accumulated.
	const lock = `
SELECT payment_id FROM card_payments
WHERE payment_id = ANY (ARRAY (
    SELECT p.payment_id FROM settlement_staging s,
        LATERAL (SELECT payment_id FROM card_payments c WHERE c.terminal_id = s.terminal_id
                 AND c.batch_no = s.batch_no AND c.terminal_order_id = s.terminal_order_id LIMIT 1) p
    WHERE ` + sliceWhere + `))
ORDER BY payment_id FOR UPDATE`
	if err := keyedPlans(ctx, tx, true); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, lock, r.id, sl.after, sl.upper, sl.part, sl.openPass); err != nil {
		return nil, err
	}
	const q = `
SELECT s.line_no, s.trade_id, s.amount, s.seller_id, s.terminal_id, s.batch_no, s.terminal_order_id, s.id_number,
       s.mobile, s.referrer, s.product_id, s.dup, s.trade_date, s.trade_time,
       t.business_date, coalesce(t.amount, 0),
       p.payment_id, coalesce(p.order_id, ''), coalesce(p.seller_id, ''), coalesce(p.pay_sum, 0),
       coalesce(p.status, ''), coalesce(p.settled, false), coalesce(p.trade_id, ''), p.business_date,
       p.payment_id IS NOT NULL AND EXISTS (SELECT 1 FROM settlement_exceptions e WHERE e.payment_id = p.payment_id
           AND e.type = 'missing_from_file' AND e.state = 'open')
FROM settlement_staging s
LEFT JOIN LATERAL (SELECT business_date, amount FROM settlement_trades x WHERE x.trade_id = s.trade_id LIMIT 1) t ON true
LEFT JOIN LATERAL (SELECT payment_id, order_id, seller_id, pay_sum, status, settled, trade_id, business_date FROM card_payments c
                   WHERE c.terminal_id = s.terminal_id AND c.batch_no = s.batch_no
                     AND c.terminal_order_id = s.terminal_order_id LIMIT 1 FOR UPDATE) p ON true
WHERE ` + sliceWhere + `
ORDER BY s.line_no`
	aead, err := stagingAEAD()
	if err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, q, r.id, sl.after, sl.upper, sl.part, sl.openPass)
	if err != nil {
		return nil, err
	}
	// Sized for the slice up front: grown by appending, the records (a few
	// hundred bytes each) were copied again at every doubling (runtime
	// growslice was a fifth of the server's CPU in settlement, pprof).
	recs, err := pgx.AppendRows(make([]stagedRecord, 0, settleSlice), rows, func(row pgx.CollectableRow) (stagedRecord, error) {
		var st stagedRecord
		var priorDate, paidOn *time.Time
		var paymentID *int64
		var status string
		err := row.Scan(&st.rec.LineNo, &st.rec.TradeID, &st.rec.Amount, &st.rec.SellerID, &st.rec.TerminalID,
			&st.rec.BatchNo, &st.rec.TerminalOrderID, &st.rec.IDNumber, &st.rec.Mobile, &st.rec.Referrer,
			&st.rec.ProductID, &st.dup, &st.rec.TradeDate, &st.rec.TradeTime, &priorDate, &st.prior.Amount,
			&paymentID, &st.orderID, &st.match.SellerID, &st.match.PaySum, &status, &st.match.Settled,
			&st.match.TradeID, &paidOn, &st.missingOpen)
		if err != nil {
			return st, err
		}
		// Staged sealed (settle_sealed.go): opened for the decisions.
		if st.rec.IDNumber, err = openStagedID(aead, r.id, st.rec.LineNo, st.rec.Mobile, st.rec.IDNumber); err != nil {
			return st, err
		}
		if paidOn != nil {
			st.paidOn = *paidOn
		}
		if priorDate != nil {
			st.prior.Applied, st.prior.Date, st.prior.SameDate = true, *priorDate, priorDate.Equal(r.date)
		}
		if paymentID != nil {
			st.match.Found, st.paymentID = true, *paymentID
			st.match.Repealed, st.match.Refunded = status == "repealed", status == "refunded"
		}
		return st, err
	})
	if err != nil {
		return nil, err
	}
	var exceptions []exceptionRow
	var confirms, opens []*stagedRecord
	rule := s.clock.Rule()
	for i := range recs {
		st := &recs[i]
		// A record dated outside the batch's day is applied to nothing
		// (SPEC section 6, Dates), whatever else it might match. One that
		// an earlier run of the date applied stays applied, and a repeated
		// 交易id in the file is a duplicate first, so that each line keeps
		// an item of its own.
		if !st.dup && (!st.prior.Applied || !st.prior.SameDate) {
			if d, ok := mapfront.CheckRecordDate(rule, r.date, st.rec.TradeDate, st.rec.TradeTime, r.tolerance); !ok {
				exceptions = append(exceptions, recordException(st, d.Type, d.Expected, d.Detail))
				continue
			}
		}
		d := mapfront.Classify(&st.rec, st.dup, st.prior, st.match)
		if d.Verdict == mapfront.Confirm {
			if cd, ok := mapfront.CrossDay(r.date, st.paidOn, st.missingOpen, r.lookback); !ok {
				d = cd
			}
		}
		switch d.Verdict {
		case mapfront.Confirm:
			confirms = append(confirms, st)
		case mapfront.Open:
			opens = append(opens, st)
		case mapfront.Queue:
			exceptions = append(exceptions, recordException(st, d.Type, d.Expected, d.Detail))
		}
	}
	lost, err := s.confirm(ctx, tx, r, confirms)
	if err != nil {
		return nil, err
	}
	exceptions = append(exceptions, lost...)
	if err := s.resolveMissing(ctx, tx, r, confirms, lost); err != nil {
		return nil, err
	}
	if !sl.openPass && len(opens) > 0 {
		lines := make([]int64, len(opens))
		for i, st := range opens {
			lines[i] = st.rec.LineNo
		}
		if _, err := tx.Exec(ctx, `UPDATE settlement_staging SET open_later = true WHERE run_id = $1 AND line_no = ANY($2)`,
			r.id, lines); err != nil {
			return nil, err
		}
		opens = nil
	}
	if err := keyedPlans(ctx, tx, false); err != nil {
		return nil, err
	}
	opened, err := s.openAll(ctx, tx, r, opens, products)
	if err != nil {
		return nil, err
	}
	exceptions = append(exceptions, opened...)
	if err := insertExceptions(ctx, tx, r.date, &r.id, s.clock.Now(), exceptions); err != nil {
		return nil, err
	}
	return confirmedOrders(confirms, lost), nil
}

// confirmedOrders are the orders of the records of confirms that did
// confirm their payment (not in lost).
func confirmedOrders(confirms []*stagedRecord, lost []exceptionRow) []string {
	notApplied := make(map[int64]bool, len(lost))
	for _, e := range lost {
		notApplied[e.lineNo] = true
	}
	orders := make([]string, 0, len(confirms))
	for _, st := range confirms {
		if !notApplied[st.rec.LineNo] && st.orderID != "" {
			orders = append(orders, st.orderID)
		}
	}
	return orders
}

// confirm applies the records that confirm their payment: each 交易id is
// recorded once ever (a conflict means another batch applied that 交易id
// or that payment first) and the payment is marked settled with it. The
// records that lost are returned as duplicates.
func (s *Store) confirm(ctx context.Context, tx pgx.Tx, r *run, recs []*stagedRecord) ([]exceptionRow, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	tradeIDs := make([]string, len(recs))
	lineNos := make([]int64, len(recs))
	paymentIDs := make([]int64, len(recs))
	orderIDs := make([]string, len(recs))
	amounts := make([]int64, len(recs))
	for i, st := range recs {
		tradeIDs[i], lineNos[i], paymentIDs[i], orderIDs[i], amounts[i] =
			st.rec.TradeID, st.rec.LineNo, st.paymentID, st.orderID, st.rec.Amount
	}
	// One statement: the 交易ids recorded and their payments marked
	// settled; it answers the 交易ids that took, and how many payments
	// moved.
	const q = `
WITH ins AS (
    INSERT INTO settlement_trades (trade_id, business_date, run_id, line_no, outcome, payment_id, order_id, amount, applied_at)
    SELECT u.trade_id, $1, $2, u.line_no, 'matched', u.payment_id, u.order_id, u.amount, $3
    FROM unnest($4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::bigint[])
         AS u(trade_id, line_no, payment_id, order_id, amount)
    ON CONFLICT DO NOTHING
    RETURNING trade_id, payment_id),
     upd AS (
    UPDATE card_payments c SET settled = true, trade_id = ins.trade_id
    FROM ins WHERE c.payment_id = ins.payment_id AND c.status = 'paid' AND NOT c.settled
    RETURNING 1)
SELECT ins.trade_id, (SELECT count(*) FROM upd) FROM ins`
	rows, err := tx.Query(ctx, q, r.date, r.id, s.clock.Now(), tradeIDs, lineNos, paymentIDs, orderIDs, amounts)
	if err != nil {
		return nil, err
	}
	applied := make(map[string]bool, len(recs))
	var settled int64
	for rows.Next() {
		var t string
		if err := rows.Scan(&t, &settled); err != nil {
			rows.Close()
			return nil, err
		}
		applied[t] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if settled != int64(len(applied)) {
		// The payments are locked and were read unsettled: this cannot
		// happen unless the lock order above is broken.
		return nil, fmt.Errorf("settlement: confirmed %d payments, expected %d", settled, len(applied))
	}
	var lost []exceptionRow
	for _, st := range recs {
		if !applied[st.rec.TradeID] {
			lost = append(lost, recordException(st, mapfront.ExDuplicate, st.match.PaySum, "交易id或该笔开卡付款已被另一条记录对账"))
		}
	}
	return lost, nil
}

// resolveMissing resolves, as the system, the missing_from_file items of
// earlier batches whose payment a record of this run has just confirmed
// (SPEC section 6, Dates): the item names this run and the record. lost are
// the records that did not confirm after all.
func (s *Store) resolveMissing(ctx context.Context, tx pgx.Tx, r *run, confirmed []*stagedRecord, lost []exceptionRow) error {
	notApplied := make(map[int64]bool, len(lost))
	for _, e := range lost {
		notApplied[e.lineNo] = true
	}
	var payments []int64
	var notes []string
	for _, st := range confirmed {
		if notApplied[st.rec.LineNo] || !st.missingOpen {
			continue
		}
		payments = append(payments, st.paymentID)
		notes = append(notes, mapfront.AutoResolveNote(r.date, r.id, st.rec.LineNo, st.rec.TradeID))
	}
	if len(payments) == 0 {
		return nil
	}
	// Each resolution also leaves its record in the audit trail (SPEC
	// section 7), in the same statement: who is the system, and the args
	// name the batch and the record that resolved it.
	const q = `
WITH resolved AS (
    UPDATE settlement_exceptions e SET state = 'resolved', action = 'ignore', operator = $1, note = u.note,
        resolved_at = $2, resolved_run_id = $3
    FROM unnest($4::bigint[], $5::text[]) AS u(payment_id, note)
    WHERE e.payment_id = u.payment_id AND e.type = 'missing_from_file' AND e.state = 'open' AND e.business_date < $6
    RETURNING e.exception_id, u.note)
INSERT INTO audit_log (at, identity, role, method, target, args, outcome, errcode)
SELECT $2, $1, $1, 'settlement.AutoResolve', 'exception:' || exception_id,
       jsonb_build_object('resolved_by_batch', $7::text, 'run_id', $3::bigint, 'note', note), 'ok', 0
FROM resolved`
	_, err := tx.Exec(ctx, q, mapfront.SystemOperator, s.clock.Now(), r.id, payments, notes, r.date, mapfront.DateString(r.date))
	return err
}

// openFromFile opens the card of a record whose payment we never saw (未开
// 通, SPEC section 6) as open_card would have: the customer is found or
// created, the payment joins the customer's filling order for the product
// or starts one, and it is confirmed at once. It runs in a savepoint: a
// record that turns out not to be openable, or whose terminal key or 交易id
// another record took first, leaves nothing behind and is returned as an
// exception.
func (s *Store) openFromFile(ctx context.Context, tx pgx.Tx, r *run, st *stagedRecord, products map[string]*mapfront.Product) (*exceptionRow, error) {
	rec := &st.rec
	notOpenable := func(why string) *exceptionRow {
		e := recordException(st, mapfront.ExNotOpenable, 0, fmt.Sprintf("%s（身份证%s，手机%s，产品%s）", why,
			mapfront.MaskIDNumber(rec.IDNumber), mapfront.MaskMobile(rec.Mobile), rec.ProductID))
		return &e
	}
	p := products[rec.ProductID]
	if p == nil {
		return notOpenable(fmt.Sprintf("产品%s不存在", rec.ProductID)), nil
	}
	var storeID string
	err := tx.QueryRow(ctx, `SELECT store_id FROM terminals WHERE terminal_id = $1 AND seller_id = $2`,
		rec.TerminalID, rec.SellerID).Scan(&storeID)
	if errors.Is(err, pgx.ErrNoRows) {
		return notOpenable(fmt.Sprintf("终端%s未登记或不属于商户%s", rec.TerminalID, rec.SellerID)), nil
	}
	if err != nil {
		return nil, err
	}
	req := mapfront.OpenRequest(rec, storeID)
	if err := req.Validate(); err != nil {
		return domainOr(err, notOpenable)
	}
	if req.ID, err = s.sealID(req.Mobile, req.IDNumber); err != nil {
		return nil, err
	}
	// A record that would take the customer's pending order for the
	// product past its price is that order's overpaid item (SPEC section 6,
	// Merge): the order keeps what it had. One over the price of a new order
	// is overpaid too, with no order to name.
	var o pendingOrder
	err = tx.QueryRow(ctx, `SELECT o.order_id, o.price, o.paid FROM customers c
JOIN card_orders o ON o.customer_id = c.customer_id AND o.product_id = $3 AND o.filling
WHERE c.mobile = $1 AND c.id_index = ANY($2::bytea[]) FOR UPDATE OF o`, rec.Mobile, req.ID.Indexes, p.ID).Scan(&o.id, &o.price, &o.paid)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	if o.id == "" {
		o.price = p.Price
	}
	if over := o.paid + req.PaySum - o.price; over > 0 {
		st.orderID = o.id
		e := recordException(st, mapfront.ExOverpaid, o.price-o.paid, fmt.Sprintf("金额%s元将使订单超过价格%s元（已付%s元），超出%s元",
			mapfront.FormatYuan(req.PaySum), mapfront.FormatYuan(o.price), mapfront.FormatYuan(o.paid), mapfront.FormatYuan(over)))
		return &e, nil
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sp.Rollback(ctx) }() // a no-op once committed or rolled back
	e, err := s.openInSavepoint(ctx, sp, r, st, req, p, notOpenable)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "card_payments_terminal_id_batch_no_terminal_order_id_key" {
			// Another record of the file opened this terminal key first,
			// or a POS did while the run applied (an open_card resent after
			// the day ended: its payment appeared after this record was
			// matched). The item says which, so that people link the two.
			if rerr := sp.Rollback(ctx); rerr != nil {
				return nil, rerr
			}
			var source string
			var paymentID int64
			if err := tx.QueryRow(ctx, `SELECT source, payment_id FROM card_payments
WHERE terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3`, st.rec.TerminalID, st.rec.BatchNo,
				st.rec.TerminalOrderID).Scan(&source, &paymentID); err != nil {
				return nil, err
			}
			detail := "终端流水号已由另一条记录开卡"
			if source == "pos" {
				detail = fmt.Sprintf("日切期间POS已用该终端流水号开卡（付款%d），本记录未对账，请人工核对", paymentID)
			}
			d := recordException(st, mapfront.ExDuplicate, 0, detail)
			return &d, nil
		}
		return nil, err
	}
	if e != nil {
		return e, sp.Rollback(ctx)
	}
	return nil, sp.Commit(ctx)
}

// pendingOrder is the customer's card order still taking payments.
type pendingOrder struct {
	id          string
	price, paid int64
}

// domainOr turns a business error into the exception mk makes of its
// message; other errors stay errors.
func domainOr(err error, mk func(string) *exceptionRow) (*exceptionRow, error) {
	var de *mapfront.Error
	if errors.As(err, &de) {
		return mk(de.Msg), nil
	}
	return nil, err
}

func (s *Store) openInSavepoint(ctx context.Context, tx pgx.Tx, r *run, st *stagedRecord, req *mapfront.OpenCardRequest,
	p *mapfront.Product, notOpenable func(string) *exceptionRow) (*exceptionRow, error) {
	_, o, d, err := s.prepareCardPayment(ctx, tx, req, p)
	if err != nil {
		return domainOr(err, notOpenable)
	}
	const insPayment = `
INSERT INTO card_payments (order_id, seller_id, store_id, terminal_id, batch_no, terminal_order_id, operator_id,
    pay_sum, status, source, business_date, settled, trade_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'paid', 'file', $9, true, $10)
RETURNING payment_id`
	var paymentID int64
	if err := tx.QueryRow(ctx, insPayment, o.id, req.SellerID, req.StoreID, req.TerminalID, req.BatchNo,
		req.TerminalOrderID, req.OperatorID, d.PaySum, r.date, st.rec.TradeID).Scan(&paymentID); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE card_orders SET paid = $2, filling = $3 WHERE order_id = $1`,
		o.id, d.PaidAfter, !d.Complete); err != nil {
		return nil, err
	}
	// The terminal key is now this payment's. Should the POS retransmit
	// the open_card it never got an answer to, it is told the key is used
	// (10003) instead of opening a second card.
	opened := &mapfront.KeyRecord{State: mapfront.KeyDeclined,
		Decline: &mapfront.Error{Code: mapfront.CodeKeyReused, Msg: "该笔开卡已由日切文件开通"}}
	if _, err := tx.Exec(ctx, keyRecordFirstSQL, keyRecordArgs(mapfront.KindOpenCard, req.Key(), opened)...); err != nil {
		return nil, err
	}
	const trade = `
INSERT INTO settlement_trades (trade_id, business_date, run_id, line_no, outcome, payment_id, order_id, amount, applied_at)
VALUES ($1, $2, $3, $4, 'opened', $5, $6, $7, $8)
ON CONFLICT DO NOTHING`
	tag, err := tx.Exec(ctx, trade, st.rec.TradeID, r.date, r.id, st.rec.LineNo, paymentID, o.id, st.rec.Amount, s.clock.Now())
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 0 {
		e := recordException(st, mapfront.ExDuplicate, 0, "交易id已被另一批次入账")
		return &e, nil
	}
	st.orderID = o.id
	return nil, nil
}

// insertExceptions files queue items in one statement; an item whose
// dedupe key the date already holds is the same problem, filed before.
func insertExceptions(ctx context.Context, tx pgx.Tx, date time.Time, runID *int64, now time.Time, ex []exceptionRow) error {
	if len(ex) == 0 {
		return nil
	}
	n := len(ex)
	types, dedupes, tradeIDs, orderIDs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	terms, batches, termOrders, details := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	lineNos, amounts, expected := make([]int64, n), make([]int64, n), make([]int64, n)
	payments := make([]*int64, n)
	for i, e := range ex {
		types[i], dedupes[i], tradeIDs[i], orderIDs[i] = string(e.typ), e.dedupe, e.tradeID, e.orderID
		terms[i], batches[i], termOrders[i], details[i] = e.terminalID, e.batchNo, e.terminalOrderID, truncateUTF8(e.detail, 1024)
		lineNos[i], amounts[i], expected[i], payments[i] = e.lineNo, e.amount, e.expected, e.paymentID
	}
	const q = `
INSERT INTO settlement_exceptions (type, business_date, run_id, dedupe, line_no, trade_id, order_id, payment_id,
    terminal_id, batch_no, terminal_order_id, amount, expected, detail, created_at)
SELECT u.type, $1, $2, u.dedupe, u.line_no, u.trade_id, u.order_id, u.payment_id, u.terminal_id, u.batch_no,
       u.terminal_order_id, u.amount, u.expected, u.detail, $3
FROM unnest($4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[],
            $12::text[], $13::bigint[], $14::bigint[], $15::text[])
     AS u(type, dedupe, line_no, trade_id, order_id, payment_id, terminal_id, batch_no, terminal_order_id, amount,
          expected, detail)
ON CONFLICT (business_date, dedupe) DO NOTHING`
	_, err := tx.Exec(ctx, q, date, runID, now, types, dedupes, lineNos, tradeIDs, orderIDs, payments, terms, batches,
		termOrders, amounts, expected, details)
	return err
}
