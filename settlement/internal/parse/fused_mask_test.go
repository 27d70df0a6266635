package parse

import (
	"strings"
	"testing"
)

// A 13-field line (the partner's own sample shape) that lost the '|'
// between the ID number and the mobile number has 12 fields: a bad line of
// the wrong field count, masked by its digit runs only. The ID and the
// mobile fuse into one 29-digit run, which is masked like any run of 16 or
// more digits (found by review: runs over 19 digits were left whole).
func TestBadLineFusedIDMasked(t *testing.T) {
	const id = "110105194912310038" // a valid ID number ending in a digit
	line := "T0001|6225380083477614|12.5|000540|152412390952|SH01|POS01|000001|20250101|235959|" + id + "13912345678|1010"
	_, bad, _ := parseAll(t, line+"\n", Options{})
	if len(bad) != 1 {
		t.Fatalf("bad %+v", bad)
	}
	if strings.Contains(bad[0].Text, id) {
		t.Errorf("bad line text holds the whole ID number %s: %q", id, bad[0].Text)
	}
}
