package mapfront

// Keys is what the services need of the master key (SPEC section 7):
// payment password hashes, sealed terminal PIN keys and sealed, indexed ID
// numbers, under the current master key and any old ones held during a
// rotation. The secret package implements it; the store never sees it.
type Keys interface {
	// HashPassword returns a salted keyed hash of a payment password.
	HashPassword(password string) ([]byte, error)
	// VerifyPassword reports, in constant time, whether password matches
	// hash; an error means the stored hash is unusable.
	VerifyPassword(hash []byte, password string) (bool, error)
	// SealTPK encrypts a terminal's PIN key, bound to the terminal id.
	SealTPK(terminalID string, tpk []byte) ([]byte, error)
	// OpenTPK decrypts a sealed PIN key; it fails for another terminal id.
	OpenTPK(terminalID string, sealed []byte) ([]byte, error)
	// SealIDNumber encrypts an ID number, bound to the customer's mobile.
	SealIDNumber(mobile, idNumber string) ([]byte, error)
	// OpenIDNumber decrypts a sealed ID number; it fails for another mobile.
	OpenIDNumber(mobile string, sealed []byte) (string, error)
	// SealFingerprint encrypts a terminal key's request fingerprint, bound
	// to the key (binding, written by sealBinding).
	SealFingerprint(binding string, fp []byte) ([]byte, error)
	// OpenFingerprint decrypts a sealed fingerprint; it fails for another
	// key.
	OpenFingerprint(binding string, sealed []byte) ([]byte, error)
	// IDIndexes returns the blind index of an ID number under every key
	// held, the current key's first.
	IDIndexes(idNumber string) [][]byte
	// IsCurrent reports whether a stored value (sealed, index or hash) was
	// written by the current master key.
	IsCurrent(v []byte) bool
	// CurrentPrefix returns the leading bytes that name the current key in
	// every value it writes (its length is what names a key in any value).
	CurrentPrefix() []byte
}

// InitialPasswordHasher returns the one way to hash a new customer's initial
// password under policy p (SPEC section 4): nil under policy none. The
// settlement side, which opens cards from the file, is given it as a
// function, so that the store holds no key.
func InitialPasswordHasher(p Policy, k Keys) func(idNumber string) ([]byte, error) {
	return func(idNumber string) ([]byte, error) {
		pw := p.InitialPassword(idNumber)
		if pw == "" {
			return nil, nil
		}
		return k.HashPassword(pw)
	}
}
