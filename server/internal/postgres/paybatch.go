package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"mapfront/server/internal/mapfront"
)

// Group commit of pays (mapfront.PayBatchStore): the load and the write of a
// whole batch of pays, set-based, each one pipelined round trip. What each
// pay reads and writes is what LoadPay and writePay read and write for it.

var _ mapfront.PayBatchStore = (*Store)(nil)

// The batch's locked reads. Customers and accounts are locked in key order
// (ORDER BY with FOR NO KEY UPDATE locks the rows as they come out of the
// sort), after the keys' locks, as every batch does: no cycle between
// batches. $1 mobiles (customers named by mobile), $2 account ids
// (customers named by one of their accounts).
const (
	// UNION rather than OR, so that each arm uses its index.
	batchCustomersSQL = `SELECT ` + customerColumns + ` FROM customers WHERE customer_id IN (
    SELECT customer_id FROM customers WHERE mobile = ANY($1::text[])
    UNION SELECT customer_id FROM accounts WHERE account_id = ANY($2::text[]) AND kind <> 'system')
ORDER BY customer_id FOR NO KEY UPDATE`
	// $1 mobiles whose active accounts a pay chooses from, $2 accounts named
	// by id.
	batchAccountsSQL = `SELECT a.account_id, a.kind, a.status, a.balance, a.customer_id, a.activated_at FROM accounts a
WHERE a.account_id IN (
    SELECT x.account_id FROM accounts x JOIN customers c USING (customer_id)
    WHERE c.mobile = ANY($1::text[]) AND x.status = 'active'
    UNION SELECT account_id FROM accounts WHERE account_id = ANY($2::text[]) AND kind <> 'system')
ORDER BY a.account_id FOR NO KEY UPDATE`
	// $1 terminal ids (repeats allowed). Locked in terminal_id order, after
	// the keys and before the customers, as LoadPay locks its terminal.
	batchTerminalsSQL = `SELECT t.terminal_id, t.seller_id, t.store_id,
    t.tpk_sealed, t.legacy_des, t.enabled AND st.enabled AND se.enabled,
    t.pin_failures, t.pin_window_start, t.pin_suspended_until
FROM terminals t
JOIN stores st ON st.seller_id = t.seller_id AND st.store_id = t.store_id
JOIN sellers se ON se.seller_id = t.seller_id
WHERE t.terminal_id = ANY($1::text[])
ORDER BY t.terminal_id FOR NO KEY UPDATE OF t`
	// Each key one lookup of the unique key (LATERAL .. LIMIT 1: see
	// keyRecordManySQL).
	batchPayOrdersSQL = `SELECT u.n, p.* FROM unnest($1::text[], $2::text[], $3::text[])
    WITH ORDINALITY AS u(t, b, o, n)
CROSS JOIN LATERAL (SELECT ` + payOrderColumns + ` FROM pay_orders
    WHERE kind = 'pay' AND terminal_id = u.t AND batch_no = u.b AND terminal_order_id = u.o LIMIT 1) p`
	batchOrderSeqSQL = `SELECT nextval('order_seq') FROM generate_series(1, $1)`
)

// batchLockTimeout bounds how long a batch's load waits for a lock: a row
// held elsewhere for longer (a long transaction on one customer's accounts)
// fails the batch's load with lock_not_available, a refusal that rolls the
// batch back, so that its pays run one at a time and only the pay that
// needs that row waits for it; the next batch does not wait behind it
// either. Batches wait on each other's locks for a commit's time, far
// less.
const batchLockTimeout = time.Second

// batchTerminal is a terminal row of a batch load, with the seller and
// store it belongs to (a request names all three; terminalSQL matches them).
type batchTerminal struct {
	mapfront.TerminalState
	id, seller, store string
}

// batchAccount is an account row of a batch load.
type batchAccount struct {
	mapfront.AccountChoice
	customerID  int64
	activatedAt *time.Time
}

// LoadPays implements mapfront.PayBatchStore.
func (s *Store) LoadPays(ctx context.Context, rs []*mapfront.PayRequest) ([]*mapfront.PayState, mapfront.Unit[[]*mapfront.PayOutcome], error) {
	b := &pgx.Batch{}
	l := queuePayLoad(b, rs)
	u, err := begin(ctx, s, "pay batch", b, l.write)
	if err != nil {
		return nil, nil, rolledBack(err)
	}
	sts, err := l.states()
	if err != nil {
		u.Rollback()
		return nil, nil, rolledBack(err)
	}
	return sts, batchUnit{u}, nil
}

// payLoad is a batch's transaction begun and its load queued in a
// pgx.Batch, filled as the batch's results are read; states assembles it
// once they all have been.
type payLoad struct {
	rs        []*mapfront.PayRequest
	records   []*mapfront.KeyRecord
	paid      []*mapfront.PayOrder
	terminals map[string]batchTerminal
	customers []*mapfront.Customer
	accounts  []batchAccount
	seqs      []int64
	// The terminals' wrong-PIN guards as loaded: the batch holds their rows,
	// so its write sets each to the loaded guard with the batch's wrong PINs
	// counted in arrival order (mapfront.PINGuard.Next).
	guards map[string]mapfront.PINGuard
}

// queuePayLoad queues BEGIN and the locked reads of the batch rs into b.
func queuePayLoad(b *pgx.Batch, rs []*mapfront.PayRequest) *payLoad {
	l := &payLoad{rs: rs, records: make([]*mapfront.KeyRecord, len(rs)), paid: make([]*mapfront.PayOrder, len(rs)),
		terminals: map[string]batchTerminal{}, guards: map[string]mapfront.PINGuard{}}
	keys := make([]mapfront.TerminalKey, len(rs))
	var custMobiles, custAccounts, acctMobiles, acctIDs []string
	for i, r := range rs {
		keys[i] = r.Key()
		// As LoadPay: the customer by mobile when consumerId is a mobile
		// number, the accounts by mobile when the pay is by mobile.
		if mapfront.ValidMobile(r.ConsumerID) {
			custMobiles = append(custMobiles, r.ConsumerID)
		} else {
			custAccounts = append(custAccounts, r.ConsumerID)
		}
		if r.ByMobile() {
			acctMobiles = append(acctMobiles, r.ConsumerID)
		} else {
			acctIDs = append(acctIDs, r.ConsumerID)
		}
	}

	// The transaction's settings in one statement: keyed plans (as
	// beginBatch; measured before them: the batch's pay_orders lookup grew
	// to 2 ms per batch within a 20 s run), generic plans (the batch's
	// statements are keyed lookups whatever the arrays hold, and a custom
	// plan for each batch cost more planning than execution: the customers'
	// load planned 165 µs per batch) and the lock timeout.
	b.Queue("BEGIN")
	b.Queue(`SELECT set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
       set_config('enable_mergejoin', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true),
       set_config('lock_timeout', $1, true)`, fmt.Sprint(batchLockTimeout.Milliseconds()))
	queueKeyLoads(b, mapfront.KindPay, keys, l.records)
	ts, bs, os := keyArrays(keys)
	b.Queue(batchPayOrdersSQL, ts, bs, os).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var n int64
			o, err := scanPayOrder(scanWithIndex{rows, &n})
			if err != nil {
				return err
			}
			l.paid[n-1] = o
		}
		return rows.Err()
	})
	// Terminals: every terminal the batch names, locked in terminal_id
	// order (as LoadPay locks its one), with its store and seller.
	terminalIDs := make([]string, 0, len(rs))
	for _, r := range rs {
		terminalIDs = append(terminalIDs, r.TerminalID)
	}
	b.Queue(batchTerminalsSQL, terminalIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var t batchTerminal
			if err := scanTerminal(rows, &t.TerminalState, &t.id, &t.seller, &t.store); err != nil {
				return err
			}
			l.terminals[t.id] = t
		}
		return rows.Err()
	})
	b.Queue(batchCustomersSQL, custMobiles, custAccounts).Query(func(rows pgx.Rows) error {
		var err error
		l.customers, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*mapfront.Customer, error) {
			return scanCustomer(row)
		})
		return err
	})
	b.Queue(batchAccountsSQL, acctMobiles, acctIDs).Query(func(rows pgx.Rows) error {
		var err error
		l.accounts, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (batchAccount, error) {
			var a batchAccount
			err := row.Scan(&a.ID, &a.Kind, &a.Status, &a.Balance, &a.customerID, &a.activatedAt)
			return a, err
		})
		return err
	})
	b.Queue(batchOrderSeqSQL, len(rs)).Query(func(rows pgx.Rows) error {
		var err error
		l.seqs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	return l
}

// write queues the batch's outcomes (writePays) with the guards as loaded.
func (l *payLoad) write(b *pgx.Batch, outs []*mapfront.PayOutcome) error {
	return writePays(b, outs, l.guards)
}

// states assembles the loaded rows into each request's state, in the order
// of the requests.
func (l *payLoad) states() ([]*mapfront.PayState, error) {
	rs := l.rs
	if len(l.seqs) != len(rs) {
		return nil, classify("pay batch load", errShortSeq, false)
	}
	byMobile := map[string]*mapfront.Customer{}
	byID := map[int64]*mapfront.Customer{}
	for _, c := range l.customers {
		byMobile[c.Mobile], byID[c.ID] = c, c
	}
	for id, t := range l.terminals {
		l.guards[id] = t.PINGuard
	}
	accountByID := map[string]batchAccount{}
	// A customer's active accounts in activation order, as
	// payAccountsByMobileSQL orders them (NULLs last, then account id).
	active := map[int64][]batchAccount{}
	for _, a := range l.accounts {
		accountByID[a.ID] = a
		if a.Status == mapfront.Active {
			active[a.customerID] = append(active[a.customerID], a)
		}
	}
	for _, as := range active {
		sort.SliceStable(as, func(i, j int) bool {
			x, y := as[i].activatedAt, as[j].activatedAt
			switch {
			case x == nil || y == nil:
				return x != nil && y == nil
			case !x.Equal(*y):
				return x.Before(*y)
			}
			return as[i].ID < as[j].ID
		})
	}
	sts := make([]*mapfront.PayState, len(rs))
	for i, r := range rs {
		st := &mapfront.PayState{Key: l.records[i], Paid: l.paid[i], OrderSeq: l.seqs[i]}
		sts[i] = st
		if t, ok := l.terminals[r.TerminalID]; ok && t.seller == r.SellerID && t.store == r.StoreID {
			st.Terminal = t.TerminalState
		}
		if mapfront.ValidMobile(r.ConsumerID) {
			st.Customer = copyCustomer(byMobile[r.ConsumerID])
		} else if a, ok := accountByID[r.ConsumerID]; ok {
			st.Customer = copyCustomer(byID[a.customerID])
		}
		if r.ByMobile() {
			if c := byMobile[r.ConsumerID]; c != nil {
				for _, a := range active[c.ID] {
					st.Accounts = append(st.Accounts, a.AccountChoice)
				}
			}
		} else if a, ok := accountByID[r.ConsumerID]; ok {
			st.Accounts = []mapfront.AccountChoice{a.AccountChoice}
		}
	}
	return sts, nil
}

// errShortSeq: the order numbers read were fewer than the pays.
var errShortSeq = errorString("order numbers: fewer than the pays")

type errorString string

func (e errorString) Error() string { return string(e) }

// copyCustomer gives each state its own customer, so that no request's
// state aliases another's.
func copyCustomer(c *mapfront.Customer) *mapfront.Customer {
	if c == nil {
		return nil
	}
	cp := *c
	return &cp
}

// scanWithIndex scans a row whose first column is an index into n and the
// rest into what the scan is given.
type scanWithIndex struct {
	rows pgx.Rows
	n    *int64
}

func (s scanWithIndex) Scan(dest ...any) error { return s.rows.Scan(append([]any{s.n}, dest...)...) }

// batchUnit is the batch's unit: its Persist marks a failure that certainly
// rolled back as *mapfront.RolledBack, so that the service runs the pays one
// at a time.
type batchUnit struct{ *unit[[]*mapfront.PayOutcome] }

func (u batchUnit) Persist(ctx context.Context, outs []*mapfront.PayOutcome) error {
	return rolledBack(u.unit.Persist(ctx, outs))
}

var _ mapfront.PayBatchUnit = batchUnit{}

// PersistLoad implements mapfront.PayBatchUnit: the batch's writes and
// COMMIT, then on the same connection BEGIN and the load of the batch rs
// (as LoadPays), in one pipelined round trip. The backend runs the next
// batch's load as soon as this one has committed, without waiting for the
// service to read the commit and send the load.
func (u batchUnit) PersistLoad(ctx context.Context, outs []*mapfront.PayOutcome, rs []*mapfront.PayRequest, committed func()) (
	[]*mapfront.PayState, mapfront.PayBatchUnit, error, error) {
	if u.conn == nil {
		return nil, nil, errNotLoaded, errors.New("store: " + u.what + ": persist after the unit ended")
	}
	b := &pgx.Batch{}
	if err := u.write(b, outs); err != nil {
		return nil, nil, errNotLoaded, rolledBack(err)
	}
	b.Queue("COMMIT")
	throughCommit := b.Len() // the writes and COMMIT come first
	// The backend sends what it has written only at a Sync (this round
	// trip's one is at its end) or when its output buffer (8 KiB) is full:
	// without this row, the COMMIT's result would reach the service only
	// once the next batch's load is done (up to lock_timeout when a row
	// lock holds it), and a batch whose context ended meanwhile would answer
	// 10000 although it committed. A row larger than the buffer makes the
	// backend send the COMMIT's result as soon as it has run.
	b.Queue(flushOutputSQL)
	l := queuePayLoad(b, rs)
	br := u.conn.SendBatch(ctx, b)
	var err error
	for i := 0; i < throughCommit && err == nil; i++ {
		if fn := b.QueuedQueries[i].Fn; fn != nil {
			err = fn(br)
		} else {
			_, err = br.Exec()
		}
	}
	if err != nil {
		// As Persist: a statement failed (then the backend ran nothing
		// after it, COMMIT included), or the connection did (then COMMIT
		// may have run if it was sent). The next batch was not loaded.
		_ = br.Close()
		u.Rollback()
		return nil, nil, errNotLoaded, rolledBack(classify(u.what+" persist", err, !pgconn.SafeToRetry(err)))
	}
	// Committed: told before the next batch's results are read, so that
	// this batch's answers do not wait for the next one's load. What follows
	// is the next batch's transaction, on the same connection, which passes
	// to the next unit.
	committed()
	next := &unit[[]*mapfront.PayOutcome]{conn: u.conn, what: u.what, write: l.write}
	u.conn = nil
	if err := br.Close(); err != nil {
		next.Rollback()
		return nil, nil, rolledBack(classify(next.what+" load", err, false)), nil
	}
	sts, err := l.states()
	if err != nil {
		next.Rollback()
		return nil, nil, rolledBack(err), nil
	}
	return sts, batchUnit{next}, nil, nil
}

// flushOutputSQL returns a row larger than the backend's output buffer
// (PQ_SEND_BUFFER_SIZE, 8192 bytes), which makes it send all it holds.
const flushOutputSQL = `SELECT repeat(' ', 8192)`

// errNotLoaded is PersistLoad's load error when the batch's own write
// failed: the next batch was not loaded (its load is to be sent again).
var errNotLoaded = &mapfront.Transient{Err: errors.New("store: pay batch load: not sent, the batch before it failed")}

// insertPayOrdersTail inserts the batch's approved pays after
// ledgerManyCTE, from $6 on.
const insertPayOrdersTail = `INSERT INTO pay_orders (order_id, kind, seller_id, store_id, terminal_id, batch_no,
    terminal_order_id, operator_id, consumer_id, account_id, amount, balance_after, status,
    product_name, product_price, product_quantity, remark, business_date, pay_time, fingerprint)
SELECT o, 'pay', se, st, te, ba, tor, op, co, ac, am, bal, 'success', pn, pp, pq, re, bd, pt, fp
FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
    $14::text[], $15::bigint[], $16::bigint[], $17::text[], $18::bigint[], $19::text[], $20::text[], $21::date[],
    $22::timestamptz[], $23::bytea[])
    AS u(o, se, st, te, ba, tor, op, co, ac, am, bal, pn, pp, pq, re, bd, pt, fp)`

// customerPasswordsSQL writes many customers' password counts and, where a
// password verified under an old master key, its new hash (as
// customerPasswordSQL does for one). $1 ids, $2 failures, $3 locks, $4
// hashes (NULL: keep).
const customerPasswordsSQL = `UPDATE customers c SET pw_failures = u.f, pw_locked = u.l, pw_hash = coalesce(u.h, c.pw_hash)
FROM unnest($1::bigint[], $2::int[], $3::bool[], $4::bytea[]) AS u(id, f, l, h) WHERE c.customer_id = u.id`

// terminalGuardsSQL sets many terminals' wrong-PIN guards (rows the batch
// holds locked since its load). $1 ids, $2 failures, $3 window starts, $4
// ends of suspension (NULL: none).
const terminalGuardsSQL = `UPDATE terminals t SET pin_failures = u.f, pin_window_start = u.w, pin_suspended_until = u.s
FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::timestamptz[]) AS u(id, f, w, s) WHERE t.terminal_id = u.id`

// writePays queues the batch's outcomes: the password counts (each
// customer's last), the terminals' wrong-PIN guards (guards, as loaded,
// with the batch's wrong PINs counted in order), the declined keys'
// records, the approved pays with their ledger transactions; one statement
// each.
func writePays(b *pgx.Batch, outs []*mapfront.PayOutcome, guards map[string]mapfront.PINGuard) error {
	lastPW := map[int64]int{}
	rehash := map[int64][]byte{}
	var declinedKeys []mapfront.TerminalKey
	var declined []*mapfront.KeyRecord
	var approved []*mapfront.PayOrder
	var counted []string // terminals with wrong PINs, in first-counted order
	next := map[string]mapfront.PINGuard{}
	for i, o := range outs {
		if o.Password != nil {
			lastPW[o.Password.CustomerID] = i
			if o.Password.Rehash != nil {
				rehash[o.Password.CustomerID] = o.Password.Rehash
			}
			if f := o.Password.Terminal; f != nil {
				g, ok := next[f.TerminalID]
				if !ok {
					g = guards[f.TerminalID]
					counted = append(counted, f.TerminalID)
				}
				next[f.TerminalID] = g.Next(*f)
			}
		}
		if o.Declined != nil {
			declinedKeys, declined = append(declinedKeys, o.Key), append(declined, o.Declined)
		}
		if o.Approved != nil {
			approved = append(approved, o.Approved)
		}
	}
	if len(lastPW) > 0 {
		var ids []int64
		var failures []int32
		var locks []bool
		var hashes [][]byte
		for i, o := range outs {
			if p := o.Password; p != nil && lastPW[p.CustomerID] == i {
				ids, failures, locks = append(ids, p.CustomerID), append(failures, int32(p.Failures)), append(locks, p.Locked)
				hashes = append(hashes, rehash[p.CustomerID])
			}
		}
		b.Queue(customerPasswordsSQL, ids, failures, locks, hashes)
	}
	if len(counted) > 0 {
		failures, starts, ends := make([]int32, len(counted)), make([]time.Time, len(counted)), make([]*time.Time, len(counted))
		for i, id := range counted {
			g := next[id]
			failures[i], starts[i] = int32(g.Failures), g.WindowStart
			if !g.SuspendedUntil.IsZero() {
				ends[i] = &g.SuspendedUntil
			}
		}
		b.Queue(terminalGuardsSQL, counted, failures, starts, ends)
	}
	if len(declined) > 0 {
		queueKeyRecords(b, mapfront.KindPay, declinedKeys, declined)
	}
	if len(approved) == 0 {
		return nil
	}
	// The flat arrays (arrays.go) as the arguments themselves: the bytes
	// pgx sends for the slices, without boxing each slice a second time.
	n := len(approved)
	ids, legs := make(textArray, n), make([][]mapfront.Leg, n)
	sellers, stores, terminals, batches := make(textArray, n), make(textArray, n), make(textArray, n), make(textArray, n)
	torders, operators, consumers, accounts := make(textArray, n), make(textArray, n), make(textArray, n), make(textArray, n)
	amounts, after, prices := make(int8Array, n), make(int8Array, n), make(int8Array, n)
	names, quantities, remarks := make(textArray, n), make(textArray, n), make(textArray, n)
	dates, times, fps := make(timeArray, n), make(timeArray, n), make(byteaArray, n)
	for i, o := range approved {
		ids[i], legs[i] = o.ID, mapfront.PayLegs(o)
		sellers[i], stores[i], terminals[i], batches[i] = o.SellerID, o.StoreID, o.TerminalID, o.BatchNo
		torders[i], operators[i], consumers[i], accounts[i] = o.TerminalOrderID, o.OperatorID, o.ConsumerID, o.AccountID
		amounts[i], after[i], prices[i] = o.Amount, o.BalanceAfter, o.ProductPrice
		names[i], quantities[i], remarks[i] = o.ProductName, o.ProductQuantity, o.Remark
		dates[i], times[i], fps[i] = o.BusinessDate, o.PayTime, o.Fingerprint
	}
	args, err := ledgerManyArgs("pay", ids, legs)
	if err != nil {
		return err
	}
	b.Queue(ledgerManyCTE+insertPayOrdersTail, append(args, ids, sellers, stores, terminals, batches, torders,
		operators, consumers, accounts, amounts, after, names, prices, quantities, remarks, dates, times, fps)...)
	return nil
}
