package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// terminalSQL reads a terminal with whether it, its store and its seller
// are all enabled, and its wrong-PIN budget (migration 0009); $1 terminal,
// $2 seller, $3 store.
const terminalSQL = `
SELECT t.tpk_sealed, t.legacy_des, t.enabled AND st.enabled AND se.enabled,
    t.pin_failures, t.pin_window_start, t.pin_suspended_until
FROM terminals t
JOIN stores st ON st.seller_id = t.seller_id AND st.store_id = t.store_id
JOIN sellers se ON se.seller_id = t.seller_id
WHERE t.terminal_id = $1 AND t.seller_id = $2 AND t.store_id = $3`

// querier is what pool and transaction have in common.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// UpsertSeller creates or updates a seller.
func (s *Store) UpsertSeller(ctx context.Context, id, name string, enabled bool) error {
	return s.auditedTx(ctx, audit.Change{Op: "UpsertSeller", Target: "seller:" + id,
		Args: map[string]any{"name": name, "enabled": enabled}}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO sellers (seller_id, name, enabled) VALUES ($1, $2, $3)
ON CONFLICT (seller_id) DO UPDATE SET name = excluded.name, enabled = excluded.enabled`, id, name, enabled)
		return err
	})
}

// UpsertStore creates or updates a store of an existing seller.
// Errors: 10001 bad id, 10002 unknown seller.
func (s *Store) UpsertStore(ctx context.Context, sellerID, storeID, name string, enabled bool) error {
	return s.auditedTx(ctx, audit.Change{Op: "UpsertStore", Target: "store:" + sellerID + "/" + storeID,
		Args: map[string]any{"name": name, "enabled": enabled}}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO stores (seller_id, store_id, name, enabled) VALUES ($1, $2, $3, $4)
ON CONFLICT (seller_id, store_id) DO UPDATE SET name = excluded.name, enabled = excluded.enabled`,
			sellerID, storeID, name, enabled)
		if isForeignKey(err) {
			return mapfront.Errorf(mapfront.CodeTerminal, "商户%s未登记", sellerID)
		}
		return err
	})
}

// UpsertTerminal implements mapfront.AdminStore: the PIN key comes sealed,
// with its check value; a nil key keeps the stored one.
// Errors: 10002 unknown seller/store.
func (s *Store) UpsertTerminal(ctx context.Context, t mapfront.TerminalRow) (string, error) {
	check := t.KCV
	// The key itself is never recorded: its check value says which it is.
	err := s.auditedTx(ctx, audit.Change{Op: "UpsertTerminal", Target: "terminal:" + t.TerminalID,
		Args: map[string]any{"seller_id": t.SellerID, "store_id": t.StoreID, "enabled": t.Enabled,
			"legacy_des": t.LegacyDES, "new_tpk_kcv": check}}, func(tx pgx.Tx) error {
		const q = `
INSERT INTO terminals (terminal_id, seller_id, store_id, enabled, tpk_sealed, tpk_kcv, legacy_des)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (terminal_id) DO UPDATE SET seller_id = excluded.seller_id, store_id = excluded.store_id,
    enabled = excluded.enabled, legacy_des = excluded.legacy_des,
    tpk_sealed = coalesce(excluded.tpk_sealed, terminals.tpk_sealed),
    tpk_kcv = CASE WHEN excluded.tpk_sealed IS NULL THEN terminals.tpk_kcv ELSE excluded.tpk_kcv END
RETURNING tpk_kcv`
		err := tx.QueryRow(ctx, q, t.TerminalID, t.SellerID, t.StoreID, t.Enabled, t.SealedTPK, check, t.LegacyDES).Scan(&check)
		if isForeignKey(err) {
			return mapfront.Errorf(mapfront.CodeTerminal, "门店%s/%s未登记", t.SellerID, t.StoreID)
		}
		return err
	})
	return check, err
}

// LiftTerminalSuspension ends a terminal's wrong-PIN suspension and clears
// its count (SPEC section 7), audited; it reports whether the terminal was
// suspended at the store's clock. Errors: 10002 unknown terminal.
func (s *Store) LiftTerminalSuspension(ctx context.Context, terminalID string) (bool, error) {
	var was bool
	err := s.auditedTx(ctx, audit.Change{Op: "LiftTerminalSuspension", Target: "terminal:" + terminalID}, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE terminals t SET pin_failures = 0, pin_window_start = NULL, pin_suspended_until = NULL
FROM (SELECT terminal_id, pin_suspended_until FROM terminals WHERE terminal_id = $1 FOR UPDATE) old
WHERE t.terminal_id = old.terminal_id
RETURNING coalesce(old.pin_suspended_until > $2, false)`, terminalID, s.clock.Now()).Scan(&was)
		if errors.Is(err, pgx.ErrNoRows) {
			return mapfront.Errorf(mapfront.CodeTerminal, "终端%s未登记", terminalID)
		}
		return err
	})
	return was, err
}
