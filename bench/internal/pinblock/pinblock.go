// Package pinblock builds the paymentCodeDES a POS terminal sends: an ISO
// 9564-1 format-0 PIN block encrypted with two-key TDES-ECB (K1K2K1) under the
// terminal's PIN key (SPEC section 5, "pay").
//
// The server has its own implementation in server/internal/pinblock, which
// bench/ cannot import (Go's internal rule). This one is deliberately small
// and separate: the load generator plays the terminal, and a second,
// independent implementation checked against the same known answer is a
// better simulator than a shared one.
package pinblock

import (
	"crypto/cipher"
	"crypto/des"
	"encoding/hex"
	"errors"
	"strings"
)

// KeyLen is the length of a double-length TDES key (K1K2).
const KeyLen = 16

// Builder encrypts PIN blocks under one terminal key. The key schedule is
// computed once; a Builder is safe for concurrent use (the cipher only reads
// its schedule).
type Builder struct {
	block cipher.Block
}

// NewBuilder takes the terminal's double-length key: 16 bytes whose halves
// differ (equal halves would be single DES in disguise, which the server
// refuses for non-legacy terminals).
func NewBuilder(key []byte) (*Builder, error) {
	if len(key) != KeyLen {
		return nil, errors.New("pinblock: key must be 16 bytes (32 hex digits)")
	}
	if string(key[:8]) == string(key[8:]) {
		return nil, errors.New("pinblock: key halves must differ")
	}
	k := make([]byte, 24) // K1K2K1
	copy(k, key)
	copy(k[16:], key[:8])
	b, err := des.NewTripleDESCipher(k)
	if err != nil {
		return nil, err
	}
	return &Builder{block: b}, nil
}

// NewBuilderHex is NewBuilder for a key written in hex.
func NewBuilderHex(keyHex string) (*Builder, error) {
	k, err := hex.DecodeString(keyHex)
	if err != nil {
		return nil, errors.New("pinblock: key is not hex")
	}
	return NewBuilder(k)
}

// Build returns the upper-case hex of the encrypted block for pin (4 to 12
// digits) bound to pan (the consumerId: 2 to 19 digits).
func (b *Builder) Build(pin, pan string) (string, error) {
	clear, err := ClearBlock(pin, pan)
	if err != nil {
		return "", err
	}
	var out [8]byte
	b.block.Encrypt(out[:], clear[:])
	return strings.ToUpper(hex.EncodeToString(out[:])), nil
}

// ClearBlock is the format-0 block before encryption: the PIN field
// 0|L|digits|F... XORed with the PAN field 0000|A1..A12, where A1..A12 are
// the rightmost 12 digits of the PAN excluding its last (check) digit,
// left-padded with zeros.
func ClearBlock(pin, pan string) ([8]byte, error) {
	var blk [8]byte
	if len(pin) < 4 || len(pin) > 12 || !digits(pin) {
		return blk, errors.New("pinblock: PIN must be 4 to 12 digits")
	}
	if len(pan) < 2 || len(pan) > 19 || !digits(pan) {
		return blk, errors.New("pinblock: PAN must be 2 to 19 digits")
	}
	var pinField [16]byte // nibbles
	pinField[0] = 0
	pinField[1] = byte(len(pin))
	for i := 2; i < 16; i++ {
		if i-2 < len(pin) {
			pinField[i] = pin[i-2] - '0'
		} else {
			pinField[i] = 0xF
		}
	}
	body := pan[:len(pan)-1] // drop the check digit
	if len(body) > 12 {
		body = body[len(body)-12:]
	}
	var panField [16]byte // first 4 nibbles stay zero
	off := 16 - len(body)
	for i := 0; i < len(body); i++ {
		panField[off+i] = body[i] - '0'
	}
	for i := 0; i < 8; i++ {
		hi := pinField[2*i] ^ panField[2*i]
		lo := pinField[2*i+1] ^ panField[2*i+1]
		blk[i] = hi<<4 | lo
	}
	return blk, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
