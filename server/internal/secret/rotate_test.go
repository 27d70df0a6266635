package secret

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestRotation follows values through a rotation: written under key A,
// read by a ring whose current key is B with A as old, rewritten under B,
// then read by B alone.
func TestRotation(t *testing.T) {
	a := bytes.Clone(testMaster)
	b := bytes.Clone(testMaster)
	b[0] ^= 0xff
	ka := newKeys(t, a)
	tpk, err := ka.SealTPK("POS01", demoTPK)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ka.SealIDNumber("13800000001", "11010519491231002X")
	if err != nil {
		t.Fatal(err)
	}
	pw, err := ka.HashPassword("123456")
	if err != nil {
		t.Fatal(err)
	}
	indexA := ka.IDIndexes("11010519491231002X")[0]

	kb, err := New(b, a)
	if err != nil {
		t.Fatal(err)
	}
	if kb.KeyID() == ka.KeyID() {
		t.Fatal("two master keys share a key id")
	}
	for name, v := range map[string][]byte{"tpk": tpk, "id": id, "pw": pw, "index": indexA} {
		if !ka.IsCurrent(v) || kb.IsCurrent(v) {
			t.Errorf("%s: IsCurrent under A %v, under B %v; want true, false", name, ka.IsCurrent(v), kb.IsCurrent(v))
		}
	}
	if got, err := kb.OpenTPK("POS01", tpk); err != nil || !bytes.Equal(got, demoTPK) {
		t.Errorf("B+A opens A's TPK: %x, %v", got, err)
	}
	if got, err := kb.OpenIDNumber("13800000001", id); err != nil || got != "11010519491231002X" {
		t.Errorf("B+A opens A's ID: %q, %v", got, err)
	}
	if _, err := kb.OpenIDNumber("13800000002", id); !errors.Is(err, ErrUnseal) {
		t.Errorf("ID opened for another mobile: %v", err)
	}
	if ok, err := kb.VerifyPassword(pw, "123456"); !ok || err != nil {
		t.Errorf("B+A verifies A's hash: %v, %v", ok, err)
	}
	if ok, _ := kb.VerifyPassword(pw, "654321"); ok {
		t.Error("B+A verifies a wrong password")
	}
	idx := kb.IDIndexes("11010519491231002X")
	if len(idx) != 2 || !bytes.Equal(idx[1], indexA) || bytes.Equal(idx[0], indexA) || !kb.IsCurrent(idx[0]) {
		t.Errorf("B+A indexes do not list B's then A's")
	}
	if bytes.Equal(kb.IDIndexes("110105194912310039")[1], indexA) {
		t.Error("another ID number has the same index")
	}

	// Rewritten under B, everything opens with B alone.
	tpk2, _ := kb.SealTPK("POS01", demoTPK)
	id2, _ := kb.SealIDNumber("13800000001", "11010519491231002X")
	pw2, _ := kb.HashPassword("123456")
	only := newKeys(t, b)
	if got, err := only.OpenTPK("POS01", tpk2); err != nil || !bytes.Equal(got, demoTPK) {
		t.Errorf("B opens the re-sealed TPK: %v", err)
	}
	if got, err := only.OpenIDNumber("13800000001", id2); err != nil || got != "11010519491231002X" {
		t.Errorf("B opens the re-sealed ID: %v", err)
	}
	if ok, _ := only.VerifyPassword(pw2, "123456"); !ok {
		t.Error("B does not verify the re-hashed password")
	}
	// What A wrote does not open under B alone.
	if _, err := only.OpenTPK("POS01", tpk); !errors.Is(err, ErrUnseal) {
		t.Errorf("B alone opens A's TPK: %v", err)
	}
	if ok, _ := only.VerifyPassword(pw, "123456"); ok {
		t.Error("B alone verifies A's hash")
	}
}

// TestLegacyFormats reads values written before key ids (no tag): a sealed
// TPK of nonce and ciphertext and a 48-byte password hash, under whichever
// key of the ring wrote them.
func TestLegacyFormats(t *testing.T) {
	old := newKeys(t, testMaster)
	m := old.m.current
	legacyTPK := m.seal.Seal(nil, nil, demoTPK, []byte("POS01"))
	salt := []byte("0123456789abcdef")
	legacyPW := append(bytes.Clone(salt), passwordMAC(m.mac, salt, "123456")...)
	other := bytes.Clone(testMaster)
	other[5] ^= 1
	ring, err := New(other, testMaster)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*Keys{old, ring} {
		if got, err := k.OpenTPK("POS01", legacyTPK); err != nil || !bytes.Equal(got, demoTPK) {
			t.Errorf("legacy TPK: %x, %v", got, err)
		}
		if ok, err := k.VerifyPassword(legacyPW, "123456"); !ok || err != nil {
			t.Errorf("legacy hash: %v, %v", ok, err)
		}
		if ok, _ := k.VerifyPassword(legacyPW, "123457"); ok {
			t.Error("legacy hash verifies a wrong password")
		}
		if k.IsCurrent(legacyTPK) || k.IsCurrent(legacyPW) {
			t.Error("a legacy value counts as current")
		}
	}
}

func TestOldKeysFromEnv(t *testing.T) {
	dir := t.TempDir()
	cur, old := Generate(), Generate()
	file := filepath.Join(dir, "old")
	if err := os.WriteFile(file, []byte("# retired 2026-11\n\n"+old+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvMasterKey, cur)
	t.Setenv(EnvMasterKeyFile, "")
	t.Setenv(EnvOldMasterKeysFile, file)
	k, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ko, err := Parse(old)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := ko.SealTPK("POS01", demoTPK)
	if _, err := k.OpenTPK("POS01", sealed); err != nil {
		t.Errorf("the old key from the file does not read: %v", err)
	}
	if err := os.WriteFile(file, []byte(cur+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := FromEnv(); !errors.Is(err, ErrMasterKey) {
		t.Errorf("an old key equal to the current one: %v, want ErrMasterKey", err)
	}
}
