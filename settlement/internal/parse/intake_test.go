package parse

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// Issue 15: a NUL byte, an invalid UTF-8 sequence and a Ctrl-Z each give
// exactly the bad lines they should while the rest is read, and no text of
// a bad line carries a byte PostgreSQL cannot store.
func TestEveryByteHasAPlace(t *testing.T) {
	withNUL := strings.Replace(line14, "R9", "R\x009", 1)
	withNULInKey := strings.Replace(line14, "000540", "00\x00540", 1)
	invalid := strings.Replace(line14, "R9", "R\xff\xfe", 1)
	cases := []struct {
		name    string
		input   string
		records int
		bad     []int64 // line numbers of the bad lines
	}{
		{"NUL in the referrer", sampleLine + "\n" + withNUL + "\n" + sampleLine + "\n", 2, []int64{2}},
		{"NUL in a key field", withNULInKey + "\n" + sampleLine + "\n", 1, []int64{1}},
		{"a line of NULs", sampleLine + "\n\x00\x00\x00\n", 1, []int64{2}},
		{"invalid UTF-8", sampleLine + "\n" + invalid + "\n", 1, []int64{2}},
		{"Ctrl-Z after the last newline", sampleLine + "\r\n" + line14 + "\r\n\x1a", 2, nil},
		{"Ctrl-Z ending the last line", sampleLine + "\r\n" + line14 + "\x1a\x1a", 2, nil},
		{"Ctrl-Z inside the file is a bad line", sampleLine + "\n\x1a\n" + line14 + "\n", 2, []int64{2}},
		// An exporter that ends the mark's line too (the partner guide: a
		// Ctrl-Z at the end of the file is ignored), and blank lines after.
		{"Ctrl-Z on a last line of its own", sampleLine + "\r\n" + line14 + "\r\n\x1a\r\n", 2, nil},
		{"Ctrl-Z lines, then blank lines", sampleLine + "\r\n" + line14 + "\r\n\x1a\r\n \x1a\r\n\r\n", 2, nil},
		{"Ctrl-Z lines inside the file, held until a line follows", sampleLine + "\n\x1a\n\x1a\n\n" + line14 + "\n", 2, []int64{2, 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, bad, sum := parseAll(t, c.input, Options{})
			if len(recs) != c.records || len(bad) != len(c.bad) || sum.Lines != int64(c.records+len(c.bad)) {
				t.Fatalf("%d records, bad lines %+v; want %d records, bad lines at %v", len(recs), bad, c.records, c.bad)
			}
			for i, b := range bad {
				if b.LineNo != c.bad[i] {
					t.Errorf("bad line %d at line %d, want %d", i, b.LineNo, c.bad[i])
				}
				for _, s := range []string{b.Text, b.Reason()} {
					if strings.ContainsRune(s, 0) || !utf8.ValidString(s) {
						t.Errorf("bad line %d holds %q: not storable", b.LineNo, s)
					}
				}
			}
		})
	}
}

// Issue 15: a trailer line is checked against the file, not read as a bad
// line; one that is not the last line is a bad line.
func TestTrailer(t *testing.T) {
	bad := strings.Replace(line14, "12.5", "12.505", 1) // unreadable amount
	badAmountOK := strings.Replace(line14, "POS01", "", 1)
	cases := []struct {
		name     string
		input    string
		required bool
		lines    int64
		wantErr  string // "" = the check passes
		badLines int
	}{
		{"none, not required", sampleLine + "\n", false, 1, "", 0},
		{"none, required", sampleLine + "\n", true, 1, "no trailer", 0},
		{"agrees", sampleLine + "\n" + line14 + "\n合计|2|12.51\n", true, 2, "", 0},
		{"TOTAL, CRLF", sampleLine + "\r\n" + line14 + "\r\nTOTAL | 2 | 12.51\r\n", false, 2, "", 0},
		{"GBK 合计", sampleLine + "\n" + gbkHeji + "|1|0.01\n", false, 1, "", 0},
		{"wrong count", sampleLine + "\n" + line14 + "\n合计|3|12.51\n", false, 2,
			"says 3 records totalling 12.51 yuan; the file has 2 records totalling 12.51 yuan", 0},
		{"wrong total", sampleLine + "\n" + line14 + "\n合计|2|4500.00\n", false, 2,
			"says 2 records totalling 4500.00 yuan; the file has 2 records totalling 12.51 yuan", 0},
		{"a bad line's readable amount counts", sampleLine + "\n" + badAmountOK + "\n合计|2|12.51\n", true, 2, "", 1},
		{"a bad line without an amount", sampleLine + "\n" + bad + "\n合计|2|12.51\n", true, 2, "1 bad lines without a readable amount", 1},
		{"unreadable trailer", sampleLine + "\n合计|x|1\n", true, 2, "no trailer", 1},
		{"trailer not last", sampleLine + "\n合计|1|0.01\n" + line14 + "\n", true, 3, "no trailer", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, badLines, sum := parseAll(t, c.input, Options{})
			if sum.Lines != c.lines || len(badLines) != c.badLines {
				t.Fatalf("lines %d, bad %+v; want %d lines, %d bad", sum.Lines, badLines, c.lines, c.badLines)
			}
			for _, b := range badLines {
				if b.Kind == KindBadTrailer && b.LineNo != 2 {
					t.Errorf("trailer bad line at %d, want 2", b.LineNo)
				}
			}
			err := sum.CheckTrailer(c.required)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("CheckTrailer: %v", err)
			case c.wantErr != "" && (!errors.Is(err, ErrTrailer) || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("CheckTrailer: %v, want one saying %q", err, c.wantErr)
			}
		})
	}
}
