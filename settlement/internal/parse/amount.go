package parse

import (
	"errors"
	"strings"
)

// MaxAmountFen bounds one record's amount (10^15 fen, 10^13 yuan), the same
// bound the server puts on every amount: far above any real card sale, and
// far enough below int64 that the file total is safe to add up.
const MaxAmountFen int64 = 1_000_000_000_000_000

// ParseYuan converts a yuan amount with at most two decimals ("0.01", "12",
// "12.5") to fen exactly. It works on the digits as integers and never
// through a float, which could not hold 0.01 exactly (SPEC section 6). Signs,
// exponents, separators, a bare "12." or ".5", and more than two decimals
// are refused rather than guessed at.
func ParseYuan(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	switch {
	case s[0] == '-':
		return 0, errors.New("negative")
	case s[0] == '+':
		return 0, errors.New("sign not allowed")
	case strings.ContainsAny(s, "eE"):
		return 0, errors.New("exponent not allowed")
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") {
		return 0, errors.New("not a yuan amount")
	}
	if len(frac) > 2 {
		return 0, errors.New("more than 2 decimals")
	}
	var fen int64
	for i := 0; i < len(whole); i++ {
		c := whole[i]
		if c < '0' || c > '9' {
			return 0, errors.New("not a yuan amount")
		}
		fen = fen*10 + int64(c-'0')
		// Checked on every digit so that a long run of digits cannot
		// overflow before the bound is seen.
		if fen > MaxAmountFen/100 {
			return 0, errors.New("too large")
		}
	}
	fen *= 100
	scale := int64(10)
	for i := 0; i < len(frac); i++ {
		c := frac[i]
		if c < '0' || c > '9' {
			return 0, errors.New("not a yuan amount")
		}
		fen += int64(c-'0') * scale
		scale /= 10
	}
	if fen > MaxAmountFen {
		return 0, errors.New("too large")
	}
	return fen, nil
}
