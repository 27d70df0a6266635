package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
)

// System accounts of migration 0001 (mapfront.Sys*).
const (
	sysCardSales       = mapfront.SysCardSales
	sysDiscount        = mapfront.SysDiscount
	sysInstallment     = mapfront.SysInstallment
	sysMerchantPayable = mapfront.SysMerchantPayable
	sysTopUp           = mapfront.SysTopUp
)

// posting is one leg as the settlement side writes it: amount in fen,
// positive credits the account's balance, negative debits it.
type posting struct {
	account string
	amount  int64
}

// The rule for every writer of the ledger: all the legs of one ledger
// transaction are inserted by ONE statement, the one writer (ledgerCTE, or
// ledgerManyCTE for many transactions, as group commit and settlement's
// creditOrders write them). That statement does the ledger's work itself,
// set-based (migration 0021): it moves each customer account named once, by
// the sum of its legs in the statement (so an overdraft fails right there
// with balance_non_negative, SQLSTATE 23514), and inserts a leg only if its
// transaction's legs sum to zero and its account is a system account or a
// customer account it moved; otherwise it fails with 23000 (does not
// balance) or 23503 (unknown account), through ledger_refused. Its legs are
// joined to the ledger transactions it inserts, so none is of no
// transaction. As the ledger is append-only, every transaction sums to zero
// over all its postings. In the same write a pending card account becomes
// active (with its order's activated_at) when its order is already active
// and credited: settlement marks its orders first, so an activated card's
// account is written once (0014); the other activation paths post first and
// set the account afterwards.
//
// The writer marks its transaction (mapfront.ledger_writer); any other
// statement that inserts postings, in a transaction the writer has not
// marked, is checked by the statement trigger postings_apply (0010, 0013,
// 0014), which refuses the same things. No code inserts postings but the
// writer (TestOnlyTheWriterInsertsPostings).

// ledgerMark marks the writer's transaction, so that the trigger, which
// would repeat the writer's work, does not run (migration 0021). Every leg
// (l) is read through it, so the mark is set before the postings' insert
// ends, whichever of the statement's parts PostgreSQL runs first (the
// trigger's WHEN is evaluated as that insert ends).
const ledgerMark = `w AS (SELECT set_config('mapfront.ledger_writer', 'on', true) AS on_)`

// ledgerMove moves the customer accounts of the legs l (a account, m
// amount) by their sums (d), as one UPDATE reached by key, and c tells
// whether every customer account named was moved. A pending card account
// whose order is active and credited becomes active with it (0014).
const ledgerMove = `
     d AS (SELECT a, sum(m) AS delta FROM l WHERE a NOT LIKE 'SYS-%' GROUP BY a),
     b AS (UPDATE accounts x SET balance = x.balance + d.delta,
                  status = CASE WHEN x.status = 'pending' AND x.kind = 'card' AND EXISTS
                                     (SELECT 1 FROM card_orders o WHERE o.account_id = x.account_id
                                         AND o.status = 'active' AND o.credited)
                                THEN 'active' ELSE x.status END,
                  activated_at = CASE WHEN x.status = 'pending' AND x.kind = 'card'
                                      THEN coalesce((SELECT o.activated_at FROM card_orders o
                                                      WHERE o.account_id = x.account_id
                                                        AND o.status = 'active' AND o.credited),
                                                    x.activated_at)
                                      ELSE x.activated_at END
           FROM d WHERE x.account_id = d.a AND x.kind <> 'system' RETURNING x.account_id),
     c AS (SELECT (SELECT count(*) FROM d) = (SELECT count(*) FROM b) AS moved),`

// ledgerLegAmount is a leg's amount as the writer inserts it: the leg's own
// when its transaction's legs sum (l.s) to zero and every customer account
// named was moved; otherwise the statement fails (ledger_refused), with the
// codes the trigger raises.
const ledgerLegAmount = `CASE WHEN l.s <> 0 THEN ledger_refused('23000',
                format('ledger transaction %s (%s) does not balance (%s)', t.txn_id, t.order_id, l.s))
            WHEN NOT c.moved THEN ledger_refused('23503', format('posting to unknown account %s',
                (SELECT min(d.a) FROM d WHERE d.a NOT IN (SELECT account_id FROM b))))
            ELSE l.m END`

// ledgerSQL writes one balanced ledger transaction and its postings in one
// statement (one round trip) and returns its id. $1 kind, $2 order id, $3
// accounts, $4 amounts (fen).
const ledgerSQL = ledgerCTE + `SELECT txn_id FROM t`

// ledgerCTE is ledgerSQL's writing part, for a statement that writes the
// order of the movement with it (queuePostWith): parameters from $5 on are
// the tail's.
const ledgerCTE = `
WITH ` + ledgerMark + `,
     l AS (SELECT u.a, u.m, sum(u.m) OVER () AS s FROM w, unnest($3::text[], $4::bigint[]) AS u(a, m)),` + ledgerMove + `
     t AS (INSERT INTO ledger_txns (kind, order_id) VALUES ($1, $2) RETURNING txn_id, order_id),
     p AS (INSERT INTO postings (txn_id, account_id, amount)
           SELECT t.txn_id, l.a, ` + ledgerLegAmount + ` FROM t, l, c)
`

// ledgerArgs checks and merges legs (mapfront.MergeLegs) into the arguments
// of ledgerSQL.
func ledgerArgs(kind, orderID string, legs []mapfront.Leg) ([]any, error) {
	merged, err := ledgerLegs(kind, orderID, legs)
	if err != nil {
		return nil, err
	}
	accounts := make([]string, len(merged))
	amounts := make([]int64, len(merged))
	for i, l := range merged {
		accounts[i], amounts[i] = l.Account, l.Amount
	}
	return []any{kind, orderID, accounts, amounts}, nil
}

// ledgerLegs checks that legs balance and merges them (mapfront.MergeLegs):
// the postings of one ledger transaction.
func ledgerLegs(kind, orderID string, legs []mapfront.Leg) ([]mapfront.Leg, error) {
	if !mapfront.Balanced(legs) {
		return nil, fmt.Errorf("ledger %s %s: postings do not balance", kind, orderID)
	}
	return mapfront.MergeLegs(legs), nil
}

// queuePost queues one ledger transaction into a batch.
func queuePost(b *pgx.Batch, kind, orderID string, legs ...mapfront.Leg) error {
	args, err := ledgerArgs(kind, orderID, legs)
	if err != nil {
		return err
	}
	b.Queue(ledgerSQL, args...)
	return nil
}

// queuePostWith queues one ledger transaction and tail, a statement whose
// parameters start at $5, as one statement: the movement and its order in
// one execution, as the hot path wants.
func queuePostWith(b *pgx.Batch, kind, orderID string, legs []mapfront.Leg, tail string, tailArgs ...any) error {
	args, err := ledgerArgs(kind, orderID, legs)
	if err != nil {
		return err
	}
	b.Queue(ledgerCTE+tail, append(args, tailArgs...)...)
	return nil
}

// post writes one ledger transaction in tx and returns its id.
func post(ctx context.Context, tx pgx.Tx, kind, orderID string, legs ...posting) (int64, error) {
	ls := make([]mapfront.Leg, len(legs))
	for i, l := range legs {
		ls[i] = mapfront.Leg{Account: l.account, Amount: l.amount}
	}
	args, err := ledgerArgs(kind, orderID, ls)
	if err != nil {
		return 0, err
	}
	var id int64
	if err := tx.QueryRow(ctx, ledgerSQL, args...).Scan(&id); err != nil {
		return 0, fmt.Errorf("ledger %s %s: %w", kind, orderID, err)
	}
	return id, nil
}

// ledgerManyCTE is ledgerCTE for many transactions of one kind in one
// statement (group commit, settlement): one ledger_txns row per order,
// numbered in the order given, and their postings. Each account moves once
// by the sum of its legs in the statement (two pays of one account debit it
// by both; the CHECK sees the total). The statement reaches rows by key
// only, and joins nothing but by key or by array position (the
// transactions' ids are drawn first, in order, and each leg takes its
// transaction's by position), so it plans well with hash and merge joins
// off, as the pay batch and settlement's slices run. Parameters from $6 on
// are the tail's. $1 kind, $2 order ids, $3 each leg's order (1-based
// position in $2), $4 accounts, $5 amounts (fen).
const ledgerManyCTE = `
WITH ` + ledgerMark + `,
     i AS (SELECT array_agg(id ORDER BY n) AS ids FROM (SELECT n, nextval(pg_get_serial_sequence('ledger_txns', 'txn_id')) AS id
           FROM (SELECT n FROM generate_series(1, cardinality($2::text[])) AS n ORDER BY n) s) s),
     l AS (SELECT u.k, u.a, u.m, sum(u.m) OVER (PARTITION BY u.k) AS s
           FROM w, unnest($3::int[], $4::text[], $5::bigint[]) AS u(k, a, m)),` + ledgerMove + `
     t AS (INSERT INTO ledger_txns (txn_id, kind, order_id) OVERRIDING SYSTEM VALUE
           SELECT i.ids[u.n], $1, u.o FROM i, unnest($2::text[]) WITH ORDINALITY AS u(o, n) ORDER BY u.n
           RETURNING txn_id, order_id),
     p AS (INSERT INTO postings (txn_id, account_id, amount)
           SELECT t.txn_id, l.a, ` + ledgerLegAmount + `
           FROM i, l, c, LATERAL (SELECT i.ids[l.k] AS txn_id, ($2::text[])[l.k] AS order_id) t
           ORDER BY 1)
`

// ledgerManyArgs checks and merges the legs of each order (as ledgerArgs)
// into the arguments of ledgerManyCTE.
func ledgerManyArgs(kind string, orderIDs []string, legs [][]mapfront.Leg) ([]any, error) {
	n := 0
	for _, l := range legs {
		n += len(l)
	}
	// Flat arrays (arrays.go) as the arguments themselves: pgx encodes
	// them as it would the slices, without boxing each slice twice.
	legOrders, accounts, amounts := make([]int32, 0, n), make(textArray, 0, n), make(int8Array, 0, n)
	for i, id := range orderIDs {
		merged, err := ledgerLegs(kind, id, legs[i])
		if err != nil {
			return nil, err
		}
		for _, l := range merged {
			legOrders, accounts, amounts = append(legOrders, int32(i+1)), append(accounts, l.Account), append(amounts, l.Amount)
		}
	}
	return []any{kind, textArray(orderIDs), legOrders, accounts, amounts}, nil
}
