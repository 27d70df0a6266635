package pinblock

import (
	"crypto/des"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// demoTPK is the TPK of every demo terminal (SPEC section 8). It is also the
// "standard ANSI test key" of the payments industry, whose KCV is published.
const demoTPK = "0123456789ABCDEFFEDCBA9876543210"

// The consumerIds of the demo customer (SPEC section 8): the mobile number
// and the active card's accountId.
const (
	demoMobile  = "13912345678"
	demoAccount = "1010123412341234"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func toBlock(t *testing.T, s string) [des.BlockSize]byte {
	t.Helper()
	var b [des.BlockSize]byte
	if n := copy(b[:], mustHex(t, s)); n != des.BlockSize {
		t.Fatalf("test block %q is not 8 bytes", s)
	}
	return b
}

func blockHex(b [des.BlockSize]byte) string {
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// TestSpecKnownAnswer is the known answer of SPEC section 5: the clear block
// and the encrypted block, both ways.
func TestSpecKnownAnswer(t *testing.T) {
	const (
		pin       = "123456"
		pan       = "4451234567890129"
		key       = "E8DD93B8AF13999C7644C0FE11F5D2A7"
		wantClear = "06122662A9876FED"
		wantEnc   = "ABC5E23474210DAC"
	)
	field, err := panField(pan)
	if err != nil {
		t.Fatal(err)
	}
	clearBlock, err := format0(pin, field)
	if err != nil {
		t.Fatal(err)
	}
	if got := blockHex(clearBlock); got != wantClear {
		t.Errorf("clear block = %s, want %s", got, wantClear)
	}
	got, err := Build(pin, pan, mustHex(t, key), DoubleLength)
	if err != nil {
		t.Fatal(err)
	}
	if got != wantEnc {
		t.Errorf("Build = %s, want %s", got, wantEnc)
	}
	for _, in := range []string{wantEnc, strings.ToLower(wantEnc)} {
		gotPIN, err := Open(in, pan, mustHex(t, key), DoubleLength)
		if err != nil {
			t.Fatalf("Open(%s): %v", in, err)
		}
		if gotPIN != pin {
			t.Errorf("Open(%s) = %q, want %q", in, gotPIN, pin)
		}
	}
}

// TestPublishedClearBlocks checks the format-0 layout against examples
// published outside this project.
func TestPublishedClearBlocks(t *testing.T) {
	tests := []struct {
		source    string
		pin, pan  string
		wantClear string
	}{
		{
			// ID TECH knowledge base, "PIN block ISO format 0" (the BP-Tools
			// PIN block calculator output quoted there).
			source: "ID TECH ISO-0 example",
			pin:    "1234", pan: "43219876543210987",
			wantClear: "0412AC89ABCDEF67",
		},
		{
			// Thales payShield Host Command Reference Manual, PIN block
			// format 01 ("ANSI X9.8 / ISO 9564-1 format 0"): PIN 92389,
			// 13-digit account 4000 0012 3456 2, check digit 2.
			source: "Thales payShield format 01 example",
			pin:    "92389", pan: "4000001234562",
			wantClear: "0592789FFFEDCBA9",
		},
	}
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			field, err := panField(tt.pan)
			if err != nil {
				t.Fatal(err)
			}
			clearBlock, err := format0(tt.pin, field)
			if err != nil {
				t.Fatal(err)
			}
			if got := blockHex(clearBlock); got != tt.wantClear {
				t.Errorf("clear block = %s, want %s", got, tt.wantClear)
			}
			var pinField [des.BlockSize]byte
			for i := range clearBlock {
				pinField[i] = clearBlock[i] ^ field[i]
			}
			got, err := parseFormat0(pinField)
			if err != nil || got != tt.pin {
				t.Errorf("parseFormat0 = %q, %v; want %q", got, err, tt.pin)
			}
		})
	}
}

// TestPublishedCipherVectors checks the block ciphers behind each Keying
// against published known answers, so that the K1K2K1 expansion and the
// single-DES path are proven, not just self-consistent.
func TestPublishedCipherVectors(t *testing.T) {
	tests := []struct {
		source            string
		keying            Keying
		key, plain, wantC string
	}{
		{
			// Botan src/tests/data/block/des.vec, [TripleDES], first case:
			// two-key TDES with the standard ANSI test key.
			source: "Botan des.vec TripleDES #1",
			keying: DoubleLength,
			key:    demoTPK, plain: "0123456789ABCDE7", wantC: "7F1D0A77826B8AFF",
		},
		{
			// FIPS PUB 81 (DES modes of operation), Appendix B, ECB example:
			// "Now is t" under 0123456789ABCDEF; also in Botan des.vec [DES].
			source: "FIPS 81 ECB example",
			keying: LegacySingle,
			key:    "0123456789ABCDEF", plain: "4E6F772069732074", wantC: "3FA40E8A984D4815",
		},
	}
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			c, err := newCipher(mustHex(t, tt.key), tt.keying)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]byte, des.BlockSize)
			c.Encrypt(out, mustHex(t, tt.plain))
			if got := strings.ToUpper(hex.EncodeToString(out)); got != tt.wantC {
				t.Errorf("encrypt = %s, want %s", got, tt.wantC)
			}
			c.Decrypt(out, out)
			if got := strings.ToUpper(hex.EncodeToString(out)); got != tt.plain {
				t.Errorf("decrypt = %s, want %s", got, tt.plain)
			}
		})
	}
}

func TestKCV(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		keying Keying
		want   string
	}{
		// Worldnet Payments developer docs (GoChip, PAX device key
		// injection): "0123456789ABCDEFFEDCBA9876543210, KCV: 08D7B4
		// (Standard ANSI Test key)". This is the demo TPK of SPEC section 8.
		{"ANSI test key", demoTPK, DoubleLength, "08D7B4"},
		// First three bytes of the SPEC section 5 key's encryption of zeros,
		// computed here: it pins the function, not a published value.
		{"SPEC pay key", "E8DD93B8AF13999C7644C0FE11F5D2A7", DoubleLength, ""},
		// Single DES of zeros under 0123456789ABCDEF is D5D44FF720683D0D;
		// Botan des.vec [DES] uses that very value as a key.
		{"single DES", "0123456789ABCDEF", LegacySingle, "D5D44F"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := KCV(mustHex(t, tt.key), tt.keying)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 6 || strings.ToUpper(got) != got {
				t.Errorf("KCV = %q, want 6 upper-case hex characters", got)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("KCV = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPANField(t *testing.T) {
	tests := []struct {
		pan, want string
	}{
		{demoMobile, "0000001391234567"},            // 11 digits: 10 used, padded
		{demoAccount, "0000012341234123"},           // 16 digits: rightmost 12 of the first 15
		{"4451234567890129", "0000123456789012"},    // SPEC section 5
		{"43219876543210987", "0000987654321098"},   // 17 digits
		{"1234567890123456789", "0000789012345678"}, // 19 digits, the longest PAN
		{"12", "0000000000000001"},                  // shortest: one digit before the check digit
	}
	for _, tt := range tests {
		got, err := panField(tt.pan)
		if err != nil {
			t.Fatalf("panField(%s): %v", tt.pan, err)
		}
		if blockHex(got) != tt.want {
			t.Errorf("panField(%s) = %s, want %s", tt.pan, blockHex(got), tt.want)
		}
	}
}

// TestRoundTrip builds and opens every PIN length for the demo consumerIds
// under the demo TPK, and under a single DES key for a legacy terminal.
func TestRoundTrip(t *testing.T) {
	keys := []struct {
		keying Keying
		key    []byte
	}{
		{DoubleLength, mustHex(t, demoTPK)},
		{LegacySingle, mustHex(t, "0123456789ABCDEF")},
	}
	pins := []string{"1234", "00000", "123456", "000000", "999999", "9876543", "12345678901", "000000000000", "999999999999"}
	for _, k := range keys {
		for _, id := range []string{demoMobile, demoAccount} {
			for _, pin := range pins {
				block, err := Build(pin, id, k.key, k.keying)
				if err != nil {
					t.Fatalf("Build(%s, %s, %s): %v", pin, id, k.keying, err)
				}
				if len(block) != HexLen || strings.ToUpper(block) != block {
					t.Fatalf("Build = %q, want %d upper-case hex characters", block, HexLen)
				}
				got, err := Open(block, id, k.key, k.keying)
				if err != nil {
					t.Fatalf("Open(Build(%s, %s, %s)): %v", pin, id, k.keying, err)
				}
				if got != pin {
					t.Errorf("Open(Build(%s, %s, %s)) = %q", pin, id, k.keying, got)
				}
			}
		}
	}
	// The block is bound to the consumerId: the same PIN gives different
	// blocks for the mobile number and the accountId.
	a, _ := Build("123456", demoMobile, mustHex(t, demoTPK), DoubleLength)
	b, _ := Build("123456", demoAccount, mustHex(t, demoTPK), DoubleLength)
	if a == b {
		t.Errorf("blocks for %s and %s are equal: %s", demoMobile, demoAccount, a)
	}
}

// encryptField encrypts an arbitrary clear PIN field (16 hex nibbles, valid
// or not) for consumerID under the demo TPK, as a misbehaving terminal could.
func encryptField(t *testing.T, pinFieldHex, consumerID string) string {
	t.Helper()
	field := toBlock(t, pinFieldHex)
	pan, err := panField(consumerID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCipher(mustHex(t, demoTPK), DoubleLength)
	if err != nil {
		t.Fatal(err)
	}
	for i := range field {
		field[i] ^= pan[i]
	}
	var enc [des.BlockSize]byte
	c.Encrypt(enc[:], field[:])
	return blockHex(enc)
}

func TestOpenMalformed(t *testing.T) {
	tpk := mustHex(t, demoTPK)
	good := encryptField(t, "06123456FFFFFFFF", demoMobile)
	if pin, err := Open(good, demoMobile, tpk, DoubleLength); err != nil || pin != "123456" {
		t.Fatalf("control block: Open = %q, %v", pin, err)
	}
	tests := []struct {
		name       string
		block      string
		consumerID string
		key        []byte
		keying     Keying
		wantErr    []error // every one must match errors.Is
	}{
		{"empty", "", demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"15 hex chars", good[:15], demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"17 hex chars", good + "0", demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"32 hex chars", good + good, demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"not hex", "ZZC5E23474210DAC", demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"hex with space", " BC5E23474210DAC", demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"multibyte", "ABC5E23474210DA\u00e9", demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"format 1", encryptField(t, "16123456FFFFFFFF", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"format 3", encryptField(t, "36123456FFFFFFFF", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"format F", encryptField(t, "F6123456FFFFFFFF", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"PIN length 0", encryptField(t, "00FFFFFFFFFFFFFF", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"PIN length 3", encryptField(t, "03123FFFFFFFFFFF", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"PIN length 13", encryptField(t, "0D1234567890123F", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"PIN length 15", encryptField(t, "0F12345678901234", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"PIN digit A", encryptField(t, "0612A456FFFFFFFF", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"last PIN digit F", encryptField(t, "0612345FFFFFFFFF", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"PIN digit in 12th place", encryptField(t, "0C12345678901BFF", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"filler E at end", encryptField(t, "06123456FFFFFFFE", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"filler 0 first", encryptField(t, "061234560FFFFFFF", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"filler digits", encryptField(t, "0412341234123412", demoMobile), demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"all zero block", "0000000000000000", demoMobile, tpk, DoubleLength, []error{ErrBadBlock}},
		{"wrong key", good, demoMobile, mustHex(t, "E8DD93B8AF13999C7644C0FE11F5D2A7"), DoubleLength, []error{ErrBadBlock}},
		{"other consumer", good, demoAccount, tpk, DoubleLength, []error{ErrBadBlock}},
		{"key 8 bytes, not legacy", good, demoMobile, tpk[:8], DoubleLength, []error{ErrBadBlock, ErrBadKey}},
		{"key 24 bytes", good, demoMobile, append(append([]byte{}, tpk...), tpk[:8]...), DoubleLength, []error{ErrBadBlock, ErrBadKey}},
		{"key 15 bytes", good, demoMobile, tpk[:15], DoubleLength, []error{ErrBadBlock, ErrBadKey}},
		{"key empty", good, demoMobile, nil, DoubleLength, []error{ErrBadBlock, ErrBadKey}},
		{"key halves equal", good, demoMobile, mustHex(t, "0123456789ABCDEF0123456789ABCDEF"), DoubleLength, []error{ErrBadBlock, ErrBadKey}},
		{"key halves equal but parity", good, demoMobile, mustHex(t, "0123456789ABCDEF0022446688AACCEE"), DoubleLength, []error{ErrBadBlock, ErrBadKey}},
		{"legacy with 16 bytes", good, demoMobile, tpk, LegacySingle, []error{ErrBadBlock, ErrBadKey}},
		{"unknown keying", good, demoMobile, tpk, Keying(7), []error{ErrBadBlock, ErrBadKey}},
		{"negative keying", good, demoMobile, tpk, Keying(-1), []error{ErrBadBlock, ErrBadKey}},
		{"consumer empty", good, "", tpk, DoubleLength, []error{ErrBadPAN}},
		{"consumer one digit", good, "1", tpk, DoubleLength, []error{ErrBadPAN}},
		{"consumer letters", good, "1391234567X", tpk, DoubleLength, []error{ErrBadPAN}},
		{"consumer 20 digits", good, "12345678901234567890", tpk, DoubleLength, []error{ErrBadPAN}},
		{"consumer with sign", good, "+13912345678", tpk, DoubleLength, []error{ErrBadPAN}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pin, err := Open(tt.block, tt.consumerID, tt.key, tt.keying)
			if err == nil {
				t.Fatalf("Open = %q, want an error", pin)
			}
			if pin != "" {
				t.Errorf("Open returned PIN %q with error %v", pin, err)
			}
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("Open error %q does not match %q", err, want)
				}
			}
			if errors.Is(err, ErrBadPAN) && errors.Is(err, ErrBadBlock) {
				t.Errorf("error %q is both a bad PAN and a bad block", err)
			}
			// Messages name the broken rule, never the block or a key.
			msg := err.Error()
			for _, secret := range []string{tt.block, demoTPK, "123456"} {
				if len(secret) >= 6 && strings.Contains(strings.ToUpper(msg), strings.ToUpper(secret)) {
					t.Errorf("error %q leaks %q", msg, secret)
				}
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	tpk := mustHex(t, demoTPK)
	tests := []struct {
		name, pin, consumerID string
		key                   []byte
		keying                Keying
		want                  error
	}{
		{"PIN 3 digits", "123", demoMobile, tpk, DoubleLength, ErrBadPIN},
		{"PIN 13 digits", "1234567890123", demoMobile, tpk, DoubleLength, ErrBadPIN},
		{"PIN empty", "", demoMobile, tpk, DoubleLength, ErrBadPIN},
		{"PIN letter", "12345a", demoMobile, tpk, DoubleLength, ErrBadPIN},
		{"PIN slash", "12/456", demoMobile, tpk, DoubleLength, ErrBadPIN},
		{"PIN colon", "12:456", demoMobile, tpk, DoubleLength, ErrBadPIN},
		{"PIN full-width digit", "12345\uff16", demoMobile, tpk, DoubleLength, ErrBadPIN},
		{"consumer letters", "123456", "abc", tpk, DoubleLength, ErrBadPAN},
		{"key 8 bytes, not legacy", "123456", demoMobile, tpk[:8], DoubleLength, ErrBadKey},
		{"key 24 bytes", "123456", demoMobile, make([]byte, 24), DoubleLength, ErrBadKey},
		{"legacy with 16 bytes", "123456", demoMobile, tpk, LegacySingle, ErrBadKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			block, err := Build(tt.pin, tt.consumerID, tt.key, tt.keying)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Build = %q, %v; want %v", block, err, tt.want)
			}
			if block != "" {
				t.Errorf("Build returned %q with an error", block)
			}
		})
	}
	if _, err := KCV(tpk[:8], DoubleLength); !errors.Is(err, ErrBadKey) {
		t.Errorf("KCV of an 8-byte key without legacy: %v, want ErrBadKey", err)
	}
}

func TestKeyingString(t *testing.T) {
	for k, want := range map[Keying]string{
		DoubleLength: "double-length TDES",
		LegacySingle: "legacy single DES",
		Keying(9):    "Keying(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Keying(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

// FuzzOpen feeds Open arbitrary input: it must never panic, and whatever it
// accepts must be a well-formed PIN that Build turns back into the same
// block (format 0 is deterministic).
func FuzzOpen(f *testing.F) {
	tpk, _ := hex.DecodeString(demoTPK)
	f.Add("ABC5E23474210DAC", "4451234567890129", []byte(tpk), false)
	f.Add("abc5e23474210dac", demoMobile, []byte(tpk), false)
	f.Add("0000000000000000", demoAccount, []byte(tpk[:8]), true)
	f.Add("ZZZZZZZZZZZZZZZZ", "", []byte{}, false)
	f.Add("", "1", []byte(nil), true)
	f.Fuzz(func(t *testing.T, block, consumerID string, key []byte, legacy bool) {
		keying := DoubleLength
		if legacy {
			keying = LegacySingle
		}
		pin, err := Open(block, consumerID, key, keying)
		if err != nil {
			if pin != "" {
				t.Fatalf("PIN %q returned with error %v", pin, err)
			}
			if !errors.Is(err, ErrBadBlock) && !errors.Is(err, ErrBadPAN) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if len(pin) < MinPINLen || len(pin) > MaxPINLen || strings.Trim(pin, "0123456789") != "" {
			t.Fatalf("Open accepted a malformed PIN %q", pin)
		}
		again, err := Build(pin, consumerID, key, keying)
		if err != nil {
			t.Fatalf("Build of an opened PIN: %v", err)
		}
		if again != strings.ToUpper(block) {
			t.Fatalf("Build(Open(%s)) = %s", block, again)
		}
	})
}
