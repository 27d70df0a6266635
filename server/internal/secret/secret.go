// Package secret owns the master key and the keys derived from it (SPEC
// section 7): it seals the terminals' PIN keys (TPKs) for storage and hashes
// the customers' payment passwords.
//
// The master key is 32 random bytes, given as 64 hex characters in the
// environment (MAPFRONT_MASTER_KEY) or in a file (MAPFRONT_MASTER_KEY_FILE),
// never in the repository. It is used for nothing directly: HKDF-SHA256
// derives one subkey per purpose under a distinct label, so that a sealed
// TPK and a password hash never share a key, and Keys keeps only the
// subkeys. Keys cannot be printed or logged: fmt and slog see a redacted text.
//
// Stored formats (bytea columns):
//
//	sealed TPK     nonce (12) || AES-256-GCM ciphertext || tag (16), the
//	               terminal id as additional data
//	password hash  salt (16) || HMAC-SHA256(subkey, salt || password) (32)
//
// Both formats depend on the master key: replacing it makes every sealed TPK
// and every password hash unreadable, so it must be rotated by re-sealing and
// resetting, never by swapping the value.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"strings"
)

// The environment variables that carry the master key; exactly one is set.
// Exported so that configuration help and the Makefile name the same ones.
const (
	EnvMasterKey     = "MAPFRONT_MASTER_KEY"
	EnvMasterKeyFile = "MAPFRONT_MASTER_KEY_FILE"
)

// MasterKeySize is the length of the master key in bytes (64 hex characters):
// the full strength of AES-256 and HMAC-SHA256.
const MasterKeySize = 32

// PasswordHashSize is the length of what HashPassword returns: a 16-byte salt
// followed by a 32-byte HMAC-SHA256. The password_hash column can CHECK it.
const PasswordHashSize = saltSize + sha256.Size

// SealOverhead is how much longer a sealed TPK is than the TPK: the 12-byte
// nonce and the 16-byte GCM tag. A double-length TPK seals to 44 bytes.
const SealOverhead = 12 + 16

// PasswordLen is the length of a payment password: exactly 6 digits, what a
// POS PIN pad collects (SPEC section 4).
const PasswordLen = 6

const (
	// HKDF info labels, one per purpose; the version lets a later scheme
	// derive fresh keys from the same master key.
	infoSealTPK  = "mapfront/v1/seal-tpk"
	infoPassword = "mapfront/v1/payment-password"

	saltSize = 16
)

// Errors of this package; test them with errors.Is. None of their messages
// carries key material, a password or a TPK.
var (
	// ErrMasterKey means the master key is missing, set twice, or not 64 hex
	// characters. Start-up stops on it (STYLE 9: never a silent default).
	ErrMasterKey = errors.New("secret: master key")
	// ErrUnseal means a sealed TPK cannot be opened: it belongs to another
	// terminal, was altered, is truncated, or was sealed under another
	// master key. GCM cannot tell these apart, and neither can the caller.
	ErrUnseal = errors.New("secret: sealed key cannot be opened")
	// ErrPasswordRule means a payment password is not exactly 6 digits.
	ErrPasswordRule = errors.New("secret: payment password must be exactly 6 digits")
	// ErrBadHash means a stored password hash is not PasswordHashSize bytes:
	// a data fault, not a wrong password, so it must not count toward the
	// lockout of SPEC section 5.
	ErrBadHash = errors.New("secret: stored password hash is malformed")
)

// redacted is what Keys shows instead of itself.
const redacted = "secret.Keys{REDACTED}"

// Keys holds the subkeys derived from the master key. Create it with New,
// Parse or FromEnv and share the pointer: it is safe for concurrent use.
//
// fmt prints a Keys value held in an unexported struct field without calling
// its methods, and its bad-verb path (%s on a pointer) dumps what a pointer
// points to. So the material holds no byte slice at all: the cipher and the
// MAC constructor are a pointer and a closure, which fmt shows as addresses.
type Keys struct {
	m *material
}

type material struct {
	seal cipher.AEAD      // AES-256-GCM with random nonces, for TPKs
	mac  func() hash.Hash // HMAC-SHA256 under the password subkey
}

// New derives the Keys from a raw 32-byte master key. It keeps no reference
// to master; the caller may clear it afterwards. Tests use it with fixed
// bytes; production goes through FromEnv.
//
// Errors: ErrMasterKey when master is not 32 bytes.
func New(master []byte) (*Keys, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("%w: want %d bytes, got %d", ErrMasterKey, MasterKeySize, len(master))
	}
	sealKey, err := deriveKey(master, nil, infoSealTPK, 32)
	if err != nil {
		return nil, err
	}
	defer clear(sealKey) // aes.NewCipher keeps its own expanded copy
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("secret: seal cipher: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("secret: seal cipher: %w", err)
	}
	pwKey, err := deriveKey(master, nil, infoPassword, 32)
	if err != nil {
		return nil, err
	}
	mac := func() hash.Hash { return hmac.New(sha256.New, pwKey) }
	return &Keys{m: &material{seal: aead, mac: mac}}, nil
}

// Parse derives the Keys from the master key written as 64 hex characters
// (either case); surrounding whitespace, such as a file's final newline, is
// ignored.
//
// Errors: ErrMasterKey, saying what is wrong but never echoing the text.
func Parse(hexKey string) (*Keys, error) {
	hexKey = strings.TrimSpace(hexKey)
	if len(hexKey) != 2*MasterKeySize {
		return nil, fmt.Errorf("%w: want %d hex characters, got %d", ErrMasterKey, 2*MasterKeySize, len(hexKey))
	}
	master := make([]byte, MasterKeySize)
	defer clear(master)
	if _, err := hex.Decode(master, []byte(hexKey)); err != nil {
		// hex's error quotes the offending character: keep it out.
		return nil, fmt.Errorf("%w: not hexadecimal", ErrMasterKey)
	}
	return New(master)
}

// FromEnv loads the master key from MAPFRONT_MASTER_KEY (the hex text) or
// MAPFRONT_MASTER_KEY_FILE (the path of a file holding it, as mounted by a
// secret store). Exactly one must be set; an empty variable counts as unset.
//
// Errors: ErrMasterKey, naming the variable at fault; a file that cannot be
// read also wraps the os error (which names the path, not the content).
func FromEnv() (*Keys, error) {
	value := os.Getenv(EnvMasterKey)
	path := os.Getenv(EnvMasterKeyFile)
	switch {
	case value == "" && path == "":
		return nil, fmt.Errorf("%w: set %s to %d hex characters, or %s to a file holding them (make run generates one for the demo)",
			ErrMasterKey, EnvMasterKey, 2*MasterKeySize, EnvMasterKeyFile)
	case value != "" && path != "":
		return nil, fmt.Errorf("%w: set only one of %s and %s", ErrMasterKey, EnvMasterKey, EnvMasterKeyFile)
	case value != "":
		k, err := Parse(value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvMasterKey, err)
		}
		return k, nil
	default:
		content, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMasterKey, EnvMasterKeyFile, err)
		}
		defer clear(content)
		k, err := Parse(string(content))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", EnvMasterKeyFile, path, err)
		}
		return k, nil
	}
}

// Generate returns a new random master key as 64 lower-case hex characters,
// for a first `make run` to write into a local, git-ignored file. Production
// keys come from the operator's secret store, not from here.
func Generate() string {
	master := make([]byte, MasterKeySize)
	defer clear(master)
	rand.Read(master) // never fails since Go 1.24: it crashes instead
	return hex.EncodeToString(master)
}

// deriveKey is HKDF-SHA256 (RFC 5869). Production passes a nil salt: the
// master key is already uniformly random, which RFC 5869 section 3.1 allows.
// The salt parameter exists so that the RFC's own test vectors run through
// this very function.
func deriveKey(master, salt []byte, info string, n int) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, master, salt, info, n)
	if err != nil {
		return nil, fmt.Errorf("secret: derive %q: %w", info, err)
	}
	return k, nil
}

// material returns the key material, or an error for a zero Keys (one not
// made by New), so that a wiring mistake is an error instead of a panic.
func (k *Keys) material() (*material, error) {
	if k == nil || k.m == nil {
		return nil, fmt.Errorf("%w: Keys not initialised (use secret.New or secret.FromEnv)", ErrMasterKey)
	}
	return k.m, nil
}

// SealTPK encrypts a terminal's PIN key for storage, with the terminal id as
// additional data: a sealed key copied onto another terminal's row will not
// open there. Each call uses a fresh random nonce, so sealing the same key
// twice gives different bytes. The result is len(tpk)+SealOverhead bytes.
//
// Errors: a plain error for an empty terminal id or key; ErrMasterKey for a
// zero Keys.
func (k *Keys) SealTPK(terminalID string, tpk []byte) ([]byte, error) {
	m, err := k.material()
	if err != nil {
		return nil, err
	}
	if terminalID == "" || len(tpk) == 0 {
		return nil, errors.New("secret: seal: terminal id and key must not be empty")
	}
	return m.seal.Seal(nil, nil, tpk, []byte(terminalID)), nil
}

// OpenTPK decrypts a key sealed by SealTPK for the same terminal id. The
// caller should clear the returned key once done with it.
//
// Errors: ErrUnseal when the sealed bytes do not open for this terminal
// under this master key; ErrMasterKey for a zero Keys.
func (k *Keys) OpenTPK(terminalID string, sealed []byte) ([]byte, error) {
	m, err := k.material()
	if err != nil {
		return nil, err
	}
	if len(sealed) <= SealOverhead {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrUnseal, len(sealed))
	}
	tpk, err := m.seal.Open(nil, nil, sealed, []byte(terminalID))
	if err != nil {
		return nil, fmt.Errorf("%w: terminal %q: wrong terminal, altered, or another master key", ErrUnseal, terminalID)
	}
	return tpk, nil
}

// ValidPassword reports whether p obeys the payment password rule: exactly
// six ASCII digits. AdminService checks it before HashPassword so that a bad
// password is a request error (10001) naming the field.
func ValidPassword(p string) bool {
	if len(p) != PasswordLen {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// HashPassword returns the value to store for a customer's payment password:
// a fresh random 16-byte salt followed by HMAC-SHA256 over salt || password,
// keyed with the password subkey (PasswordHashSize bytes in all). The key
// lives outside the database, so a stolen table cannot be brute-forced over
// the mere million six-digit passwords; the salt keeps equal passwords from
// giving equal hashes.
//
// Errors: ErrPasswordRule; ErrMasterKey for a zero Keys.
func (k *Keys) HashPassword(password string) ([]byte, error) {
	m, err := k.material()
	if err != nil {
		return nil, err
	}
	if !ValidPassword(password) {
		return nil, ErrPasswordRule
	}
	stored := make([]byte, saltSize, PasswordHashSize)
	rand.Read(stored) // never fails since Go 1.24: it crashes instead
	return append(stored, passwordMAC(m.mac, stored, password)...), nil
}

// VerifyPassword reports whether password matches a value stored by
// HashPassword, comparing in constant time. A password that breaks the rule
// (say a 4-digit PIN from a PIN block) simply does not match.
//
// Errors: ErrBadHash when stored is not PasswordHashSize bytes (a data fault
// the caller must not count as a wrong password); ErrMasterKey for a zero
// Keys.
func (k *Keys) VerifyPassword(stored []byte, password string) (bool, error) {
	m, err := k.material()
	if err != nil {
		return false, err
	}
	if len(stored) != PasswordHashSize {
		return false, fmt.Errorf("%w: want %d bytes, got %d", ErrBadHash, PasswordHashSize, len(stored))
	}
	salt, want := stored[:saltSize], stored[saltSize:]
	return hmac.Equal(passwordMAC(m.mac, salt, password), want), nil
}

// passwordMAC is HMAC-SHA256(key, salt || password), newMAC being
// hmac.New(sha256.New, key). The salt has a fixed length in stored hashes,
// so the concatenation is unambiguous.
func passwordMAC(newMAC func() hash.Hash, salt []byte, password string) []byte {
	mac := newMAC()
	mac.Write(salt)
	mac.Write([]byte(password))
	return mac.Sum(nil)
}

// String hides the keys from %v, %s and anything that prints a Stringer.
// It has a value receiver so that a Keys value, not only a pointer, redacts.
func (Keys) String() string { return redacted }

// GoString hides the keys from %#v.
func (Keys) GoString() string { return redacted }

// Format hides the keys from every fmt verb, including those (%d, %x on a
// struct) that would otherwise bypass String and print the fields.
func (Keys) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue hides the keys from log/slog, whatever the handler.
func (Keys) LogValue() slog.Value { return slog.StringValue(redacted) }

// Compile-time checks that Keys redacts through every interface fmt and
// slog consult.
var (
	_ fmt.Stringer   = Keys{}
	_ fmt.GoStringer = Keys{}
	_ fmt.Formatter  = Keys{}
	_ slog.LogValuer = Keys{}
)
