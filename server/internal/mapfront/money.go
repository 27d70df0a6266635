package mapfront

import (
	"errors"
	"fmt"
	"strings"
)

// MaxAmount bounds any amount in fen that the system accepts anywhere
// (10^15 fen = 10^13 yuan): far above any real card or payment, far below
// int64 overflow even when summed a million times.
const MaxAmount int64 = 1_000_000_000_000_000

// ParseYuan converts a yuan amount with at most two decimals ("0.01", "12",
// "12.5", "1234.56") to fen exactly, without floating point (SPEC section 6).
// Signs, exponents, separators and more than two decimals are refused.
func ParseYuan(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty amount")
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && (frac == "" || len(frac) > 2)) {
		return 0, fmt.Errorf("amount %q is not yuan with at most 2 decimals", s)
	}
	var fen int64
	for _, r := range whole {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("amount %q is not yuan with at most 2 decimals", s)
		}
		fen = fen*10 + int64(r-'0')
		if fen > MaxAmount/100 {
			return 0, fmt.Errorf("amount %q is too large", s)
		}
	}
	fen *= 100
	scale := int64(10)
	for _, r := range frac {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("amount %q is not yuan with at most 2 decimals", s)
		}
		fen += int64(r-'0') * scale
		scale /= 10
	}
	return fen, nil
}

// FormatYuan writes fen as yuan with two decimals, e.g. 450000 → "4500.00".
func FormatYuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}
