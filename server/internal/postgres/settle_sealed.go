package postgres

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync"
)

// The ID numbers of a settlement run's records are staged sealed
// (settlement_staging.id_number), never in clear (SPEC section 7: ID numbers
// are stored encrypted): AES-256-GCM under a key this process draws at
// random and holds only in memory, bound to the row (run, line) and its
// mobile number. A run stages and matches its records in one call of this
// process (settle.go), and a run that dies half-way is staged again by the
// next submission, so no other key ever needs to open them; a copy of the
// table (pg_dump, a disk) holds nothing an ID can be read from. The cost is
// one seal per staged record and one open per record matched, about a
// microsecond each.

// stagingAEAD is the process's staging key, drawn once.
var stagingAEAD = sync.OnceValues(func() (cipher.AEAD, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
})

// stagedNonce is the row's nonce: its line number and run (a row is
// staged once: (run_id, line_no) is the table's key, and run ids do not
// repeat within a process).
func stagedNonce(runID, lineNo int64) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n, uint64(lineNo))
	binary.BigEndian.PutUint32(n[8:], uint32(runID))
	return n
}

// stagedAAD binds a sealed ID to its row and mobile number.
func stagedAAD(runID, lineNo int64, mobile string) []byte {
	a := make([]byte, 16, 16+len(mobile))
	binary.BigEndian.PutUint64(a, uint64(runID))
	binary.BigEndian.PutUint64(a[8:], uint64(lineNo))
	return append(a, mobile...)
}

// sealStagedID seals the ID number of the record at (runID, lineNo) as
// text for settlement_staging.id_number.
func sealStagedID(aead cipher.AEAD, runID, lineNo int64, mobile, id string) string {
	ct := aead.Seal(nil, stagedNonce(runID, lineNo), []byte(id), stagedAAD(runID, lineNo, mobile))
	return base64.RawStdEncoding.EncodeToString(ct)
}

// errStagedID: a staged ID number this process did not seal for that row
// (another process's run, or a changed row).
var errStagedID = errors.New("settlement: a staged ID number does not open with this process's key")

// openStagedID opens what sealStagedID sealed for the same row and mobile.
func openStagedID(aead cipher.AEAD, runID, lineNo int64, mobile, sealed string) (string, error) {
	ct, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil {
		return "", errStagedID
	}
	id, err := aead.Open(nil, stagedNonce(runID, lineNo), ct, stagedAAD(runID, lineNo, mobile))
	if err != nil {
		return "", errStagedID
	}
	return string(id), nil
}
