package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mapfront/server/internal/mapfront"
)

// Pay is the hot path, so it is written for round trips: one database
// transaction in two pipelined batches. The first claims the terminal key and
// reads, locked, everything the rules need (terminal, customer, accounts, an
// order number); the rules then run here, in Go; the second writes the
// outcome (ledger, order, stored answer) and commits. The SQL is the same
// that a statement-per-round-trip version would send; only the waiting is
// gone.
const (
	// Every request about a pay's terminal key (the pay, its repeats, its
	// reversal) takes this transaction lock first, so they run one after
	// the other and each sees what the one before committed. The unique keys
	// of pay_orders and terminal_requests remain the hard guarantee.
	payKeyLockSQL = `SELECT pg_advisory_xact_lock(hashtextextended('pay|' || $1 || '|' || $2 || '|' || $3, 0))`
	// A decline, a tombstone or a reversal of the key.
	payKeySQL = `SELECT coalesce(fingerprint, ''::bytea), state, errcode, errmsg
FROM terminal_requests WHERE kind = 'pay' AND terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3`
	// An approved pay of the key.
	payOrderByKeySQL = `SELECT ` + payOrderColumns + ` FROM pay_orders
WHERE kind = 'pay' AND terminal_id = $1 AND batch_no = $2 AND terminal_order_id = $3`
	customerByMobileSQL  = `SELECT ` + customerColumns + ` FROM customers WHERE mobile = $1 FOR NO KEY UPDATE`
	customerByAccountSQL = `SELECT ` + customerColumns + ` FROM customers
WHERE customer_id = (SELECT customer_id FROM accounts WHERE account_id = $1 AND kind <> 'system') FOR NO KEY UPDATE`
	payAccountsByMobileSQL = `SELECT a.account_id, a.kind, a.status, a.balance FROM accounts a
JOIN customers c USING (customer_id) WHERE c.mobile = $1 AND a.status = 'active'
ORDER BY a.activated_at, a.account_id FOR NO KEY UPDATE OF a`
	payAccountByIDSQL = `SELECT account_id, kind, status, balance FROM accounts
WHERE account_id = $1 AND kind <> 'system' FOR NO KEY UPDATE`
	payApproveSQL = `
WITH t AS (INSERT INTO ledger_txns (kind, order_id) VALUES ('pay', $1) RETURNING txn_id),
     p AS (INSERT INTO postings (txn_id, account_id, amount)
           SELECT t.txn_id, u.a, u.m FROM t, unnest(ARRAY[$2::text, $3::text], ARRAY[-$4::bigint, $4::bigint]) AS u(a, m))
INSERT INTO pay_orders (order_id, kind, seller_id, store_id, terminal_id, batch_no, terminal_order_id,
    operator_id, consumer_id, account_id, amount, balance_after, status, product_name, product_price,
    product_quantity, remark, business_date, pay_time, fingerprint)
VALUES ($1, 'pay', $5, $6, $7, $8, $9, $10, $11, $2, $4, $12, 'success', $13, $14, $15, $16, $17, $18, $19)`
	payDeclineSQL = `INSERT INTO terminal_requests (kind, terminal_id, batch_no, terminal_order_id, fingerprint, state, errcode, errmsg)
VALUES ('pay', $1, $2, $3, $4, 'done', $5, $6)`
	customerPasswordSQL = `UPDATE customers SET pw_failures = $2, pw_locked = $3 WHERE customer_id = $1`
)

// Pay spends from one account (SPEC section 5): by accountId that account,
// by mobile the account the configured rule chooses; a pay never splits. The
// debit is a posting whose trigger moves the balance under the CHECK that
// keeps it non-negative, in the same transaction as the order and the
// terminal key, so a repeat answers the stored outcome and moves nothing.
// Errors: 10001-10011, 10014, 10015, 10017, 10018.
func (s *Store) Pay(ctx context.Context, r *mapfront.PayRequest) (*mapfront.PaymentAnswer, error) {
	if err := r.Validate(s.policy); err != nil {
		return nil, err
	}
	fp := r.Fingerprint()
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		var a *mapfront.PaymentAnswer
		a, err = s.payOnce(ctx, r, fp)
		if !retryable(err) {
			if err != nil {
				return nil, s.wrap(err)
			}
			return a, nil
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	s.log.Warn("pay retries exhausted", "err", err)
	return nil, mapfront.ErrBusy
}

// payState is what the first batch read.
type payState struct {
	key      *keyState // a stored decline, tombstone or reversal
	order    *payOrder // an approved pay
	term     *terminal
	termErr  error // 10002 when the terminal is not usable
	cust     *customer
	accounts []mapfront.AccountChoice
	orderSeq int64
}

func (s *Store) payOnce(ctx context.Context, r *mapfront.PayRequest, fp []byte) (*mapfront.PaymentAnswer, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	open := true
	defer func() {
		if open { // a transaction left open on a pooled connection would be reused
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	st, err := s.payRead(ctx, conn, r, fp)
	if err != nil {
		return nil, err
	}
	if st.key != nil || st.order != nil {
		return s.payReplay(st, fp)
	}
	a, writes, decline := s.payDecide(r, st, fp)
	code := mapfront.ErrorCode(decline)
	if decline != nil && !code.Stored() {
		return nil, decline // rolled back by the deferred ROLLBACK: nothing happened
	}
	k := r.Key()
	if decline != nil {
		var de *mapfront.Error
		errors.As(decline, &de) // Stored() codes are domain errors
		writes.Queue(payDeclineSQL, k.TerminalID, k.BatchNo, k.TerminalOrderID, fp, int(code), de.Msg)
	}
	writes.Queue("COMMIT")
	if err := conn.SendBatch(ctx, writes).Close(); err != nil {
		if mapfront.ErrorCode(s.wrap(err)) == mapfront.CodeInsufficient {
			// The CHECK refused an overdraft the locks should have made
			// impossible; the transaction is aborted, nothing is stored.
			return nil, s.wrap(err)
		}
		return nil, err
	}
	open = false
	if decline != nil {
		return nil, decline
	}
	return a, nil
}

// payRead sends the first batch: BEGIN, the claim, and the locked reads.
func (s *Store) payRead(ctx context.Context, conn *pgxpool.Conn, r *mapfront.PayRequest, fp []byte) (*payState, error) {
	k := r.Key()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(payKeyLockSQL, k.TerminalID, k.BatchNo, k.TerminalOrderID)
	b.Queue(payKeySQL, k.TerminalID, k.BatchNo, k.TerminalOrderID)
	b.Queue(payOrderByKeySQL, k.TerminalID, k.BatchNo, k.TerminalOrderID)
	b.Queue(terminalSQL, r.TerminalID, r.SellerID, r.StoreID)
	if r.ByMobile() {
		b.Queue(customerByMobileSQL, r.ConsumerID)
		b.Queue(payAccountsByMobileSQL, r.ConsumerID)
	} else {
		b.Queue(customerByAccountSQL, r.ConsumerID)
		b.Queue(payAccountByIDSQL, r.ConsumerID)
	}
	b.Queue(`SELECT nextval('order_seq')`)
	br := conn.SendBatch(ctx, b)
	defer br.Close()

	st := &payState{}
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	var key keyState
	switch err := br.QueryRow().Scan(&key.fingerprint, &key.state, &key.errcode, &key.errmsg); {
	case err == nil:
		st.key = &key
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, err
	}
	switch o, err := scanPayOrder(br.QueryRow()); {
	case err == nil:
		st.order = o
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, err
	}
	if st.term, st.termErr = scanTerminal(br.QueryRow(), r.Origin); mapfront.ErrorCode(st.termErr) == mapfront.CodeInternal {
		return nil, st.termErr
	}
	c, err := scanCustomer(br.QueryRow())
	switch {
	case err == nil:
		st.cust = c
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	if st.accounts, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (mapfront.AccountChoice, error) {
		var a mapfront.AccountChoice
		err := row.Scan(&a.ID, &a.Kind, &a.Status, &a.Balance)
		return a, err
	}); err != nil {
		return nil, err
	}
	if err := br.QueryRow().Scan(&st.orderSeq); err != nil {
		return nil, err
	}
	return st, br.Close()
}

// payDecide applies the rules of SPEC section 5 to what payRead found and
// returns the answer with the writes that make it so (without COMMIT), or
// the decline (with the writes a decline keeps: the password failure count).
func (s *Store) payDecide(r *mapfront.PayRequest, st *payState, fp []byte) (*mapfront.PaymentAnswer, *pgx.Batch, error) {
	writes := &pgx.Batch{}
	if st.termErr != nil {
		return nil, writes, st.termErr
	}
	pin, err := s.openPIN(st.term, r.PINBlock, r.ConsumerID)
	if err != nil {
		return nil, writes, err
	}
	c := st.cust
	if c == nil {
		return nil, writes, mapfront.Errorf(mapfront.CodeNotFound, "消费号码不存在")
	}
	store, failures, locked, decline := s.checkPIN(c, pin)
	if store {
		writes.Queue(customerPasswordSQL, c.id, failures, locked)
	}
	if decline != nil {
		return nil, writes, decline
	}
	var chosen mapfront.AccountChoice
	if r.ByMobile() {
		chosen, err = mapfront.ChooseAccount(st.accounts, r.Sum, s.policy.Accounts)
	} else if len(st.accounts) == 1 {
		chosen = st.accounts[0]
		err = mapfront.CheckAccount(chosen, r.Sum)
	} else {
		err = mapfront.Errorf(mapfront.CodeNotFound, "消费号码不存在")
	}
	if err != nil {
		return nil, writes, err
	}
	now := s.clock.Now()
	orderID := "ud" + now.In(s.clock.Zone).Format("20060102150405") + fmt.Sprintf("%06d", st.orderSeq%1_000_000)
	// The account is locked for this transaction, so its balance after the
	// debit is known here; the CHECK still guards it in the database.
	balance := chosen.Balance - r.Sum
	a := &mapfront.PaymentAnswer{
		OrderID: orderID, ConsumerID: r.ConsumerID, Sum: r.Sum, PayTime: s.clock.FormatTime(now),
		SellerID: r.SellerID, StoreID: r.StoreID, TerminalID: r.TerminalID, OperatorID: r.OperatorID,
		BatchNo: r.BatchNo, TerminalOrderID: r.TerminalOrderID, ProductName: r.ProductName,
		ProductPrice: r.ProductPrice, ProductQuantity: r.ProductQuantity, Remark: r.Remark,
		Status: mapfront.StatusPaid, AccountID: chosen.ID, Balance: &balance,
	}
	writes.Queue(payApproveSQL, orderID, chosen.ID, sysMerchantPayable, r.Sum, r.SellerID, r.StoreID, r.TerminalID,
		r.BatchNo, r.TerminalOrderID, r.OperatorID, r.ConsumerID, balance, r.ProductName, r.ProductPrice,
		r.ProductQuantity, r.Remark, s.clock.BusinessDate(now), now, fp)
	return a, writes, nil
}

// payReplay answers a repeat of a terminal key that already has an outcome
// (SPEC section 5): a reversal tombstone or a reversed pay is 10011, another
// request under the key is 10003, a stored decline is declined again, an
// approved pay is answered again from its order. Nothing moves.
func (s *Store) payReplay(st *payState, fp []byte) (*mapfront.PaymentAnswer, error) {
	k := st.key
	if k == nil { // an approval keeps its outcome in its order
		k = &keyState{fingerprint: st.order.fingerprint, state: "done"}
	}
	if err := k.verdict(fp); err != nil {
		return nil, err
	}
	if st.order == nil {
		return nil, errors.New("pay key holds an approval without its order")
	}
	a := s.payAnswer(st.order)
	return &a, nil
}

// payAnswer is the answer of an approved pay, rebuilt from its order.
func (s *Store) payAnswer(o *payOrder) mapfront.PaymentAnswer {
	balance := o.balanceAfter
	return mapfront.PaymentAnswer{
		OrderID: o.id, ConsumerID: o.consumerID, Sum: o.amount, PayTime: s.clock.FormatTime(o.payTime),
		SellerID: o.sellerID, StoreID: o.storeID, TerminalID: o.term, OperatorID: o.operatorID,
		BatchNo: o.batchNo, TerminalOrderID: o.terminalOrderID, ProductName: o.productName,
		ProductPrice: o.productPrice, ProductQuantity: o.quantity, Remark: o.remark,
		Status: mapfront.StatusPaid, AccountID: o.accountID, Balance: &balance,
	}
}
