package parse

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrTrailer means the file's trailer does not agree with the file, or a
// trailer is required and there is none: the file is incomplete or not the
// POSP's, and nothing of it may be settled.
var ErrTrailer = errors.New("settlement file trailer check failed")

// gbkHeji is 合计 in GBK, the encoding some POSPs still write.
const gbkHeji = "\xba\xcf\xbc\xc6"

// isTrailer recognises the POSP's closing line, 合计|count|total or
// TOTAL|count|total (a habit of bank file exchange): three fields, the
// first one of those words.
func isTrailer(fields []string) bool {
	if len(fields) != 3 {
		return false
	}
	f := fields[0]
	return f == "合计" || f == gbkHeji || strings.EqualFold(f, "TOTAL")
}

// readTrailer reads a trailer's count (a whole number) and total (yuan, as
// 金额); it returns nil and why when they cannot be read.
func readTrailer(fields []string) (*Trailer, string) {
	n, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil || n < 0 || !allDigits(fields[1]) {
		return nil, fmt.Sprintf("trailer count %q is not a whole number", clip(fields[1]))
	}
	total, err := ParseYuan(fields[2])
	if err != nil {
		return nil, fmt.Sprintf("trailer total %q: %v", clip(fields[2]), err)
	}
	return &Trailer{Count: n, TotalFen: total}, ""
}

// CheckTrailer compares the file with its trailer: the trailer's count must
// equal the data lines (records and bad lines, not the header or trailer)
// and its total the sum of every amount on them. required makes a file
// without a trailer fail too (a site whose POSP always writes one: a file
// without it is incomplete).
//
// Errors: ErrTrailer, wrapped with a message naming both figures.
func (s Summary) CheckTrailer(required bool) error {
	tr := s.Trailer
	if tr == nil {
		if required {
			return fmt.Errorf("%w: the file has no trailer line (合计|count|total), required by MAPFRONT_SETTLE_COMPLETE", ErrTrailer)
		}
		return nil
	}
	total := s.TotalFen + s.BadAmountFen
	if tr.Count != s.Lines || tr.TotalFen != total {
		var note string
		if s.BadNoAmount > 0 {
			note = fmt.Sprintf(" (%d bad lines without a readable amount)", s.BadNoAmount)
		}
		return fmt.Errorf("%w: the trailer (line %d) says %d records totalling %s yuan; the file has %d records totalling %s yuan%s",
			ErrTrailer, tr.LineNo, tr.Count, formatYuan(tr.TotalFen), s.Lines, formatYuan(total), note)
	}
	return nil
}

// formatYuan writes fen as yuan with two decimals, for messages.
func formatYuan(fen int64) string {
	return fmt.Sprintf("%d.%02d", fen/100, fen%100)
}
