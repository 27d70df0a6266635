package secret

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testMaster is a fixed master key for tests; never a real one.
var testMaster = mustHex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")

// demoTPK is the TPK of the demo terminals (SPEC section 8).
var demoTPK = mustHex("0123456789ABCDEFFEDCBA9876543210")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func newKeys(t *testing.T, master []byte) *Keys {
	t.Helper()
	k, err := New(master)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestDeriveKeyRFC5869 runs the RFC 5869 (HKDF) appendix A SHA-256 test
// cases through deriveKey. Case 3 has no salt and no info, the shape of the
// production call (nil salt).
func TestDeriveKeyRFC5869(t *testing.T) {
	ikm := bytes.Repeat([]byte{0x0b}, 22)
	tests := []struct {
		name string
		salt []byte
		info string
		want string
	}{
		{
			name: "A.1 test case 1",
			salt: mustHex("000102030405060708090a0b0c"),
			info: string(mustHex("f0f1f2f3f4f5f6f7f8f9")),
			want: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
		},
		{
			name: "A.3 test case 3",
			salt: nil,
			info: "",
			want: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := deriveKey(ikm, tt.salt, tt.info, 42)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != tt.want {
				t.Errorf("OKM = %x, want %s", got, tt.want)
			}
		})
	}
}

// TestPasswordMACRFC4231 runs the RFC 4231 HMAC-SHA256 test cases 1 and 2
// through passwordMAC, splitting each message into "salt" and "password":
// the MAC is over their concatenation.
func TestPasswordMACRFC4231(t *testing.T) {
	tests := []struct {
		name     string
		key      []byte
		salt     string
		password string
		want     string
	}{
		{"test case 1", bytes.Repeat([]byte{0x0b}, 20), "Hi T", "here",
			"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{"test case 2", []byte("Jefe"), "what do ya want ", "for nothing?",
			"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newMAC := func() hash.Hash { return hmac.New(sha256.New, tt.key) }
			got := passwordMAC(newMAC, []byte(tt.salt), tt.password)
			if hex.EncodeToString(got) != tt.want {
				t.Errorf("HMAC = %x, want %s", got, tt.want)
			}
		})
	}
}

func TestSubkeysDistinct(t *testing.T) {
	seal, err := deriveKey(testMaster, nil, infoSealTPK, 32)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := deriveKey(testMaster, nil, infoPassword, 32)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(seal, pw) || bytes.Equal(seal, testMaster) || bytes.Equal(pw, testMaster) {
		t.Fatal("subkeys are not distinct from each other and from the master key")
	}
	// Keys MACs passwords under the password subkey, not the master key.
	k := newKeys(t, testMaster)
	salt := []byte("0123456789abcdef")
	want := hmac.New(sha256.New, pw)
	want.Write(salt)
	want.Write([]byte("123456"))
	if got := passwordMAC(k.m.current.mac, salt, "123456"); !hmac.Equal(got, want.Sum(nil)) {
		t.Error("Keys does not use the password subkey")
	}
}

func TestNewRefusesWrongLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := New(make([]byte, n)); !errors.Is(err, ErrMasterKey) {
			t.Errorf("New(%d bytes) = %v, want ErrMasterKey", n, err)
		}
	}
}

func TestSealOpenTPK(t *testing.T) {
	k := newKeys(t, testMaster)
	sealed, err := k.SealTPK("POS01", demoTPK)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(demoTPK)+SealOverhead {
		t.Errorf("sealed length = %d, want %d", len(sealed), len(demoTPK)+SealOverhead)
	}
	if bytes.Contains(sealed, demoTPK[:8]) || bytes.Contains(sealed, demoTPK[8:]) {
		t.Error("sealed bytes contain the clear TPK")
	}
	got, err := k.OpenTPK("POS01", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, demoTPK) {
		t.Errorf("OpenTPK = %X, want %X", got, demoTPK)
	}

	// A fresh nonce each time: the same key seals to different bytes.
	again, err := k.SealTPK("POS01", demoTPK)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(sealed, again) {
		t.Error("two seals of the same key are identical")
	}

	// Keys loaded from the same master key in another process open it.
	if got, err := newKeys(t, bytes.Clone(testMaster)).OpenTPK("POS01", sealed); err != nil || !bytes.Equal(got, demoTPK) {
		t.Errorf("OpenTPK with an equal master key = %X, %v", got, err)
	}
}

func TestOpenTPKRefuses(t *testing.T) {
	k := newKeys(t, testMaster)
	sealed, err := k.SealTPK("POS01", demoTPK)
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(testMaster)
	other[0] ^= 1

	tests := []struct {
		name       string
		keys       *Keys
		terminalID string
		sealed     []byte
	}{
		{"other terminal", k, "POS12345", sealed},
		{"terminal id prefix", k, "POS0", sealed},
		{"terminal id longer", k, "POS011", sealed},
		{"empty terminal id", k, "", sealed},
		{"other master key", newKeys(t, other), "POS01", sealed},
		{"truncated by one", k, "POS01", sealed[:len(sealed)-1]},
		{"only overhead", k, "POS01", sealed[:SealOverhead]},
		{"empty", k, "POS01", nil},
		{"appended byte", k, "POS01", append(bytes.Clone(sealed), 0)},
	}
	// Flipping any single bit of nonce, ciphertext or tag must be caught.
	for i := range sealed {
		tampered := bytes.Clone(sealed)
		tampered[i] ^= 0x80
		tests = append(tests, struct {
			name       string
			keys       *Keys
			terminalID string
			sealed     []byte
		}{fmt.Sprintf("byte %d flipped", i), k, "POS01", tampered})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.keys.OpenTPK(tt.terminalID, tt.sealed)
			if !errors.Is(err, ErrUnseal) {
				t.Fatalf("OpenTPK = %X, %v; want ErrUnseal", got, err)
			}
			if got != nil {
				t.Errorf("OpenTPK returned key bytes with an error")
			}
		})
	}
}

// A sealed fingerprint opens for its own key only, under the key that
// sealed it or a ring that still holds it, and not under its own subkey's
// neighbours (a sealed ID number's).
func TestSealOpenFingerprint(t *testing.T) {
	fp := sha256.Sum256([]byte("open_card request"))
	k := newKeys(t, testMaster)
	sealed, err := k.SealFingerprint("POS01/000001/000002", fp[:])
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(fp)+SealOverhead || !k.IsCurrent(sealed) {
		t.Fatalf("sealed %d bytes (want %d), current %v", len(sealed), len(fp)+SealOverhead, k.IsCurrent(sealed))
	}
	if bytes.Contains(sealed, fp[:8]) {
		t.Error("sealed bytes contain the clear fingerprint")
	}
	if got, err := k.OpenFingerprint("POS01/000001/000002", sealed); err != nil || !bytes.Equal(got, fp[:]) {
		t.Fatalf("OpenFingerprint = %x, %v", got, err)
	}
	if again, _ := k.SealFingerprint("POS01/000001/000002", fp[:]); bytes.Equal(again, sealed) {
		t.Error("two seals of the same fingerprint are identical")
	}
	other := bytes.Clone(testMaster)
	other[0] ^= 1
	ring, err := New(other, testMaster)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ring.OpenFingerprint("POS01/000001/000002", sealed); err != nil || !bytes.Equal(got, fp[:]) {
		t.Errorf("a ring holding the old key: %x, %v", got, err)
	}
	for name, open := range map[string]func() ([]byte, error){
		"another key":        func() ([]byte, error) { return k.OpenFingerprint("POS01/000001/000003", sealed) },
		"another master key": func() ([]byte, error) { return newKeys(t, other).OpenFingerprint("POS01/000001/000002", sealed) },
		"as an ID number": func() ([]byte, error) {
			id, err := k.OpenIDNumber("POS01/000001/000002", sealed)
			return []byte(id), err
		},
		"truncated": func() ([]byte, error) { return k.OpenFingerprint("POS01/000001/000002", sealed[:len(sealed)-1]) },
	} {
		if got, err := open(); !errors.Is(err, ErrUnseal) {
			t.Errorf("%s: %x, %v; want ErrUnseal", name, got, err)
		}
	}
	if _, err := k.SealFingerprint("", fp[:]); err == nil {
		t.Error("SealFingerprint accepted an empty binding")
	}
	var zero Keys
	if _, err := zero.SealFingerprint("k", fp[:]); !errors.Is(err, ErrMasterKey) {
		t.Errorf("SealFingerprint on zero Keys: %v", err)
	}
}

func TestSealTPKRefusesEmpty(t *testing.T) {
	k := newKeys(t, testMaster)
	if _, err := k.SealTPK("", demoTPK); err == nil {
		t.Error("SealTPK accepted an empty terminal id")
	}
	if _, err := k.SealTPK("POS01", nil); err == nil {
		t.Error("SealTPK accepted an empty key")
	}
}

func TestZeroKeys(t *testing.T) {
	var zero Keys
	var nilKeys *Keys
	for _, k := range []*Keys{&zero, nilKeys} {
		if _, err := k.SealTPK("POS01", demoTPK); !errors.Is(err, ErrMasterKey) {
			t.Errorf("SealTPK on zero Keys: %v", err)
		}
		if _, err := k.OpenTPK("POS01", make([]byte, 44)); !errors.Is(err, ErrMasterKey) {
			t.Errorf("OpenTPK on zero Keys: %v", err)
		}
		if _, err := k.HashPassword("123456"); !errors.Is(err, ErrMasterKey) {
			t.Errorf("HashPassword on zero Keys: %v", err)
		}
		if _, err := k.VerifyPassword(make([]byte, PasswordHashSize), "123456"); !errors.Is(err, ErrMasterKey) {
			t.Errorf("VerifyPassword on zero Keys: %v", err)
		}
	}
}

func TestValidPassword(t *testing.T) {
	tests := map[string]bool{
		"123456":  true,
		"000000":  true,
		"999999":  true,
		"12345":   false,
		"1234567": false,
		"":        false,
		"12345a":  false,
		"12 456":  false,
		" 12345":  false,
		"-12345":  false,
		"12345\n": false,
		"１２３４５６":  false, // full-width digits
		"12345٦":  false, // Arabic-Indic six
		"1234/6":  false,
		"1234:6":  false,
	}
	for p, want := range tests {
		if got := ValidPassword(p); got != want {
			t.Errorf("ValidPassword(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestHashVerifyPassword(t *testing.T) {
	k := newKeys(t, testMaster)
	stored, err := k.HashPassword("123456")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != PasswordHashSize {
		t.Fatalf("hash length = %d, want %d", len(stored), PasswordHashSize)
	}
	if bytes.Contains(stored, []byte("123456")) {
		t.Error("stored hash contains the password")
	}
	for _, tt := range []struct {
		password string
		want     bool
	}{
		{"123456", true},
		{"123457", false},
		{"654321", false},
		{"12345", false},
		{"1234567", false},
		{"", false},
		{"1234", false}, // a 4-digit PIN out of a PIN block
	} {
		got, err := k.VerifyPassword(stored, tt.password)
		if err != nil {
			t.Fatalf("VerifyPassword(%q): %v", tt.password, err)
		}
		if got != tt.want {
			t.Errorf("VerifyPassword(%q) = %v, want %v", tt.password, got, tt.want)
		}
	}

	// A fresh salt each time: equal passwords give different hashes, and
	// both verify.
	again, err := k.HashPassword("123456")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(stored[:saltSize], again[:saltSize]) || bytes.Equal(stored, again) {
		t.Error("two hashes of the same password share salt or value")
	}
	if ok, _ := k.VerifyPassword(again, "123456"); !ok {
		t.Error("second hash does not verify")
	}

	// The hash is keyed: another master key does not verify it.
	other := bytes.Clone(testMaster)
	other[31] ^= 1
	if ok, err := newKeys(t, other).VerifyPassword(stored, "123456"); ok || err != nil {
		t.Errorf("VerifyPassword under another master key = %v, %v; want false, nil", ok, err)
	}

	// Tampering with salt or MAC breaks the match.
	for _, i := range []int{0, saltSize - 1, saltSize, PasswordHashSize - 1} {
		tampered := bytes.Clone(stored)
		tampered[i] ^= 1
		if ok, err := k.VerifyPassword(tampered, "123456"); ok || err != nil {
			t.Errorf("VerifyPassword with byte %d flipped = %v, %v", i, ok, err)
		}
	}
}

func TestHashPasswordRule(t *testing.T) {
	k := newKeys(t, testMaster)
	for _, p := range []string{"", "12345", "1234567", "abcdef", "12345 "} {
		if h, err := k.HashPassword(p); !errors.Is(err, ErrPasswordRule) || h != nil {
			t.Errorf("HashPassword(%q) = %x, %v; want ErrPasswordRule", p, h, err)
		}
	}
}

func TestVerifyPasswordBadHash(t *testing.T) {
	k := newKeys(t, testMaster)
	for _, n := range []int{0, 32, PasswordHashSize - 1, PasswordHashSize + 1} {
		ok, err := k.VerifyPassword(make([]byte, n), "123456")
		if ok || !errors.Is(err, ErrBadHash) {
			t.Errorf("VerifyPassword(%d bytes) = %v, %v; want false, ErrBadHash", n, ok, err)
		}
	}
}

func TestGenerate(t *testing.T) {
	a, b := Generate(), Generate()
	if len(a) != 2*MasterKeySize || strings.ToLower(a) != a {
		t.Fatalf("Generate = %q, want %d lower-case hex characters", a, 2*MasterKeySize)
	}
	if a == b {
		t.Error("two generated keys are equal")
	}
	if _, err := Parse(a); err != nil {
		t.Errorf("Parse(Generate()): %v", err)
	}
}

// TestFromEnv covers the ways an operator can set, or fail to set, the
// master key. Errors must name the variable at fault and never echo a key.
func TestFromEnv(t *testing.T) {
	good := Generate()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodFile := write("good", good)
	paddedFile := write("padded", "\n  "+strings.ToUpper(good)+"\r\n\n")
	shortFile := write("short", good[:62]+"\n")
	notHexFile := write("nothex", "zz"+good[2:])
	emptyFile := write("empty", "")

	tests := []struct {
		name        string
		value, path string
		wantOK      bool
		wantInMsg   string // the error names this
	}{
		{"env", good, "", true, ""},
		{"env upper case, spaces", "  " + strings.ToUpper(good) + "\n", "", true, ""},
		{"file", "", goodFile, true, ""},
		{"file with whitespace", "", paddedFile, true, ""},
		{"neither", "", "", false, EnvMasterKeyFile},
		{"both", good, goodFile, false, "only one"},
		{"env short", good[:63], "", false, EnvMasterKey},
		{"env long", good + "0", "", false, EnvMasterKey},
		{"env not hex", "g" + good[1:], "", false, "not hexadecimal"},
		{"env 32 raw bytes", good[:32], "", false, "64 hex"},
		{"file missing", "", filepath.Join(dir, "absent"), false, EnvMasterKeyFile},
		{"file short", "", shortFile, false, EnvMasterKeyFile},
		{"file not hex", "", notHexFile, false, "not hexadecimal"},
		{"file empty", "", emptyFile, false, "got 0"},
		{"file is a directory", "", dir, false, EnvMasterKeyFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvMasterKey, tt.value)
			t.Setenv(EnvMasterKeyFile, tt.path)
			k, err := FromEnv()
			if tt.wantOK {
				if err != nil {
					t.Fatalf("FromEnv: %v", err)
				}
				// The loaded keys are those of the same master key.
				sealed, err := k.SealTPK("POS01", demoTPK)
				if err != nil {
					t.Fatal(err)
				}
				ref, err := Parse(good)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := ref.OpenTPK("POS01", sealed); err != nil {
					t.Errorf("keys from env differ from Parse of the same key: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("FromEnv succeeded, want an error")
			}
			if !errors.Is(err, ErrMasterKey) {
				t.Errorf("error %q does not match ErrMasterKey", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantInMsg) {
				t.Errorf("error %q does not mention %q", msg, tt.wantInMsg)
			}
			for _, leak := range []string{good[:16], good[16:32], good[32:48], good[48:], strings.ToUpper(good[:16])} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q leaks key text", msg)
				}
			}
			if k != nil {
				t.Error("FromEnv returned keys with an error")
			}
		})
	}
}

// TestKeysNotPrintable prints Keys every way fmt, slog and encoding/json
// can and checks that no form of the master key or a subkey comes out.
func TestKeysNotPrintable(t *testing.T) {
	k := newKeys(t, testMaster)
	sealKey, _ := deriveKey(testMaster, nil, infoSealTPK, 32)
	pwKey, _ := deriveKey(testMaster, nil, infoPassword, 32)
	secrets := [][]byte{testMaster, sealKey, pwKey}

	var forms []string
	for _, s := range secrets {
		forms = append(forms,
			hex.EncodeToString(s[:8]),
			strings.ToUpper(hex.EncodeToString(s[:8])),
			strings.Trim(fmt.Sprint(s[:6]), "[]"), // decimal, as %v prints []byte
			string(s[:8]),
		)
		forms = append(forms, fmt.Sprintf("%x", s[:6]))
	}
	leaks := func(t *testing.T, where, out string) {
		t.Helper()
		for _, f := range forms {
			if strings.Contains(out, f) {
				t.Errorf("%s leaks key material: %q", where, out)
				return
			}
		}
	}

	// A struct that holds Keys in an unexported field: fmt prints such
	// fields without calling their methods.
	type config struct {
		Addr string
		keys Keys
		ptr  *Keys
	}
	cfg := config{Addr: ":8080", keys: *k, ptr: k}

	values := map[string]any{"pointer": k, "value": *k, "in struct": cfg, "pointer to struct": &cfg}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%X", "%q", "%o", "%b", "%T"}
	for name, v := range values {
		for _, verb := range verbs {
			out := fmt.Sprintf(verb, v)
			leaks(t, name+" "+verb, out)
			if (name == "pointer" || name == "value") && verb != "%T" && out != redacted {
				t.Errorf("%s %s = %q, want %q", name, verb, out, redacted)
			}
		}
		leaks(t, name+" Sprint", fmt.Sprint(v))
		leaks(t, name+" Sprintln", fmt.Sprintln(v))

		js, _ := json.Marshal(v)
		leaks(t, name+" json", string(js))

		for _, h := range []func(*bytes.Buffer) slog.Handler{
			func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
			func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		} {
			var buf bytes.Buffer
			log := slog.New(h(&buf))
			log.Info("loaded", "keys", v)
			log.Info("loaded", slog.Any("keys", v), slog.Group("g", "k", v))
			log.With("keys", v).Info("with")
			leaks(t, name+" slog", buf.String())
			if (name == "pointer" || name == "value") && !strings.Contains(buf.String(), "REDACTED") {
				t.Errorf("slog output lacks the redacted text: %s", buf.String())
			}
		}
	}
}

// A value sealed before key ids whose random nonce happens to start with
// the format tag and a key id not held (one in 2^24) still opens as the
// legacy value it is; it answered "master key not held" (found by a probe).
func TestLegacyNonceLooksTagged(t *testing.T) {
	k := newKeys(t, testMaster)
	sub, err := deriveKey(testMaster, nil, infoSealTPK, 32)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := []byte{'M', 'K', 1, 9, 9, 9, 9, 1, 2, 3, 4, 5}
	legacy := g.Seal(bytes.Clone(nonce), nonce, demoTPK, []byte("POS01"))
	got, err := k.OpenTPK("POS01", legacy)
	if err != nil || !bytes.Equal(got, demoTPK) {
		t.Fatalf("legacy TPK with a tag-like nonce: %x, %v", got, err)
	}
	// A value that is truly under a key not held still says so.
	other := newKeys(t, mustHex(strings.Repeat("ab", 32)))
	sealed, err := other.SealTPK("POS01", demoTPK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.OpenTPK("POS01", sealed); err == nil || !strings.Contains(err.Error(), "not held") {
		t.Fatalf("a TPK under another key: %v, want not held", err)
	}
}
