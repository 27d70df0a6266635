package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// System accounts of migration 0001: the other side of every movement.
const (
	sysCardSales       = "SYS-CARD-SALES"
	sysDiscount        = "SYS-DISCOUNT"
	sysInstallment     = "SYS-INSTALLMENT"
	sysMerchantPayable = "SYS-MERCHANT-PAYABLE"
	sysTopUp           = "SYS-TOPUP"
)

// posting is one leg of a ledger transaction: amount in fen, positive credits
// the account's balance, negative debits it.
type posting struct {
	account string
	amount  int64
}

// post writes one balanced ledger transaction and returns its id. The postings
// trigger moves customer balances in the same statement, so an overdraft
// fails here with balance_non_negative; the deferred trigger refuses an
// unbalanced transaction at commit. Zero legs are dropped; legs on the same
// account are merged.
func post(ctx context.Context, tx pgx.Tx, kind, orderID string, legs ...posting) (int64, error) {
	merged := make([]posting, 0, len(legs))
	var sum int64
	for _, l := range legs {
		sum += l.amount
		if l.amount == 0 {
			continue
		}
		found := false
		for i := range merged {
			if merged[i].account == l.account {
				merged[i].amount += l.amount
				found = true
			}
		}
		if !found {
			merged = append(merged, l)
		}
	}
	if sum != 0 {
		return 0, fmt.Errorf("ledger %s %s: postings sum to %d", kind, orderID, sum)
	}
	accounts := make([]string, 0, len(merged))
	amounts := make([]int64, 0, len(merged))
	for _, l := range merged {
		if l.amount != 0 {
			accounts = append(accounts, l.account)
			amounts = append(amounts, l.amount)
		}
	}
	// One round trip: the transaction row and its postings together.
	const q = `
WITH t AS (INSERT INTO ledger_txns (kind, order_id) VALUES ($1, $2) RETURNING txn_id),
     p AS (INSERT INTO postings (txn_id, account_id, amount)
           SELECT t.txn_id, a, m FROM t, unnest($3::text[], $4::bigint[]) AS u(a, m))
SELECT txn_id FROM t`
	var id int64
	if err := tx.QueryRow(ctx, q, kind, orderID, accounts, amounts).Scan(&id); err != nil {
		return 0, err
	}
	return id, nil
}
