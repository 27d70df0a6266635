package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mapfront/server/internal/mapfront"
)

// The cards of a slice opened from the file (未开通, SPEC section 6), the
// last pass of step 3. The common case, a new customer whose record opens a
// new order, is written set-based: one statement per table for the slice.
// Every other record (an existing customer, a mobile number, ID number or
// terminal key that two records of the slice share, an unknown product or
// terminal, a record the rules refuse) is opened one by one by
// openFromFile, which decides and files its exception. Should a set-based
// statement fail, or a 交易id turn out taken, the whole set is undone and
// opened one by one too, so that one bad record never fails the others.

// fileCard is a record that opens a new customer's card set-based.
type fileCard struct {
	st      *stagedRecord
	req     *mapfront.OpenCardRequest
	product *mapfront.Product
	pay     mapfront.CardPayment
	pwHash  []byte
}

// openAll opens the cards of opens (in line order) and returns the
// exceptions of those that could not be opened, in line order.
func (s *Store) openAll(ctx context.Context, tx pgx.Tx, r *run, opens []*stagedRecord, products map[string]*mapfront.Product) ([]exceptionRow, error) {
	fast, err := s.newCustomerCards(ctx, tx, opens, products)
	if err != nil {
		return nil, err
	}
	if len(fast) > 0 {
		ok, err := s.openSetBased(ctx, tx, r, fast)
		if err != nil {
			return nil, err
		}
		if !ok {
			fast = nil
		}
	}
	done := make(map[*stagedRecord]bool, len(fast))
	for _, c := range fast {
		done[c.st] = true
	}
	var exceptions []exceptionRow
	for _, st := range opens {
		if done[st] {
			continue
		}
		e, err := s.openFromFile(ctx, tx, r, st, products)
		if err != nil {
			return nil, err
		}
		if e != nil {
			exceptions = append(exceptions, *e)
		}
	}
	return exceptions, nil
}

// newCustomerCards picks the records of opens that open a card for a
// customer the store does not know, with nothing else of the slice naming
// their mobile number, ID number or terminal key, and that the rules accept
// as they stand: what openFromFile would do for them needs no decision that
// another record can change.
func (s *Store) newCustomerCards(ctx context.Context, tx pgx.Tx, opens []*stagedRecord, products map[string]*mapfront.Product) ([]fileCard, error) {
	if len(opens) == 0 {
		return nil, nil
	}
	count := map[string]int{}
	mobiles := make([]string, 0, len(opens))
	terminals := make([]string, 0, len(opens))
	for _, st := range opens {
		count["m|"+st.rec.Mobile]++
		count["i|"+st.rec.IDNumber]++
		count["k|"+st.rec.TerminalID+"|"+st.rec.BatchNo+"|"+st.rec.TerminalOrderID]++
		mobiles = append(mobiles, st.rec.Mobile)
		terminals = append(terminals, st.rec.TerminalID)
	}
	known := map[string]bool{}
	rows, err := tx.Query(ctx, `SELECT mobile FROM customers WHERE mobile = ANY($1)`, mobiles)
	if err != nil {
		return nil, err
	}
	existing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, m := range existing {
		known[m] = true
	}
	rows, err = tx.Query(ctx, `SELECT terminal_id, seller_id, store_id FROM terminals WHERE terminal_id = ANY($1)`, terminals)
	if err != nil {
		return nil, err
	}
	stores := map[string]string{}
	for rows.Next() {
		var t, seller, store string
		if err := rows.Scan(&t, &seller, &store); err != nil {
			rows.Close()
			return nil, err
		}
		stores[t+"|"+seller] = store
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []fileCard
	for _, st := range opens {
		rec := &st.rec
		p := products[rec.ProductID]
		store, registered := stores[rec.TerminalID+"|"+rec.SellerID]
		if p == nil || !registered || known[rec.Mobile] || count["m|"+rec.Mobile] > 1 || count["i|"+rec.IDNumber] > 1 ||
			count["k|"+rec.TerminalID+"|"+rec.BatchNo+"|"+rec.TerminalOrderID] > 1 {
			continue
		}
		req := mapfront.OpenRequest(rec, store)
		if req.Validate() != nil {
			continue
		}
		d, err := mapfront.DecideCardPayment(p.Price, 0, req)
		if err != nil {
			continue
		}
		if req.ID, err = s.sealID(req.Mobile, req.IDNumber); err != nil {
			return nil, err
		}
		hash, err := s.newPW(req.IDNumber)
		if err != nil {
			return nil, err
		}
		out = append(out, fileCard{st: st, req: req, product: p, pay: d, pwHash: hash})
	}
	return out, nil
}

// openSetBased opens cards in a savepoint, as openFromFile would open each:
// the customer with a cash account, a pending card account and its order,
// the payment (confirmed), the terminal key's record and the 交易id. It
// reports false, with nothing written, when a statement fails on a
// constraint or a 交易id is already taken: the caller then opens them one
// by one.
func (s *Store) openSetBased(ctx context.Context, tx pgx.Tx, r *run, cards []fileCard) (bool, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = sp.Rollback(ctx) }() // a no-op once committed or rolled back
	err = s.writeOpenCards(ctx, sp, r, cards)
	if err == errOpenTaken || isConstraint(err) {
		return false, sp.Rollback(ctx)
	}
	if err != nil {
		return false, err
	}
	return true, sp.Commit(ctx)
}

// errOpenTaken: a 交易id of the set was applied by another run meanwhile.
var errOpenTaken = errors.New("settlement: a 交易id of the openings is taken")

// isConstraint reports whether err is an integrity constraint violation
// (SQLSTATE class 23: a unique key, a foreign key, a CHECK).
func isConstraint(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && len(pe.Code) == 5 && pe.Code[:2] == "23"
}

func (s *Store) writeOpenCards(ctx context.Context, tx pgx.Tx, r *run, cards []fileCard) error {
	n := len(cards)
	mobiles, masked := make([]string, n), make([]string, n)
	sealed, indexes, hashes := make([][]byte, n), make([][]byte, n), make([][]byte, n)
	for i, c := range cards {
		mobiles[i], masked[i] = c.req.Mobile, c.req.ID.Masked
		sealed[i], indexes[i], hashes[i] = c.req.ID.Sealed, c.req.ID.Index(), c.pwHash
	}
	rows, err := tx.Query(ctx, `INSERT INTO customers (mobile, id_sealed, id_index, id_masked, pw_hash)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[], $5::bytea[])
RETURNING customer_id, mobile`, mobiles, sealed, indexes, masked, hashes)
	if err != nil {
		return err
	}
	customerOf := make(map[string]int64, n)
	for rows.Next() {
		var id int64
		var m string
		if err := rows.Scan(&id, &m); err != nil {
			rows.Close()
			return err
		}
		customerOf[m] = id
	}
	if err := rows.Err(); err != nil {
		return err
	}
	seq := func(name string, k int) ([]int64, error) {
		rows, err := tx.Query(ctx, `SELECT nextval($1::regclass) FROM generate_series(1, $2::int)`, name, k)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	accountSeq, err := seq("account_seq", 2*n)
	if err != nil {
		return err
	}
	orderSeq, err := seq("order_seq", n)
	if err != nil {
		return err
	}
	now, today := s.clock.Now(), s.clock.Today()
	accIDs, accKinds, accStatus, accProducts := make([]string, 0, 2*n), make([]string, 0, 2*n), make([]string, 0, 2*n), make([]*string, 0, 2*n)
	accCustomers, accActivated := make([]int64, 0, 2*n), make([]*time.Time, 0, 2*n)
	orderIDs, cardAccounts := make([]string, n), make([]string, n)
	for i, c := range cards {
		cust := customerOf[c.req.Mobile]
		product := c.product.ID
		cash, card := mapfront.AccountID(mapfront.CashPrefix, accountSeq[2*i]), mapfront.AccountID(product, accountSeq[2*i+1])
		accIDs, accKinds, accStatus = append(accIDs, cash, card), append(accKinds, "cash", "card"),
			append(accStatus, string(mapfront.Active), string(mapfront.Pending))
		accProducts, accCustomers, accActivated = append(accProducts, nil, &product), append(accCustomers, cust, cust),
			append(accActivated, &now, nil)
		orderIDs[i], cardAccounts[i] = mapfront.OrderID(s.clock, now, orderSeq[i]), card
	}
	if _, err := tx.Exec(ctx, `INSERT INTO accounts (account_id, kind, customer_id, product_id, status, activated_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[])`,
		accIDs, accKinds, accCustomers, accProducts, accStatus, accActivated); err != nil {
		return err
	}
	customers, products, referrers := make([]int64, n), make([]string, n), make([]string, n)
	prices, faces, installments, paid, filling := make([]int64, n), make([]int64, n), make([]int32, n), make([]int64, n), make([]bool, n)
	sellers, stores, terms, batches, torders, operators := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	sums, trades, lines, amounts := make([]int64, n), make([]string, n), make([]int64, n), make([]int64, n)
	for i, c := range cards {
		p := c.product
		customers[i], products[i], referrers[i] = customerOf[c.req.Mobile], p.ID, c.req.Referrer
		prices[i], faces[i], installments[i] = p.Price, p.FaceValue, int32(p.Installments)
		paid[i], filling[i] = c.pay.PaidAfter, !c.pay.Complete
		sellers[i], stores[i], terms[i], batches[i], torders[i], operators[i] = c.req.SellerID, c.req.StoreID,
			c.req.TerminalID, c.req.BatchNo, c.req.TerminalOrderID, c.req.OperatorID
		sums[i], trades[i], lines[i], amounts[i] = c.pay.PaySum, c.st.rec.TradeID, c.st.rec.LineNo, c.st.rec.Amount
	}
	if _, err := tx.Exec(ctx, `INSERT INTO card_orders (order_id, customer_id, product_id, account_id, price, face_value,
    installments, status, referrer, business_date, paid, filling)
SELECT u.order_id, u.customer_id, u.product_id, u.account_id, u.price, u.face_value, u.installments, 'pending',
       u.referrer, $1, u.paid, u.filling
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::int[], $9::text[],
            $10::bigint[], $11::boolean[])
     AS u(order_id, customer_id, product_id, account_id, price, face_value, installments, referrer, paid, filling)`,
		today, orderIDs, customers, products, cardAccounts, prices, faces, installments, referrers, paid, filling); err != nil {
		return err
	}
	// The payments, the terminal keys' records (should the POS retransmit
	// the open_card it never got an answer to, it is told the key is used,
	// 10003, as openInSavepoint says) and the 交易ids, in one statement.
	opened := &mapfront.KeyRecord{State: mapfront.KeyDeclined,
		Decline: &mapfront.Error{Code: mapfront.CodeKeyReused, Msg: "该笔开卡已由日切文件开通"}}
	keyArgs := keyRecordArgs(mapfront.KindOpenCard, mapfront.TerminalKey{}, opened)
	const q = `
WITH p AS (
    INSERT INTO card_payments (order_id, seller_id, store_id, terminal_id, batch_no, terminal_order_id, operator_id,
        pay_sum, status, source, business_date, settled, trade_id)
    SELECT u.order_id, u.seller_id, u.store_id, u.terminal_id, u.batch_no, u.terminal_order_id, u.operator_id,
           u.pay_sum, 'paid', 'file', $1, true, u.trade_id
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[],
                $10::text[])
         AS u(order_id, seller_id, store_id, terminal_id, batch_no, terminal_order_id, operator_id, pay_sum, trade_id)
    RETURNING payment_id, order_id, terminal_id, batch_no, terminal_order_id, trade_id),
     k AS (
    INSERT INTO terminal_requests (kind, terminal_id, batch_no, terminal_order_id, fingerprint, state, errcode, errmsg,
        answer, reversal)
    SELECT $11, p.terminal_id, p.batch_no, p.terminal_order_id, $12, $13, $14, $15, $16::jsonb, $17::jsonb FROM p
    ON CONFLICT DO NOTHING),
     t AS (
    INSERT INTO settlement_trades (trade_id, business_date, run_id, line_no, outcome, payment_id, order_id, amount,
        applied_at)
    SELECT p.trade_id, $1, $18, u.line_no, 'opened', p.payment_id, p.order_id, u.amount, $19
    FROM p JOIN unnest($10::text[], $20::bigint[], $21::bigint[]) AS u(trade_id, line_no, amount) ON u.trade_id = p.trade_id
    ON CONFLICT DO NOTHING
    RETURNING 1)
SELECT count(*) FROM t`
	var applied int
	if err := tx.QueryRow(ctx, q, r.date, orderIDs, sellers, stores, terms, batches, torders, operators, sums, trades,
		keyArgs[0], keyArgs[4], keyArgs[5], keyArgs[6], keyArgs[7], keyArgs[8], keyArgs[9],
		r.id, now, lines, amounts).Scan(&applied); err != nil {
		return err
	}
	if applied != n {
		return errOpenTaken
	}
	for i := range cards {
		cards[i].st.orderID = orderIDs[i]
	}
	return nil
}
