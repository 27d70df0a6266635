package pinblock

import (
	"encoding/hex"
	"strings"
	"testing"
)

// The known answer of SPEC section 5.
func TestKnownAnswer(t *testing.T) {
	clear, err := ClearBlock("123456", "4451234567890129")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ToUpper(hex.EncodeToString(clear[:])); got != "06122662A9876FED" {
		t.Errorf("clear block = %s, want 06122662A9876FED", got)
	}
	b, err := NewBuilderHex("E8DD93B8AF13999C7644C0FE11F5D2A7")
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Build("123456", "4451234567890129")
	if err != nil {
		t.Fatal(err)
	}
	if got != "ABC5E23474210DAC" {
		t.Errorf("encrypted = %s, want ABC5E23474210DAC", got)
	}
}

// An 11-digit mobile number has only 10 digits before its last: the PAN
// field is left-padded with zeros.
func TestShortPAN(t *testing.T) {
	clear, err := ClearBlock("1234", "13912345678")
	if err != nil {
		t.Fatal(err)
	}
	// PIN field 041234FFFFFFFFFF, PAN field 0000001391234567.
	if got := strings.ToUpper(hex.EncodeToString(clear[:])); got != "041234EC6EDCBA98" {
		t.Errorf("clear block = %s, want 041234EC6EDCBA98", got)
	}
}

func TestRefusals(t *testing.T) {
	for _, c := range []struct{ pin, pan string }{
		{"123", "13912345678"}, {"1234567890123", "13912345678"}, {"12a456", "13912345678"},
		{"123456", "1"}, {"123456", "139123x5678"}, {"123456", "12345678901234567890"},
	} {
		if _, err := ClearBlock(c.pin, c.pan); err == nil {
			t.Errorf("ClearBlock(%q, %q) accepted", c.pin, c.pan)
		}
	}
	for _, k := range []string{"0123", "0123456789ABCDEF0123456789ABCDEF", "zz23456789ABCDEFFEDCBA9876543210"} {
		if _, err := NewBuilderHex(k); err == nil {
			t.Errorf("NewBuilderHex(%q) accepted", k)
		}
	}
}

// Blocks under the demo TPK as `bin/server pinblock` builds them: the server's
// implementation and this one agree on 11-digit consumerIds, which is what
// the load generator sends.
func TestAgainstServerBuild(t *testing.T) {
	b, err := NewBuilderHex("0123456789ABCDEFFEDCBA9876543210")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ pin, pan, want string }{
		{"135790", "15000000042", "3DA3248A44A4BCA5"},
		{"123456", "13912345678", "B5BA8AF886E80014"},
	} {
		got, err := b.Build(c.pin, c.pan)
		if err != nil || got != c.want {
			t.Errorf("Build(%s, %s) = %s, %v; want %s", c.pin, c.pan, got, err, c.want)
		}
	}
}
