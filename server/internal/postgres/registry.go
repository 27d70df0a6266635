package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/mapfront"
)

// terminal is a registered terminal as a request sees it.
type terminal struct {
	id        string
	sealedTPK []byte
	legacyDES bool
}

// terminalSQL reads a terminal with whether it, its store and its seller
// are all enabled; $1 terminal, $2 seller, $3 store.
const terminalSQL = `
SELECT t.tpk_sealed, t.legacy_des, t.enabled AND st.enabled AND se.enabled
FROM terminals t
JOIN stores st ON st.seller_id = t.seller_id AND st.store_id = t.store_id
JOIN sellers se ON se.seller_id = t.seller_id
WHERE t.terminal_id = $1 AND t.seller_id = $2 AND t.store_id = $3`

// scanTerminal reads a row of terminalSQL: the terminal, or 10002 when it is
// unknown, disabled or not of that seller and store (SPEC section 4).
func scanTerminal(row pgx.Row, o mapfront.Origin) (*terminal, error) {
	t := terminal{id: o.TerminalID}
	var enabled bool
	err := row.Scan(&t.sealedTPK, &t.legacyDES, &enabled)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mapfront.Errorf(mapfront.CodeTerminal, "终端%s未登记或与商户、门店不符", o.TerminalID)
	}
	if err != nil {
		return nil, err
	}
	if !enabled {
		return nil, mapfront.Errorf(mapfront.CodeTerminal, "终端%s已停用", o.TerminalID)
	}
	return &t, nil
}

// checkOrigin verifies that seller, store and terminal exist, are enabled and
// belong together (SPEC section 4), else 10002.
func checkOrigin(ctx context.Context, q querier, o mapfront.Origin) (*terminal, error) {
	return scanTerminal(q.QueryRow(ctx, terminalSQL, o.TerminalID, o.SellerID, o.StoreID), o)
}

// querier is what pool and transaction have in common.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// UpsertSeller creates or updates a seller.
func (s *Store) UpsertSeller(ctx context.Context, id, name string, enabled bool) error {
	if err := checkRegistryID("sellerId", id); err != nil {
		return err
	}
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
	if err := checkRegistryID("storeId", storeID); err != nil {
		return err
	}
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

// TerminalSpec is what UpsertTerminal sets.
type TerminalSpec struct {
	TerminalID, SellerID, StoreID string
	Enabled                       bool
	// TPKHex is the clear PIN key in hex: 32 digits, or 16 for a legacy
	// single-DES terminal; empty keeps the stored key.
	TPKHex    string
	LegacyDES bool
}

// UpsertTerminal creates or updates a terminal; the PIN key is sealed under
// the master key and only its check value is returned.
// Errors: 10001 bad id or key, 10002 unknown seller/store.
func (s *Store) UpsertTerminal(ctx context.Context, t TerminalSpec, kcv func(key []byte) string) (string, error) {
	if err := checkRegistryID("terminalId", t.TerminalID); err != nil {
		return "", err
	}
	var sealed []byte
	check := ""
	if t.TPKHex != "" {
		key, err := hex.DecodeString(t.TPKHex)
		want := 16
		if t.LegacyDES {
			want = 8
		}
		if err != nil || len(key) != want {
			return "", mapfront.Invalid("tpk", fmt.Sprintf("须为%d位十六进制", want*2))
		}
		if sealed, err = s.keys.SealTPK(t.TerminalID, key); err != nil {
			return "", err
		}
		check = kcv(key)
	}
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
		err := tx.QueryRow(ctx, q, t.TerminalID, t.SellerID, t.StoreID, t.Enabled, sealed, check, t.LegacyDES).Scan(&check)
		if isForeignKey(err) {
			return mapfront.Errorf(mapfront.CodeTerminal, "门店%s/%s未登记", t.SellerID, t.StoreID)
		}
		return err
	})
	return check, err
}

func checkRegistryID(name, id string) error {
	if id == "" {
		return mapfront.Missing(name)
	}
	if len(id) > mapfront.MaxIDLen || strings.TrimSpace(id) != id {
		return mapfront.Invalid(name, "最多32个字符，首尾不能有空格")
	}
	return nil
}
