package postgres

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
)

// The ID numbers of a settlement run's records are staged sealed
// (settlement_staging.id_number), never in clear (SPEC section 7: ID numbers
// are stored encrypted): AES-256-GCM under a key this process draws at
// random on first use and holds only in memory, bound to the row (run,
// line) and its mobile number. Each seal takes the next value of a counter
// of this process as its nonce, stored in front of the ciphertext, so no
// two seals under the key share one, whatever the stream sends (a line
// number twice, a run id seen again after a restore). A run stages and
// matches its records in one call of this process (settle.go), and a run
// that dies half-way is staged again by the next submission, so no other
// key ever needs to open them. The cost is one seal per staged record and
// one open per record matched, about a microsecond each.

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

// stagedSeals counts the seals under the process's staging key: each
// seal's nonce is its count.
var stagedSeals atomic.Uint64

// stagedAAD binds a sealed ID to its row and mobile number.
func stagedAAD(runID, lineNo int64, mobile string) []byte {
	a := make([]byte, 16, 16+len(mobile))
	binary.BigEndian.PutUint64(a, uint64(runID))
	binary.BigEndian.PutUint64(a[8:], uint64(lineNo))
	return append(a, mobile...)
}

// sealStagedID seals the ID number of the record at (runID, lineNo) as
// text for settlement_staging.id_number: the nonce, then the ciphertext.
func sealStagedID(aead cipher.AEAD, runID, lineNo int64, mobile, id string) string {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(id)+aead.Overhead())
	binary.BigEndian.PutUint64(nonce[aead.NonceSize()-8:], stagedSeals.Add(1))
	out := aead.Seal(nonce, nonce, []byte(id), stagedAAD(runID, lineNo, mobile))
	return base64.RawStdEncoding.EncodeToString(out)
}

// errStagedID: a staged ID number this process did not seal for that row
// (another process's run, or a changed row).
var errStagedID = errors.New("settlement: a staged ID number does not open with this process's key")

// openStagedID opens what sealStagedID sealed for the same row and mobile.
func openStagedID(aead cipher.AEAD, runID, lineNo int64, mobile, sealed string) (string, error) {
	b, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(b) < aead.NonceSize() {
		return "", errStagedID
	}
	id, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], stagedAAD(runID, lineNo, mobile))
	if err != nil {
		return "", errStagedID
	}
	return string(id), nil
}
