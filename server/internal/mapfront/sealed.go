package mapfront

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
)

// SealedID is a customer's ID number in the forms the store keeps (SPEC
// section 7: never in clear): sealed under the current master key and bound
// to the customer's mobile, its blind index under every key held (the
// current key's first, which is the one stored), and the masked form shown
// by AdminService and the logs. The service makes it with SealID; the
// store only writes it and compares indexes.
type SealedID struct {
	Sealed  []byte
	Indexes [][]byte
	Masked  string
	// PrefixLen is how many leading bytes of an index name the key that
	// wrote it (Keys.CurrentPrefix); 0 when unknown.
	PrefixLen int
}

// Index is the blind index to store: the current key's.
func (s *SealedID) Index() []byte { return s.Indexes[0] }

// Foreign reports whether a stored blind index that does not match was
// written under a key this server does not hold: an index of the same form
// whose leading bytes (PrefixLen) name none of the keys of s.Indexes. Such
// an index says nothing about the ID number: comparing it would call a
// customer's own ID another's (10016, recorded on the terminal key), so
// CheckIdentity fails instead (the master key was dropped before
// rotate-keys finished, README "Rotating the master key").
func (s *SealedID) Foreign(stored []byte) bool {
	n := s.PrefixLen
	if n == 0 || len(s.Indexes) == 0 || len(stored) != len(s.Indexes[0]) {
		return false
	}
	for _, ix := range s.Indexes {
		if bytes.Equal(ix[:n], stored[:n]) {
			return false
		}
	}
	return true
}

// Matches reports whether a stored blind index is that of this ID number,
// whichever key held wrote it: while rotate-keys runs, rows under the old
// key and under the new one both still match.
func (s *SealedID) Matches(stored []byte) bool {
	for _, ix := range s.Indexes {
		if bytes.Equal(ix, stored) {
			return true
		}
	}
	return false
}

// SealID seals a (normalized) ID number for the customer of mobile.
// Errors: only internal ones (a key fault).
func SealID(k Keys, mobile, idNumber string) (*SealedID, error) {
	sealed, err := k.SealIDNumber(mobile, idNumber)
	if err != nil {
		return nil, err
	}
	return &SealedID{Sealed: sealed, Indexes: k.IDIndexes(idNumber), Masked: MaskIDNumber(idNumber),
		PrefixLen: len(k.CurrentPrefix())}, nil
}

// IDSealer returns SealID under k as a function, for the settlement side of
// the store, which opens cards from the file without holding a key (as
// InitialPasswordHasher).
func IDSealer(k Keys) func(mobile, idNumber string) (*SealedID, error) {
	return func(mobile, idNumber string) (*SealedID, error) { return SealID(k, mobile, idNumber) }
}

// sealBinding is what a terminal key's sealed fingerprint is bound to: the
// kind and the key, each part length-prefixed so that no two keys share a
// binding. A sealed fingerprint copied onto another key's row does not open.
func sealBinding(kind string, k TerminalKey) string {
	return fmt.Sprintf("%s:%d:%s:%d:%s:%d:%s", kind, len(k.TerminalID), k.TerminalID,
		len(k.BatchNo), k.BatchNo, len(k.TerminalOrderID), k.TerminalOrderID)
}

// SealKeyFingerprint seals a request's fingerprint for the record of its
// terminal key. An open_card fingerprint digests the ID number, and an
// unkeyed digest of it could be reversed by trying the likely ID numbers
// (SPEC section 7: no whole ID number readable), so the record keeps it
// sealed under the master key: a repeat opens it to compare (OpenKeyRecord),
// and rotate-keys re-seals it under a new key, so the comparison stays exact
// after the old key is gone (SPEC section 5). Errors: only internal ones.
func SealKeyFingerprint(k Keys, kind string, key TerminalKey, fp []byte) ([]byte, error) {
	return k.SealFingerprint(sealBinding(kind, key), fp)
}

// OpenKeyRecord returns rec with its sealed fingerprint opened, to compare
// with a repeat's (KeyRecord.Repeat). A record without a fingerprint (a key
// the settlement file opened) stays without one: every repeat differs. A
// fingerprint still in clear (the bare SHA-256 of a key recorded before
// migration 0017, should SealPendingFingerprints have left one unsealed) is
// compared as it is, as the code before 0017 did, so that its key replays
// exactly instead of failing (10000); a sealed one is never 32 bytes. Only
// replays: a repeal of such a key rewrites its row, which 0017's CHECK
// refuses (10000, nothing done). serve and migrate seal every clear
// fingerprint before a server serves, so neither meets one in practice.
// Errors: only internal ones (a fingerprint no key held opens).
func OpenKeyRecord(k Keys, kind string, key TerminalKey, rec *KeyRecord) (*KeyRecord, error) {
	if rec.Fingerprint == nil || len(rec.Fingerprint) == sha256.Size {
		return rec, nil
	}
	fp, err := openKeyFingerprint(k, kind, key, rec.Fingerprint)
	if err != nil {
		return nil, err
	}
	opened := *rec
	opened.Fingerprint = fp
	return &opened, nil
}

func openKeyFingerprint(k Keys, kind string, key TerminalKey, sealed []byte) ([]byte, error) {
	return k.OpenFingerprint(sealBinding(kind, key), sealed)
}

// ClearID is a customer row whose ID number is still in clear: written
// before migration 0005, to be sealed by SealPendingIDs.
type ClearID struct {
	CustomerID int64
	Mobile     string
	IDNumber   string
}

// SealedIDRow is a customer's sealed ID as stored, for rotate-keys.
type SealedIDRow struct {
	CustomerID int64
	Mobile     string
	Sealed     []byte // as read: the update applies only if it is unchanged
	Index      []byte
}

// SealedTPKRow is a terminal's sealed PIN key as stored, for rotate-keys.
type SealedTPKRow struct {
	TerminalID string
	Sealed     []byte // as read: the update applies only if it is unchanged
}

// KeyFingerprintRow is an open_card key's fingerprint as stored, for
// SealPendingFingerprints and rotate-keys.
type KeyFingerprintRow struct {
	Key    TerminalKey
	Stored []byte // as read: the update applies only if it is unchanged
}

// KeyCounts says how many stored values are not yet under the current
// master key: what `server rotate-keys --check` reports. The old keys can
// be removed when all are zero.
type KeyCounts struct {
	ClearIDs  int64 // ID numbers still in clear (before SealPendingIDs)
	IDs       int64 // sealed ID numbers or blind indexes under another key
	TPKs      int64 // sealed terminal PIN keys under another key
	Passwords int64 // password hashes under another key: they move on the next successful pay or query
	// Fingerprints: open_card keys' fingerprints in clear (before
	// SealPendingFingerprints) or sealed under another key.
	Fingerprints int64
}

// Done reports whether nothing the old keys can read is left.
func (c KeyCounts) Done() bool { return c == KeyCounts{} }

// KeyStore is what sealing and rotation need of the store; each method is
// one transaction.
type KeyStore interface {
	// ClearIDs returns up to limit customers whose ID number is in clear.
	ClearIDs(ctx context.Context, limit int) ([]ClearID, error)
	// SealClearIDs stores the sealed forms, keyed by customer id, and clears
	// the ID numbers in one transaction; a row already sealed is skipped.
	SealClearIDs(ctx context.Context, ids []ClearID, sealed []*SealedID) error
	// StaleIDs returns up to limit sealed IDs, after customer id after,
	// whose sealed bytes or index do not start with prefix.
	StaleIDs(ctx context.Context, prefix []byte, after int64, limit int) ([]SealedIDRow, error)
	// StaleTPKs returns up to limit sealed TPKs, after terminal id after,
	// that do not start with prefix.
	StaleTPKs(ctx context.Context, prefix []byte, after string, limit int) ([]SealedTPKRow, error)
	// ResealIDs and ResealTPKs write the new values where the stored ones
	// are still those read (a concurrent change wins) in one transaction;
	// they return how many rows changed.
	ResealIDs(ctx context.Context, old []SealedIDRow, sealed []*SealedID) (int64, error)
	ResealTPKs(ctx context.Context, old []SealedTPKRow, sealed [][]byte) (int64, error)
	// ClearFingerprints returns up to limit open_card keys, after the key
	// after, whose fingerprint is still the unkeyed digest (written before
	// migration 0017).
	ClearFingerprints(ctx context.Context, after TerminalKey, limit int) ([]KeyFingerprintRow, error)
	// StaleFingerprints returns up to limit open_card keys, after the key
	// after, whose sealed fingerprint does not start with prefix.
	StaleFingerprints(ctx context.Context, prefix []byte, after TerminalKey, limit int) ([]KeyFingerprintRow, error)
	// ResealFingerprints writes the sealed fingerprints where the stored
	// ones are still those read, in one transaction; it returns how many
	// rows changed.
	ResealFingerprints(ctx context.Context, old []KeyFingerprintRow, sealed [][]byte) (int64, error)
	// CountKeys counts the values not under prefix.
	CountKeys(ctx context.Context, prefix []byte) (KeyCounts, error)
}

// RotationKeys is what sealing and rotation need of the keys.
type RotationKeys interface {
	Keys
	// CurrentPrefix starts every value the current key writes.
	CurrentPrefix() []byte
}

// rotateBatch is how many rows one transaction of SealPendingIDs or
// RotateKeys rewrites: small enough that the locks it holds (row locks
// only, never a table lock) pass unnoticed by the pay path.
const rotateBatch = 500

// SealPendingIDs seals the ID numbers still in clear (rows written before
// migration 0005), rotateBatch rows per transaction, and returns how many
// it sealed. `server migrate` and `serve` run it after the SQL migrations,
// before serving: SQL cannot encrypt, so this step completes 0005 in Go.
func SealPendingIDs(ctx context.Context, st KeyStore, k Keys, log *slog.Logger) (int, error) {
	total := 0
	for {
		rows, err := st.ClearIDs(ctx, rotateBatch)
		if err != nil || len(rows) == 0 {
			return total, err
		}
		sealed := make([]*SealedID, len(rows))
		for i, r := range rows {
			id := NormalizeIDNumber(r.IDNumber)
			if sealed[i], err = SealID(k, r.Mobile, id); err != nil {
				return total, err
			}
		}
		if err := st.SealClearIDs(ctx, rows, sealed); err != nil {
			return total, err
		}
		total += len(rows)
		log.Info("ID numbers sealed", "rows", len(rows), "total", total)
	}
}

// SealPendingFingerprints seals the open_card keys' fingerprints still in
// clear (written before migration 0017), rotateBatch keys per transaction,
// and returns how many it sealed. `server migrate` and `serve` run it after
// the SQL migrations, before serving, as SealPendingIDs: this step completes
// 0017 in Go. The stored digest is sealed as it is, so every key recorded
// before keeps answering its repeats exactly.
func SealPendingFingerprints(ctx context.Context, st KeyStore, k Keys, log *slog.Logger) (int, error) {
	total := 0
	var after TerminalKey
	for {
		rows, err := st.ClearFingerprints(ctx, after, rotateBatch)
		if err != nil || len(rows) == 0 {
			return total, err
		}
		sealed := make([][]byte, len(rows))
		for i, r := range rows {
			if sealed[i], err = SealKeyFingerprint(k, KindOpenCard, r.Key, r.Stored); err != nil {
				return total, err
			}
		}
		n, err := st.ResealFingerprints(ctx, rows, sealed)
		if err != nil {
			return total, err
		}
		total += int(n)
		after = rows[len(rows)-1].Key
		log.Info("open_card fingerprints sealed", "rows", n, "total", total)
	}
}

// RotateKeys re-seals every ID number, terminal PIN key and open_card key
// fingerprint not under the current master key, rotateBatch rows per
// transaction, online: each row is rewritten only if unchanged since read,
// and readers accept old and new values alike while it runs. Password
// hashes cannot be re-hashed without the password: they move on the
// customer's next successful verification (CountKeys counts the ones left).
// It returns the counts left afterwards.
func RotateKeys(ctx context.Context, st KeyStore, k RotationKeys, log *slog.Logger) (KeyCounts, error) {
	if _, err := SealPendingIDs(ctx, st, k, log); err != nil {
		return KeyCounts{}, err
	}
	if _, err := SealPendingFingerprints(ctx, st, k, log); err != nil {
		return KeyCounts{}, err
	}
	prefix := k.CurrentPrefix()
	var after int64
	for {
		rows, err := st.StaleIDs(ctx, prefix, after, rotateBatch)
		if err != nil {
			return KeyCounts{}, err
		}
		if len(rows) == 0 {
			break
		}
		sealed := make([]*SealedID, len(rows))
		for i, r := range rows {
			id, err := k.OpenIDNumber(r.Mobile, r.Sealed)
			if err != nil {
				return KeyCounts{}, fmt.Errorf("rotate ID number of customer %d: %w", r.CustomerID, err)
			}
			if sealed[i], err = SealID(k, r.Mobile, id); err != nil {
				return KeyCounts{}, err
			}
		}
		n, err := st.ResealIDs(ctx, rows, sealed)
		if err != nil {
			return KeyCounts{}, err
		}
		after = rows[len(rows)-1].CustomerID
		log.Info("ID numbers re-sealed", "rows", n, "through_customer", after)
	}
	var afterT string
	for {
		rows, err := st.StaleTPKs(ctx, prefix, afterT, rotateBatch)
		if err != nil {
			return KeyCounts{}, err
		}
		if len(rows) == 0 {
			break
		}
		sealed := make([][]byte, len(rows))
		for i, r := range rows {
			tpk, err := k.OpenTPK(r.TerminalID, r.Sealed)
			if err != nil {
				return KeyCounts{}, fmt.Errorf("rotate PIN key of terminal %s: %w", r.TerminalID, err)
			}
			sealed[i], err = k.SealTPK(r.TerminalID, tpk)
			clear(tpk)
			if err != nil {
				return KeyCounts{}, err
			}
		}
		n, err := st.ResealTPKs(ctx, rows, sealed)
		if err != nil {
			return KeyCounts{}, err
		}
		afterT = rows[len(rows)-1].TerminalID
		log.Info("terminal PIN keys re-sealed", "rows", n, "through_terminal", afterT)
	}
	var afterK TerminalKey
	for {
		rows, err := st.StaleFingerprints(ctx, prefix, afterK, rotateBatch)
		if err != nil {
			return KeyCounts{}, err
		}
		if len(rows) == 0 {
			break
		}
		sealed := make([][]byte, len(rows))
		for i, r := range rows {
			fp, err := openKeyFingerprint(k, KindOpenCard, r.Key, r.Stored)
			if err != nil {
				return KeyCounts{}, fmt.Errorf("rotate fingerprint of open_card key %s/%s/%s: %w",
					r.Key.TerminalID, r.Key.BatchNo, r.Key.TerminalOrderID, err)
			}
			if sealed[i], err = SealKeyFingerprint(k, KindOpenCard, r.Key, fp); err != nil {
				return KeyCounts{}, err
			}
		}
		n, err := st.ResealFingerprints(ctx, rows, sealed)
		if err != nil {
			return KeyCounts{}, err
		}
		afterK = rows[len(rows)-1].Key
		log.Info("open_card fingerprints re-sealed", "rows", n, "through_terminal", afterK.TerminalID)
	}
	return st.CountKeys(ctx, prefix)
}
