// Package secret owns the master key and the keys derived from it (SPEC
// section 7): it seals the terminals' PIN keys (TPKs), the customers' ID
// numbers and the open_card keys' request fingerprints for storage, computes
// the ID numbers' blind index, and hashes the customers' payment passwords.
//
// The master key is 32 random bytes, given as 64 hex characters in the
// environment (MAPFRONT_MASTER_KEY) or in a file (MAPFRONT_MASTER_KEY_FILE),
// never in the repository. It is used for nothing directly: HKDF-SHA256
// derives one subkey per purpose under a distinct label, so that a sealed
// TPK and a password hash never share a key, and Keys keeps only the
// subkeys. Keys cannot be printed or logged: fmt and slog see a redacted text.
//
// Rotation. Every master key has a key id: the first 4 bytes of an HKDF
// output under its own label (it reveals nothing of the key). Every value
// written carries the id of the key that wrote it, after a 3-byte tag
// ("MK" and the format version 1), so a reader picks the right key and
// rotation can count what is left:
//
//	sealed TPK     tag (3) || key id (4) || nonce (12) || AES-256-GCM
//	               ciphertext || tag (16), the terminal id as additional data
//	sealed ID      the same, under its own subkey, "customer:" + mobile as
//	               additional data
//	fingerprint    the same, under its own subkey, "terminal-key:" + the
//	               key (as the caller writes it) as additional data
//	ID index       tag (3) || key id (4) || HMAC-SHA256(index subkey, ID)
//	password hash  tag (3) || key id (4) || salt (16) ||
//	               HMAC-SHA256(subkey, salt || password) (32)
//
// Values written before rotation existed have no tag (a TPK: nonce ||
// ciphertext; a password hash: 48 bytes of salt and MAC); they are read by
// trying every key held, which GCM and the MAC make safe. Keys holds one
// current key, which writes, and any number of old keys
// (MAPFRONT_OLD_MASTER_KEYS_FILE), which only read; `server rotate-keys`
// rewrites what the old keys wrote, after which they can go.
package secret

import (
	"bytes"
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

// The environment variables that carry the master keys. Exactly one of the
// first two is set; the third is optional. Exported so that configuration
// help and the Makefile name the same ones.
const (
	EnvMasterKey     = "MAPFRONT_MASTER_KEY"
	EnvMasterKeyFile = "MAPFRONT_MASTER_KEY_FILE"
	// EnvOldMasterKeysFile names a file of old master keys, one per line
	// (blank lines and lines starting with # are skipped): during a
	// rotation they read what they wrote until rotate-keys rewrites it.
	EnvOldMasterKeysFile = "MAPFRONT_OLD_MASTER_KEYS_FILE"
)

// MasterKeySize is the length of the master key in bytes (64 hex characters):
// the full strength of AES-256 and HMAC-SHA256.
const MasterKeySize = 32

// PrefixSize is the length of the tag and key id that start every value
// written since rotation exists.
const PrefixSize = 3 + keyIDSize

// PasswordHashSize is the length of what HashPassword returns: the prefix,
// a 16-byte salt and a 32-byte HMAC-SHA256.
const PasswordHashSize = PrefixSize + saltSize + sha256.Size

// legacyHashSize is a password hash written before key ids: salt and MAC.
const legacyHashSize = saltSize + sha256.Size

// SealOverhead is how much longer a sealed TPK or ID is than the clear
// value: the prefix, the 12-byte nonce and the 16-byte GCM tag. A
// double-length TPK seals to 51 bytes.
const SealOverhead = PrefixSize + legacySealOverhead

const legacySealOverhead = 12 + 16

// PasswordLen is the length of a payment password: exactly 6 digits, what a
// POS PIN pad collects (SPEC section 4).
const PasswordLen = 6

const (
	// HKDF info labels, one per purpose; the version lets a later scheme
	// derive fresh keys from the same master key.
	infoSealTPK  = "mapfront/v1/seal-tpk"
	infoPassword = "mapfront/v1/payment-password"
	infoSealID   = "mapfront/v1/seal-id-number"
	infoSealFP   = "mapfront/v1/seal-key-fingerprint"
	infoIDIndex  = "mapfront/v1/id-number-index"
	infoKeyID    = "mapfront/v1/key-id"

	saltSize  = 16
	keyIDSize = 4
)

// formatTag starts every value written with a key id: "MK", version 1.
var formatTag = [3]byte{'M', 'K', 1}

// Errors of this package; test them with errors.Is. None of their messages
// carries key material, a password or a TPK.
var (
	// ErrMasterKey means the master key is missing, set twice, or not 64 hex
	// characters. Start-up stops on it (STYLE 9: never a silent default).
	ErrMasterKey = errors.New("secret: master key")
	// ErrUnseal means a sealed TPK cannot be opened: it belongs to another
	// terminal, was altered, is truncated, or was sealed under a master
	// key not held. GCM cannot tell these apart, and neither can the caller.
	ErrUnseal = errors.New("secret: sealed key cannot be opened")
	// ErrPasswordRule means a payment password is not exactly 6 digits.
	ErrPasswordRule = errors.New("secret: payment password must be exactly 6 digits")
	// ErrBadHash means a stored password hash is malformed: a data fault, not a wrong password, so it must not count
	// toward the lockout of SPEC section 5.
	ErrBadHash = errors.New("secret: stored password hash is malformed")
)

// redacted is what Keys shows instead of itself.
const redacted = "secret.Keys{REDACTED}"

// Keys holds the subkeys derived from the current master key and from any
// old ones. Create it with New, Parse or FromEnv and share the pointer: it
// is safe for concurrent use.
//
// fmt prints a Keys value held in an unexported struct field without calling
// its methods, and its bad-verb path (%s on a pointer) dumps what a pointer
// points to. So the material holds no byte slice at all: the ciphers and the
// MAC constructors are pointers and closures, which fmt shows as addresses.
type Keys struct {
	m *ring
}

// ring is the current key and the old ones, each under its id.
type ring struct {
	current *material
	all     []*material // current first
}

type material struct {
	id     [keyIDSize]byte
	seal   cipher.AEAD      // AES-256-GCM with random nonces, for TPKs
	sealID cipher.AEAD      // the same under its own subkey, for ID numbers
	sealFP cipher.AEAD      // the same under its own subkey, for key fingerprints
	mac    func() hash.Hash // HMAC-SHA256 under the password subkey
	index  func() hash.Hash // HMAC-SHA256 under the ID index subkey
}

// New derives the Keys from a raw 32-byte current master key and any old
// ones. It keeps no reference to the keys given; the caller may clear them
// afterwards. Tests use it with fixed bytes; production goes through
// FromEnv.
//
// Errors: ErrMasterKey when a key is not 32 bytes or an old key repeats the
// current one.
func New(master []byte, old ...[]byte) (*Keys, error) {
	r := &ring{}
	for i, k := range append([][]byte{master}, old...) {
		m, err := derive(k)
		if err != nil {
			return nil, err
		}
		for _, o := range r.all {
			if o.id == m.id {
				return nil, fmt.Errorf("%w: old key %d repeats a key already given", ErrMasterKey, i)
			}
		}
		r.all = append(r.all, m)
	}
	r.current = r.all[0]
	return &Keys{m: r}, nil
}

// derive makes the subkeys of one master key.
func derive(master []byte) (*material, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("%w: want %d bytes, got %d", ErrMasterKey, MasterKeySize, len(master))
	}
	m := &material{}
	id, err := deriveKey(master, nil, infoKeyID, keyIDSize)
	if err != nil {
		return nil, err
	}
	copy(m.id[:], id)
	if m.seal, err = gcm(master, infoSealTPK); err != nil {
		return nil, err
	}
	if m.sealID, err = gcm(master, infoSealID); err != nil {
		return nil, err
	}
	if m.sealFP, err = gcm(master, infoSealFP); err != nil {
		return nil, err
	}
	pwKey, err := deriveKey(master, nil, infoPassword, 32)
	if err != nil {
		return nil, err
	}
	m.mac = func() hash.Hash { return hmac.New(sha256.New, pwKey) }
	idxKey, err := deriveKey(master, nil, infoIDIndex, 32)
	if err != nil {
		return nil, err
	}
	m.index = func() hash.Hash { return hmac.New(sha256.New, idxKey) }
	return m, nil
}

// gcm is AES-256-GCM with random nonces under the subkey of info.
func gcm(master []byte, info string) (cipher.AEAD, error) {
	key, err := deriveKey(master, nil, info, 32)
	if err != nil {
		return nil, err
	}
	defer clear(key) // aes.NewCipher keeps its own expanded copy
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret: %s cipher: %w", info, err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("secret: %s cipher: %w", info, err)
	}
	return aead, nil
}

// Parse derives the Keys from the current master key and any old ones, each
// written as 64 hex characters (either case); surrounding whitespace, such
// as a file's final newline, is ignored.
//
// Errors: ErrMasterKey, saying what is wrong but never echoing the text.
func Parse(hexKey string, oldHex ...string) (*Keys, error) {
	var raw [][]byte
	defer func() {
		for _, b := range raw {
			clear(b)
		}
	}()
	for i, h := range append([]string{hexKey}, oldHex...) {
		h = strings.TrimSpace(h)
		if len(h) != 2*MasterKeySize {
			return nil, fmt.Errorf("%w: key %d: want %d hex characters, got %d", ErrMasterKey, i, 2*MasterKeySize, len(h))
		}
		b := make([]byte, MasterKeySize)
		raw = append(raw, b)
		if _, err := hex.Decode(b, []byte(h)); err != nil {
			// hex's error quotes the offending character: keep it out.
			return nil, fmt.Errorf("%w: key %d: not hexadecimal", ErrMasterKey, i)
		}
	}
	return New(raw[0], raw[1:]...)
}

// FromEnv loads the current master key from MAPFRONT_MASTER_KEY (the hex
// text) or MAPFRONT_MASTER_KEY_FILE (the path of a file holding it, as
// mounted by a secret store), and the old keys, if any, from the file named
// by MAPFRONT_OLD_MASTER_KEYS_FILE. Exactly one of the first two must be
// set; an empty variable counts as unset.
//
// Errors: ErrMasterKey, naming the variable at fault; a file that cannot be
// read also wraps the os error (which names the path, not the content).
func FromEnv() (*Keys, error) {
	value := os.Getenv(EnvMasterKey)
	path := os.Getenv(EnvMasterKeyFile)
	var old []string
	if p := os.Getenv(EnvOldMasterKeysFile); p != "" {
		content, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMasterKey, EnvOldMasterKeysFile, err)
		}
		defer clear(content)
		for line := range strings.Lines(string(content)) {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				old = append(old, line)
			}
		}
	}
	switch {
	case value == "" && path == "":
		return nil, fmt.Errorf("%w: set %s to %d hex characters, or %s to a file holding them (make run generates one for the demo)",
			ErrMasterKey, EnvMasterKey, 2*MasterKeySize, EnvMasterKeyFile)
	case value != "" && path != "":
		return nil, fmt.Errorf("%w: set only one of %s and %s", ErrMasterKey, EnvMasterKey, EnvMasterKeyFile)
	case value != "":
		k, err := Parse(value, old...)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", EnvMasterKey, EnvOldMasterKeysFile, err)
		}
		return k, nil
	default:
		content, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMasterKey, EnvMasterKeyFile, err)
		}
		defer clear(content)
		k, err := Parse(string(content), old...)
		if err != nil {
			return nil, fmt.Errorf("%s %s/%s: %w", EnvMasterKeyFile, path, EnvOldMasterKeysFile, err)
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

// material returns the key ring, or an error for a zero Keys (one not made
// by New), so that a wiring mistake is an error instead of a panic.
func (k *Keys) material() (*ring, error) {
	if k == nil || k.m == nil {
		return nil, fmt.Errorf("%w: Keys not initialised (use secret.New or secret.FromEnv)", ErrMasterKey)
	}
	return k.m, nil
}

// prefix is the tag and key id that start what m writes.
func (m *material) prefix() []byte {
	return append(formatTag[:], m.id[:]...)
}

// byPrefix returns the key that wrote v, nil when v has no tag (a value from
// before key ids); unknown is true when v has a tag but names a key not held.
func (r *ring) byPrefix(v []byte) (m *material, unknown bool) {
	if len(v) < PrefixSize || [3]byte(v[:3]) != formatTag {
		return nil, false
	}
	for _, m := range r.all {
		if [keyIDSize]byte(v[3:PrefixSize]) == m.id {
			return m, false
		}
	}
	return nil, true
}

// CurrentPrefix returns the tag and key id that start every value the
// current key writes (PrefixSize bytes), so that a store can count in SQL
// the values still under other keys. Nil for a zero Keys.
func (k *Keys) CurrentPrefix() []byte {
	r, err := k.material()
	if err != nil {
		return nil
	}
	return r.current.prefix()
}

// KeyID returns the current key's id in hex, for logs and reports: it
// identifies the key without revealing it.
func (k *Keys) KeyID() string {
	return hex.EncodeToString(k.CurrentPrefix()[3:])
}

// OldKeys returns how many old master keys the Keys hold besides the
// current one (MAPFRONT_OLD_MASTER_KEYS_FILE's keys); 0 for a zero Keys.
func (k *Keys) OldKeys() int {
	r, err := k.material()
	if err != nil {
		return 0
	}
	return len(r.all) - 1
}

// IsCurrent reports whether a stored value (sealed TPK or ID, ID index,
// password hash) was written by the current key. Values written by an old
// key, or before key ids, are not current: rotate-keys rewrites them.
func (k *Keys) IsCurrent(v []byte) bool {
	p := k.CurrentPrefix()
	return p != nil && len(v) >= PrefixSize && bytes.Equal(v[:PrefixSize], p)
}

// seal encrypts clear under the current key's aead (chosen by pick), bound
// to ad, with the prefix in front.
func seal(r *ring, pick func(*material) cipher.AEAD, clearText, ad []byte) []byte {
	m := r.current
	return pick(m).Seal(m.prefix(), nil, clearText, ad)
}

// open decrypts a value sealed by seal under any key held; a value without
// a tag (written before key ids) is tried under every key.
func open(r *ring, pick func(*material) cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	m, unknown := r.byPrefix(sealed)
	if m != nil && len(sealed) > SealOverhead {
		if out, err := pick(m).Open(nil, nil, sealed[PrefixSize:], ad); err == nil {
			return out, nil
		}
	}
	// No tag, or a tag that was only the first bytes of a legacy nonce
	// (also one that names no key held: one legacy value in 2^24 starts
	// with the tag).
	if len(sealed) > legacySealOverhead {
		for _, m := range r.all {
			if out, err := pick(m).Open(nil, nil, sealed, ad); err == nil {
				return out, nil
			}
		}
	}
	switch {
	case unknown:
		return nil, fmt.Errorf("%w: sealed under a master key not held", ErrUnseal)
	case len(sealed) <= legacySealOverhead:
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrUnseal, len(sealed))
	}
	return nil, ErrUnseal
}

func tpkAEAD(m *material) cipher.AEAD { return m.seal }
func idAEAD(m *material) cipher.AEAD  { return m.sealID }
func fpAEAD(m *material) cipher.AEAD  { return m.sealFP }

// SealTPK encrypts a terminal's PIN key for storage, with the terminal id as
// additional data: a sealed key copied onto another terminal's row will not
// open there. Each call uses a fresh random nonce, so sealing the same key
// twice gives different bytes. The result is len(tpk)+SealOverhead bytes,
// under the current key.
//
// Errors: a plain error for an empty terminal id or key; ErrMasterKey for a
// zero Keys.
func (k *Keys) SealTPK(terminalID string, tpk []byte) ([]byte, error) {
	r, err := k.material()
	if err != nil {
		return nil, err
	}
	if terminalID == "" || len(tpk) == 0 {
		return nil, errors.New("secret: seal: terminal id and key must not be empty")
	}
	return seal(r, tpkAEAD, tpk, []byte(terminalID)), nil
}

// OpenTPK decrypts a key sealed by SealTPK for the same terminal id, under
// whichever key held sealed it. The caller should clear the returned key
// once done with it.
//
// Errors: ErrUnseal when the sealed bytes do not open for this terminal
// under any key held; ErrMasterKey for a zero Keys.
func (k *Keys) OpenTPK(terminalID string, sealed []byte) ([]byte, error) {
	r, err := k.material()
	if err != nil {
		return nil, err
	}
	tpk, err := open(r, tpkAEAD, sealed, []byte(terminalID))
	if err != nil {
		return nil, fmt.Errorf("%w: terminal %q: wrong terminal, altered, or a master key not held", err, terminalID)
	}
	return tpk, nil
}

// idAD binds a sealed ID number to its customer's mobile number: copied
// onto another customer's row, it does not open.
func idAD(mobile string) []byte { return []byte("customer:" + mobile) }

// SealIDNumber encrypts a customer's ID number for storage under the
// current key, bound to the customer's mobile number (the row's unique
// key). The result is len(id)+SealOverhead bytes.
//
// Errors: a plain error for an empty mobile or ID; ErrMasterKey.
func (k *Keys) SealIDNumber(mobile, id string) ([]byte, error) {
	r, err := k.material()
	if err != nil {
		return nil, err
	}
	if mobile == "" || id == "" {
		return nil, errors.New("secret: seal: mobile and ID number must not be empty")
	}
	return seal(r, idAEAD, []byte(id), idAD(mobile)), nil
}

// OpenIDNumber decrypts an ID number sealed by SealIDNumber for the same
// mobile, under whichever key held sealed it.
//
// Errors: ErrUnseal; ErrMasterKey.
func (k *Keys) OpenIDNumber(mobile string, sealed []byte) (string, error) {
	r, err := k.material()
	if err != nil {
		return "", err
	}
	id, err := open(r, idAEAD, sealed, idAD(mobile))
	if err != nil {
		return "", fmt.Errorf("%w: ID number of customer %s", err, maskMobile(mobile))
	}
	return string(id), nil
}

// fpAD binds a sealed fingerprint to its terminal key: copied onto another
// key's row, it does not open.
func fpAD(binding string) []byte { return []byte("terminal-key:" + binding) }

// SealFingerprint encrypts a terminal key's request fingerprint for storage
// under the current key, bound to binding (the key, as the caller writes
// it). A digest of an ID number and of fields stored in clear could be
// reversed by trying the ID numbers' few likely values; sealed, it says
// nothing without a master key, and rotate-keys can move it to a new key
// (a keyed hash could not be recomputed without the request). The result
// is len(fp)+SealOverhead bytes.
//
// Errors: a plain error for an empty binding or fingerprint; ErrMasterKey.
func (k *Keys) SealFingerprint(binding string, fp []byte) ([]byte, error) {
	r, err := k.material()
	if err != nil {
		return nil, err
	}
	if binding == "" || len(fp) == 0 {
		return nil, errors.New("secret: seal: key binding and fingerprint must not be empty")
	}
	return seal(r, fpAEAD, fp, fpAD(binding)), nil
}

// OpenFingerprint decrypts a fingerprint sealed by SealFingerprint for the
// same binding, under whichever key held sealed it.
//
// Errors: ErrUnseal; ErrMasterKey.
func (k *Keys) OpenFingerprint(binding string, sealed []byte) ([]byte, error) {
	r, err := k.material()
	if err != nil {
		return nil, err
	}
	fp, err := open(r, fpAEAD, sealed, fpAD(binding))
	if err != nil {
		return nil, fmt.Errorf("%w: fingerprint of a terminal key", err)
	}
	return fp, nil
}

// IDIndexes returns the blind index of an (already normalized) ID number
// under every key held, the current key's first: PrefixSize+32 bytes each,
// the prefix followed by HMAC-SHA256 under the key's index subkey. A
// stored index equals one of them exactly when the stored ID equals id,
// whichever key wrote it, so that a lookup keeps working while rotate-keys
// rewrites the indexes; store the first. Nil for a zero Keys.
func (k *Keys) IDIndexes(id string) [][]byte {
	r, err := k.material()
	if err != nil {
		return nil
	}
	out := make([][]byte, len(r.all))
	for i, m := range r.all {
		mac := m.index()
		mac.Write([]byte(id))
		out[i] = mac.Sum(m.prefix())
	}
	return out
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
// the current key's prefix, a fresh random 16-byte salt and HMAC-SHA256 over
// salt || password, keyed with the password subkey (PasswordHashSize bytes
// in all). The key lives outside the database, so a stolen table cannot be
// brute-forced over the mere million six-digit passwords; the salt keeps
// equal passwords from giving equal hashes.
//
// Errors: ErrPasswordRule; ErrMasterKey for a zero Keys.
func (k *Keys) HashPassword(password string) ([]byte, error) {
	r, err := k.material()
	if err != nil {
		return nil, err
	}
	if !ValidPassword(password) {
		return nil, ErrPasswordRule
	}
	m := r.current
	stored := make([]byte, PrefixSize+saltSize, PasswordHashSize)
	copy(stored, m.prefix())
	rand.Read(stored[PrefixSize:]) // never fails since Go 1.24: it crashes instead
	return append(stored, passwordMAC(m.mac, stored[PrefixSize:], password)...), nil
}

// VerifyPassword reports whether password matches a value stored by
// HashPassword, comparing in constant time, under the key the value names
// (a 48-byte hash from before key ids: under any key held). A password
// that breaks the rule (say a 4-digit PIN from a PIN block) simply does not
// match. A match on a value IsCurrent rejects should be re-hashed.
//
// Errors: ErrBadHash when stored has neither length (a data fault the
// caller must not count as a wrong password);
// ErrMasterKey for a zero Keys.
func (k *Keys) VerifyPassword(stored []byte, password string) (bool, error) {
	r, err := k.material()
	if err != nil {
		return false, err
	}
	switch len(stored) {
	case PasswordHashSize:
		// A value of another format, or under a key not held (rotate-keys
		// --check says when none is left), matches no password.
		m, _ := r.byPrefix(stored)
		if m == nil {
			return false, nil
		}
		salt, want := stored[PrefixSize:PrefixSize+saltSize], stored[PrefixSize+saltSize:]
		return hmac.Equal(passwordMAC(m.mac, salt, password), want), nil
	case legacyHashSize:
		salt, want := stored[:saltSize], stored[saltSize:]
		ok := false
		for _, m := range r.all { // every key, so that timing tells nothing
			ok = hmac.Equal(passwordMAC(m.mac, salt, password), want) || ok
		}
		return ok, nil
	default:
		return false, fmt.Errorf("%w: want %d bytes, got %d", ErrBadHash, PasswordHashSize, len(stored))
	}
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

// maskMobile keeps the first 3 and last 4 digits (SPEC section 7).
func maskMobile(m string) string {
	if len(m) < 7 {
		return "***"
	}
	return m[:3] + "****" + m[len(m)-4:]
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
