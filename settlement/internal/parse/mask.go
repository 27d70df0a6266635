package parse

import (
	"strings"
	"unicode/utf8"

	"mapfront/internal/idmask"
)

// badText is the text kept for a bad line: the fields joined again, with
// the card number and the ID number masked wherever the line has the shape
// of a record, and any run of 16 or more digits masked wherever it is, since
// a line with the wrong field count may hold them anywhere (SPEC section 7:
// no whole ID number outside the database that needs it).
func badText(fields []string) string {
	masked := make([]string, len(fields))
	copy(masked, fields)
	if len(masked) == fieldCount || len(masked) == fieldCount-1 {
		masked[fieldCardNo] = maskValue(masked[fieldCardNo])
		masked[fieldIDNumber] = maskValue(masked[fieldIDNumber])
	}
	return finishText(strings.Join(masked, "|"))
}

// truncatedText is the text kept for a line too long to read: its first
// bytes only, with the last field dropped because the cut may have split an
// ID number whose masking could no longer keep to first 6 and last 4.
func truncatedText(raw []byte) string {
	head := string(raw[:min(len(raw), MaxBadTextBytes)])
	fields := strings.Split(head, "|")
	if len(fields) > 1 {
		fields = fields[:len(fields)-1]
	} else {
		fields = nil
	}
	return finishText(strings.Join(fields, "|") + "|…")
}

// finishText makes text valid UTF-8 that PostgreSQL can store, cuts it to
// MaxBadTextBytes and masks the digit runs last, so that no cut can leave an
// unmasked run behind.
func finishText(s string) string {
	s = storable(s)
	if len(s) > MaxBadTextBytes {
		i := MaxBadTextBytes
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "…"
	}
	return maskDigitRuns(s)
}

// maskValue and maskDigitRuns are idmask's, which the server applies again
// to what it is sent.
var (
	maskValue     = idmask.Value
	maskDigitRuns = idmask.DigitRuns
)

// storable makes s valid UTF-8 without NUL, the one character a PostgreSQL
// text column refuses: every invalid byte and every NUL becomes U+FFFD, so
// that whatever a line holds it reaches the queue as a bad line instead of
// failing the batch.
func storable(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
