// Package pinblock builds and opens the PIN blocks that POS terminals send in
// paymentCodeDES: ISO 9564-1 format 0, encrypted with TDES-ECB under the
// terminal's PIN key (TPK) (SPEC section 5, "pay").
//
// A format-0 block is the XOR of two 64-bit fields, written as 16 nibbles:
//
//	PIN field  0 L P P P P P/F P/F P/F P/F P/F P/F P/F P/F F F
//	PAN field  0 0 0 0 A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12
//
// L is the PIN length (4 to 12), P a PIN digit, F the filler nibble 0xF, and
// A1..A12 the twelve rightmost digits of the PAN excluding its last (check)
// digit, left-padded with zeros when the PAN is shorter. In mapfront the PAN
// is the consumerId of the request: a mobile number (11 digits) or an
// accountId (16 digits).
//
// The package knows nothing of passwords or lockouts: Open only says whether a
// block decodes, and to what. An undecodable block is ErrBadBlock (errcode
// 10017, which never counts as a wrong password); whether the decoded PIN is
// right is the caller's business.
package pinblock

import (
	"crypto/cipher"
	"crypto/des"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Sizes of the format, exported so that request validation and the key
// registry can check lengths without repeating magic numbers.
const (
	// HexLen is the length of paymentCodeDES: one 8-byte block in hex.
	HexLen = 2 * des.BlockSize
	// MinPINLen and MaxPINLen bound the PIN length that format 0 can carry.
	MinPINLen = 4
	MaxPINLen = 12
	// MaxPANLen is the longest PAN ISO/IEC 7812-1 allows; the consumerIds of
	// SPEC section 5 (11 and 16 digits) are well inside it.
	MaxPANLen = 19
	// DoubleKeyLen is the length of a double-length TDES key (K1K2, used as
	// K1K2K1); SingleKeyLen that of a single DES key, for legacy terminals.
	DoubleKeyLen = 16
	SingleKeyLen = 8
)

// Keying says how a terminal's PIN key is used. It is an explicit argument of
// every function that takes a key, so that single DES is only ever chosen on
// purpose: SPEC section 5 allows it solely for a terminal marked legacy. The
// zero value is DoubleLength, the safe default.
type Keying int

const (
	// DoubleLength is two-key TDES (K1K2K1): the key is exactly 16 bytes and
	// its halves differ (equal halves would be single DES in disguise).
	DoubleLength Keying = iota
	// LegacySingle is single DES: the key is exactly 8 bytes. Use it only for
	// a terminal whose registry row says it is legacy.
	LegacySingle
)

// String names the keying for logs and error messages.
func (k Keying) String() string {
	switch k {
	case DoubleLength:
		return "double-length TDES"
	case LegacySingle:
		return "legacy single DES"
	default:
		return fmt.Sprintf("Keying(%d)", int(k))
	}
}

// Errors of this package; test them with errors.Is. Their messages never hold
// a PIN, a block or key material.
var (
	// ErrBadBlock means the PIN block cannot be decoded: not 16 hex
	// characters, a format nibble other than 0, a PIN length outside 4..12, a
	// non-decimal PIN digit, a filler that is not all F, or an unusable key.
	// It maps to errcode 10017 and must not count as a wrong password.
	ErrBadBlock = errors.New("pinblock: PIN block cannot be decoded")
	// ErrBadKey means the key does not fit its Keying: wrong length, equal
	// halves, or an unknown Keying. Open reports it together with
	// ErrBadBlock (both match errors.Is), since for the terminal it is a
	// block that cannot be decoded; the operator needs to know which.
	ErrBadKey = errors.New("pinblock: unusable PIN key")
	// ErrBadPIN means Build was given a PIN that is not 4 to 12 decimal digits.
	ErrBadPIN = errors.New("pinblock: PIN must be 4 to 12 digits")
	// ErrBadPAN means the consumerId is not a PAN: 2 to 19 decimal digits.
	// It is a malformed request (errcode 10001), not a bad block.
	ErrBadPAN = errors.New("pinblock: consumer id must be 2 to 19 digits")
)

// Build formats pin as an ISO 9564-1 format-0 block bound to consumerID and
// encrypts it under key, returning the 16 upper-case hex characters a
// terminal would send as paymentCodeDES. mapfront itself only opens blocks;
// Build exists for tests, the demo and terminal simulators.
//
// Errors: ErrBadPIN, ErrBadPAN, ErrBadKey.
func Build(pin, consumerID string, key []byte, keying Keying) (string, error) {
	pan, err := panField(consumerID)
	if err != nil {
		return "", err
	}
	clearBlock, err := format0(pin, pan)
	if err != nil {
		return "", err
	}
	defer clear(clearBlock[:])
	c, err := newCipher(key, keying)
	if err != nil {
		return "", err
	}
	var enc [des.BlockSize]byte
	c.Encrypt(enc[:], clearBlock[:])
	return strings.ToUpper(hex.EncodeToString(enc[:])), nil
}

// Open decrypts hexBlock (16 hex characters, either case) under key, removes
// the PAN field of consumerID and returns the PIN it carries.
//
// Errors: ErrBadPAN when consumerID is not a PAN; ErrBadBlock for everything
// that makes the block undecodable, including a key that does not fit its
// Keying (then ErrBadKey matches too). A wrong key or a block made for another
// consumerId almost always yields ErrBadBlock, but format 0 has no integrity
// check, so now and then it decodes to some other PIN: the caller's password
// check catches that.
func Open(hexBlock, consumerID string, key []byte, keying Keying) (string, error) {
	pan, err := panField(consumerID)
	if err != nil {
		return "", err
	}
	if len(hexBlock) != HexLen {
		return "", fmt.Errorf("%w: want %d hex characters, got %d", ErrBadBlock, HexLen, len(hexBlock))
	}
	var enc [des.BlockSize]byte
	if _, err := hex.Decode(enc[:], []byte(hexBlock)); err != nil {
		// The hex error quotes the offending character; keep it out.
		return "", fmt.Errorf("%w: not hexadecimal", ErrBadBlock)
	}
	c, err := newCipher(key, keying)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadBlock, err)
	}
	var clearBlock [des.BlockSize]byte
	defer clear(clearBlock[:])
	c.Decrypt(clearBlock[:], enc[:])
	for i := range clearBlock {
		clearBlock[i] ^= pan[i]
	}
	return parseFormat0(clearBlock)
}

// KCV returns the key check value of key: the first 3 bytes, as 6 upper-case
// hex characters, of the encryption of 8 zero bytes. The registry stores it
// beside each TPK so that operators can compare keys without seeing them.
// The key is checked against keying exactly as Build and Open check it, so a
// key that KCV accepts is one they will accept.
//
// Errors: ErrBadKey.
func KCV(key []byte, keying Keying) (string, error) {
	c, err := newCipher(key, keying)
	if err != nil {
		return "", err
	}
	var zero, enc [des.BlockSize]byte
	c.Encrypt(enc[:], zero[:])
	return strings.ToUpper(hex.EncodeToString(enc[:3])), nil
}

// newCipher checks key against keying and returns the block cipher.
// A 24-byte (three-key) TDES key is refused under every keying: the POS
// world of SPEC section 5 uses double-length keys, and one accepted form per
// keying keeps the stored KCV meaningful.
func newCipher(key []byte, keying Keying) (cipher.Block, error) {
	switch keying {
	case DoubleLength:
		if len(key) != DoubleKeyLen {
			return nil, fmt.Errorf("%w: %s key must be %d bytes, got %d (single DES only for a terminal marked legacy)",
				ErrBadKey, keying, DoubleKeyLen, len(key))
		}
		if sameDESKey(key[:8], key[8:]) {
			return nil, fmt.Errorf("%w: %s key has equal halves, which is single DES", ErrBadKey, keying)
		}
		var k3 [24]byte // K1 K2 K1
		defer clear(k3[:])
		copy(k3[:16], key)
		copy(k3[16:], key[:8])
		c, err := des.NewTripleDESCipher(k3[:])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
		}
		return c, nil
	case LegacySingle:
		if len(key) != SingleKeyLen {
			return nil, fmt.Errorf("%w: %s key must be %d bytes, got %d", ErrBadKey, keying, SingleKeyLen, len(key))
		}
		c, err := des.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
		}
		return c, nil
	default:
		return nil, fmt.Errorf("%w: unknown %s", ErrBadKey, keying)
	}
}

// sameDESKey reports whether two 8-byte DES keys are the same key. DES
// ignores the low (parity) bit of every byte, so those bits are masked out.
func sameDESKey(a, b []byte) bool {
	for i := range a {
		if a[i]&0xFE != b[i]&0xFE {
			return false
		}
	}
	return true
}

// panField returns the PAN field of format 0 for a PAN: 0000 followed by the
// 12 rightmost digits excluding the last one, left-padded with zeros.
func panField(pan string) ([des.BlockSize]byte, error) {
	var field [des.BlockSize]byte
	if len(pan) < 2 || len(pan) > MaxPANLen {
		return field, fmt.Errorf("%w: got %d characters", ErrBadPAN, len(pan))
	}
	for i := 0; i < len(pan); i++ {
		if pan[i] < '0' || pan[i] > '9' {
			return field, fmt.Errorf("%w: not all digits", ErrBadPAN)
		}
	}
	digits := pan[:len(pan)-1]
	if len(digits) > 12 {
		digits = digits[len(digits)-12:]
	}
	// Nibble 4+12-len(digits) onward holds the digits; the rest stays zero.
	for i := 0; i < len(digits); i++ {
		setNibble(&field, 16-len(digits)+i, digits[i]-'0')
	}
	return field, nil
}

// format0 returns the clear format-0 block for pin under the given PAN field.
func format0(pin string, pan [des.BlockSize]byte) ([des.BlockSize]byte, error) {
	var block [des.BlockSize]byte
	if len(pin) < MinPINLen || len(pin) > MaxPINLen {
		return block, fmt.Errorf("%w: got %d characters", ErrBadPIN, len(pin))
	}
	for i := range block {
		block[i] = 0xFF
	}
	setNibble(&block, 0, 0) // format 0
	setNibble(&block, 1, byte(len(pin)))
	for i := 0; i < len(pin); i++ {
		d := pin[i] - '0'
		if d > 9 {
			clear(block[:])
			return block, fmt.Errorf("%w: not all digits", ErrBadPIN)
		}
		setNibble(&block, 2+i, d)
	}
	for i := range block {
		block[i] ^= pan[i]
	}
	return block, nil
}

// parseFormat0 checks a clear PIN field (the PAN field already removed) and
// returns the PIN. The messages name the rule broken, never a nibble's value.
func parseFormat0(field [des.BlockSize]byte) (string, error) {
	if nibble(field, 0) != 0 {
		return "", fmt.Errorf("%w: format is not 0", ErrBadBlock)
	}
	n := int(nibble(field, 1))
	if n < MinPINLen || n > MaxPINLen {
		return "", fmt.Errorf("%w: PIN length outside %d..%d", ErrBadBlock, MinPINLen, MaxPINLen)
	}
	pin := make([]byte, n)
	defer clear(pin)
	for i := range n {
		d := nibble(field, 2+i)
		if d > 9 {
			return "", fmt.Errorf("%w: PIN digit is not decimal", ErrBadBlock)
		}
		pin[i] = '0' + d
	}
	for i := 2 + n; i < 2*des.BlockSize; i++ {
		if nibble(field, i) != 0xF {
			return "", fmt.Errorf("%w: filler is not all F", ErrBadBlock)
		}
	}
	return string(pin), nil
}

// nibble returns the i-th 4-bit nibble of b, counting from the most
// significant nibble of b[0].
func nibble(b [des.BlockSize]byte, i int) byte {
	if i%2 == 0 {
		return b[i/2] >> 4
	}
	return b[i/2] & 0x0F
}

// setNibble sets the i-th nibble of b (numbered as in nibble) to v.
func setNibble(b *[des.BlockSize]byte, i int, v byte) {
	if i%2 == 0 {
		b[i/2] = b[i/2]&0x0F | v<<4
	} else {
		b[i/2] = b[i/2]&0xF0 | v&0x0F
	}
}
