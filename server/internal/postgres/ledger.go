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
// transaction are inserted by ONE statement (ledgerCTE, or ledgerManyCTE
// for many transactions, as group commit and settlement's creditOrders
// write them). The statement-level trigger postings_apply (migrations 0010,
// 0012, 0013, 0014, 0023) checks when that statement ends: it moves each customer
// account's balance by the sum of its legs in the statement (so an
// overdraft fails right there with balance_non_negative, SQLSTATE 23514),
// refuses a leg of no customer account or of no ledger transaction (23503)
// and refuses a transaction whose legs in the statement do not sum to zero
// (23000). A transaction written in two statements is therefore refused at
// the first unless each part balances; as every earlier statement was held
// to the same rule and the ledger is append-only, every transaction sums to
// zero over all its postings. In the same write the trigger makes a pending
// card account active (with its order's activated_at) when its order is
// already active and credited: settlement marks its orders first, so an
// activated card's account is written once (0014); the other activation
// paths post first and set the account afterwards.

// ledgerSQL is the one ledger writer: one balanced transaction row and its
// postings in one statement (one round trip). $1 kind, $2 order id, $3
// accounts, $4 amounts.
const ledgerSQL = ledgerCTE + `SELECT txn_id FROM t`

// ledgerCTE is ledgerSQL's writing part, for a statement that writes the
// order of the movement with it (queuePostWith): parameters from $5 on are
// the tail's.
const ledgerCTE = `
WITH t AS (INSERT INTO ledger_txns (kind, order_id) VALUES ($1, $2) RETURNING txn_id),
     p AS (INSERT INTO postings (txn_id, account_id, amount)
           SELECT t.txn_id, a, m FROM t, unnest($3::text[], $4::bigint[]) AS u(a, m))
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
// statement (group commit): one ledger_txns row per order, numbered in the
// order given, and their postings. The postings trigger moves each account
// once by the sum of its legs in the statement (two pays of one account
// debit it by both; the CHECK sees the total). Parameters from $6 on are the tail's. $1 kind, $2 order ids,
// $3 each leg's order id, $4 accounts, $5 amounts.
const ledgerManyCTE = `
WITH t AS (INSERT INTO ledger_txns (kind, order_id)
           SELECT $1, o FROM unnest($2::text[]) WITH ORDINALITY AS u(o, n) ORDER BY n
           RETURNING txn_id, order_id),
     p AS (INSERT INTO postings (txn_id, account_id, amount)
           SELECT t.txn_id, l.a, l.m FROM t JOIN unnest($3::text[], $4::text[], $5::bigint[]) AS l(o, a, m)
           ON l.o = t.order_id ORDER BY t.txn_id)
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
	legOrders, accounts, amounts := make(textArray, 0, n), make(textArray, 0, n), make(int8Array, 0, n)
	for i, id := range orderIDs {
		merged, err := ledgerLegs(kind, id, legs[i])
		if err != nil {
			return nil, err
		}
		for _, l := range merged {
			legOrders, accounts, amounts = append(legOrders, id), append(accounts, l.Account), append(amounts, l.Amount)
		}
	}
	return []any{kind, textArray(orderIDs), legOrders, accounts, amounts}, nil
}
