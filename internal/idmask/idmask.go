// Package idmask masks card and ID numbers in text that leaves the database
// that needs them (SPEC section 7: no whole ID number in logs, queue items
// or reports): the settlement command masks the bad lines it reads, and the
// server masks again what it is sent, whoever sent it.
package idmask

import (
	"strings"
	"unicode/utf8"
)

// Value keeps the first 6 and last 4 characters of a card or ID number and
// stars the rest; a value too short to hide anything that way is starred
// whole.
func Value(v string) string {
	if v == "" {
		return v
	}
	n := utf8.RuneCountInString(v)
	if n <= 10 {
		return strings.Repeat("*", n)
	}
	r := []rune(v)
	return string(r[:6]) + strings.Repeat("*", n-10) + string(r[n-4:])
}

// DigitRuns masks (Value) each maximal run of 16 or more digits, an X or x
// allowed as the 18th (an ID number, a card number, or either fused with
// the digits next to it when a line lost a '|'), wherever it is: a longer
// run such as a 40-digit 交易id keeps its first 6 and last 4 digits too (a
// bad line is found in its file by its line number). A shorter run, such
// as a mobile number or a 15-digit 商户号, is left alone.
func DigitRuns(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		if !isDigit(s[i]) {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j < len(s) && (s[j] == 'X' || s[j] == 'x') && j-i == 17 {
			j++
		}
		run := s[i:j]
		if len(run) >= 16 {
			run = Value(run)
		}
		b.WriteString(run)
		i = j
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
