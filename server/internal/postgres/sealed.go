package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"mapfront/server/internal/mapfront"
)

// The store's side of sealing and key rotation (mapfront.KeyStore, SPEC
// section 7): it reads and writes sealed bytes and indexes it cannot open.
// Which key wrote a value is told by its leading bytes, compared here with
// the current key's prefix the service passes in (its length included).

// ClearIDs implements mapfront.KeyStore.
func (s *Store) ClearIDs(ctx context.Context, limit int) ([]mapfront.ClearID, error) {
	rows, err := s.pool.Query(ctx, `SELECT customer_id, mobile, id_number FROM customers
WHERE id_number IS NOT NULL ORDER BY customer_id LIMIT $1`, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (mapfront.ClearID, error) {
		var c mapfront.ClearID
		return c, r.Scan(&c.CustomerID, &c.Mobile, &c.IDNumber)
	})
	return out, s.wrap(err)
}

// SealClearIDs implements mapfront.KeyStore: one transaction; a row sealed
// meanwhile (id_number already NULL) is left as it is.
func (s *Store) SealClearIDs(ctx context.Context, ids []mapfront.ClearID, sealed []*mapfront.SealedID) error {
	n := len(ids)
	cust, seal, index, masked := make([]int64, n), make([][]byte, n), make([][]byte, n), make([]string, n)
	for i := range ids {
		cust[i], seal[i], index[i], masked[i] = ids[i].CustomerID, sealed[i].Sealed, sealed[i].Index(), sealed[i].Masked
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE customers c SET id_number = NULL, id_sealed = u.sealed, id_index = u.index, id_masked = u.masked
FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::text[]) AS u(customer_id, sealed, index, masked)
WHERE c.customer_id = u.customer_id AND c.id_number IS NOT NULL`, cust, seal, index, masked)
		return err
	})
}

// StaleIDs implements mapfront.KeyStore.
func (s *Store) StaleIDs(ctx context.Context, prefix []byte, after int64, limit int) ([]mapfront.SealedIDRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT customer_id, mobile, id_sealed, id_index FROM customers
WHERE id_sealed IS NOT NULL AND customer_id > $2
  AND (substring(id_sealed FROM 1 FOR $3) <> $1 OR substring(id_index FROM 1 FOR $3) <> $1)
ORDER BY customer_id LIMIT $4`, prefix, after, len(prefix), limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (mapfront.SealedIDRow, error) {
		var c mapfront.SealedIDRow
		return c, r.Scan(&c.CustomerID, &c.Mobile, &c.Sealed, &c.Index)
	})
	return out, s.wrap(err)
}

// StaleTPKs implements mapfront.KeyStore.
func (s *Store) StaleTPKs(ctx context.Context, prefix []byte, after string, limit int) ([]mapfront.SealedTPKRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT terminal_id, tpk_sealed FROM terminals
WHERE tpk_sealed IS NOT NULL AND terminal_id > $2 AND substring(tpk_sealed FROM 1 FOR $3) <> $1
ORDER BY terminal_id LIMIT $4`, prefix, after, len(prefix), limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (mapfront.SealedTPKRow, error) {
		var t mapfront.SealedTPKRow
		return t, r.Scan(&t.TerminalID, &t.Sealed)
	})
	return out, s.wrap(err)
}

// ResealIDs implements mapfront.KeyStore: compare-and-set on the sealed
// bytes read, so that a row changed meanwhile keeps its change (and the
// next pass of rotate-keys sees it again if it is still stale).
func (s *Store) ResealIDs(ctx context.Context, old []mapfront.SealedIDRow, sealed []*mapfront.SealedID) (int64, error) {
	n := len(old)
	cust, was, seal, index := make([]int64, n), make([][]byte, n), make([][]byte, n), make([][]byte, n)
	for i := range old {
		cust[i], was[i], seal[i], index[i] = old[i].CustomerID, old[i].Sealed, sealed[i].Sealed, sealed[i].Index()
	}
	var changed int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE customers c SET id_sealed = u.sealed, id_index = u.index
FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[]) AS u(customer_id, was, sealed, index)
WHERE c.customer_id = u.customer_id AND c.id_sealed = u.was`, cust, was, seal, index)
		changed = tag.RowsAffected()
		return err
	})
	return changed, err
}

// ResealTPKs implements mapfront.KeyStore: compare-and-set as ResealIDs,
// so that a terminal key changed through AdminService meanwhile is kept.
func (s *Store) ResealTPKs(ctx context.Context, old []mapfront.SealedTPKRow, sealed [][]byte) (int64, error) {
	n := len(old)
	ids, was := make([]string, n), make([][]byte, n)
	for i := range old {
		ids[i], was[i] = old[i].TerminalID, old[i].Sealed
	}
	var changed int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE terminals t SET tpk_sealed = u.sealed
FROM unnest($1::text[], $2::bytea[], $3::bytea[]) AS u(terminal_id, was, sealed)
WHERE t.terminal_id = u.terminal_id AND t.tpk_sealed = u.was`, ids, was, sealed)
		changed = tag.RowsAffected()
		return err
	})
	return changed, err
}

// clearFingerprint is the predicate of the rows 0017 left to seal (and of
// its partial index): an open_card fingerprint that is still the 32-byte
// digest in clear.
const clearFingerprint = `kind = 'open_card' AND octet_length(fingerprint) = 32`

// ClearFingerprints implements mapfront.KeyStore.
func (s *Store) ClearFingerprints(ctx context.Context, after mapfront.TerminalKey, limit int) ([]mapfront.KeyFingerprintRow, error) {
	return s.keyFingerprints(ctx, `SELECT terminal_id, batch_no, terminal_order_id, fingerprint FROM terminal_requests
WHERE `+clearFingerprint+` AND (terminal_id, batch_no, terminal_order_id) > ($1, $2, $3)
ORDER BY terminal_id, batch_no, terminal_order_id LIMIT $4`, after.TerminalID, after.BatchNo, after.TerminalOrderID, limit)
}

// StaleFingerprints implements mapfront.KeyStore.
func (s *Store) StaleFingerprints(ctx context.Context, prefix []byte, after mapfront.TerminalKey, limit int) ([]mapfront.KeyFingerprintRow, error) {
	return s.keyFingerprints(ctx, `SELECT terminal_id, batch_no, terminal_order_id, fingerprint FROM terminal_requests
WHERE kind = 'open_card' AND fingerprint IS NOT NULL AND octet_length(fingerprint) <> 32
  AND substring(fingerprint FROM 1 FOR $5) <> $4 AND (terminal_id, batch_no, terminal_order_id) > ($1, $2, $3)
ORDER BY terminal_id, batch_no, terminal_order_id LIMIT $6`, after.TerminalID, after.BatchNo, after.TerminalOrderID,
		prefix, len(prefix), limit)
}

func (s *Store) keyFingerprints(ctx context.Context, q string, args ...any) ([]mapfront.KeyFingerprintRow, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (mapfront.KeyFingerprintRow, error) {
		var f mapfront.KeyFingerprintRow
		return f, r.Scan(&f.Key.TerminalID, &f.Key.BatchNo, &f.Key.TerminalOrderID, &f.Stored)
	})
	return out, s.wrap(err)
}

// ResealFingerprints implements mapfront.KeyStore: compare-and-set on the
// fingerprint read, as ResealIDs.
func (s *Store) ResealFingerprints(ctx context.Context, old []mapfront.KeyFingerprintRow, sealed [][]byte) (int64, error) {
	n := len(old)
	ts, bs, os, was := make([]string, n), make([]string, n), make([]string, n), make([][]byte, n)
	for i, r := range old {
		ts[i], bs[i], os[i], was[i] = r.Key.TerminalID, r.Key.BatchNo, r.Key.TerminalOrderID, r.Stored
	}
	var changed int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE terminal_requests r SET fingerprint = u.sealed
FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bytea[]) AS u(t, b, o, was, sealed)
WHERE r.kind = 'open_card' AND r.terminal_id = u.t AND r.batch_no = u.b AND r.terminal_order_id = u.o
  AND r.fingerprint = u.was`, ts, bs, os, was, sealed)
		changed = tag.RowsAffected()
		return err
	})
	return changed, err
}

// CountKeys implements mapfront.KeyStore: one statement, so the counts are
// of the same moment.
func (s *Store) CountKeys(ctx context.Context, prefix []byte) (mapfront.KeyCounts, error) {
	var c mapfront.KeyCounts
	err := s.pool.QueryRow(ctx, `SELECT
    (SELECT count(*) FROM customers WHERE id_number IS NOT NULL),
    (SELECT count(*) FROM customers WHERE id_sealed IS NOT NULL
        AND (substring(id_sealed FROM 1 FOR $2) <> $1 OR substring(id_index FROM 1 FOR $2) <> $1)),
    (SELECT count(*) FROM terminals WHERE tpk_sealed IS NOT NULL AND substring(tpk_sealed FROM 1 FOR $2) <> $1),
    (SELECT count(*) FROM customers WHERE pw_hash IS NOT NULL AND substring(pw_hash FROM 1 FOR $2) <> $1),
    (SELECT count(*) FROM terminal_requests WHERE kind = 'open_card' AND fingerprint IS NOT NULL
        AND (octet_length(fingerprint) = 32 OR substring(fingerprint FROM 1 FOR $2) <> $1))`,
		prefix, len(prefix)).Scan(&c.ClearIDs, &c.IDs, &c.TPKs, &c.Passwords, &c.Fingerprints)
	if err != nil {
		return c, fmt.Errorf("count keys: %w", s.wrap(err))
	}
	return c, nil
}

var _ mapfront.KeyStore = (*Store)(nil)
