package mapfront

import (
	"fmt"
)

// Yuan strings are parsed only where they arrive, in the settlement file
// (settlement/internal/parse): the server receives fen.

// MaxAmount bounds any amount in fen that the system accepts anywhere
// (10^15 fen = 10^13 yuan): far above any real card or payment, far below
// int64 overflow even when summed a million times.
const MaxAmount int64 = 1_000_000_000_000_000

// FormatYuan writes fen as yuan with two decimals, e.g. 450000 → "4500.00".
func FormatYuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}
