package parse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that no input makes the parser panic or break the
// invariants the server relies on: every data line is a record or a bad
// line, the total is the sum of the records, chunks are bounded, line
// numbers are real and ascending, strings are valid UTF-8 and no bad-line
// text carries a card or ID number in full. The committed corpus is in
// testdata/fuzz/FuzzParse; run more with
// go test -fuzz=FuzzParse ./settlement/internal/parse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleLine))
	f.Add([]byte("\uFEFF" + header14 + "\r\n" + sampleLine + "\r\n" + line14 + "\r\n"))
	f.Add([]byte(withField(fieldAmount, "1.234") + "\n\n" + withField(fieldTradeDate, "20230229")))
	f.Add([]byte("a|b|c\n||||||||||||\n|||||||||||||\n"))
	f.Add([]byte(gbkHeader + "\n" + gbkHeader + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const chunkSize = 3
		opts := Options{ChunkSize: chunkSize, MaxLineBytes: 256}
		var records, badLines, total int64
		lastLine := int64(0)
		maxLine := int64(bytes.Count(data, []byte("\n")) + 1)
		sum, err := Parse(bytes.NewReader(data), opts, func(c Chunk) error {
			if c.Len() == 0 || c.Len() > chunkSize {
				t.Errorf("chunk of %d", c.Len())
			}
			// Records and bad lines of a chunk each keep file order, and
			// every line of a chunk comes after every line of the last one.
			chunkMax := lastLine
			prev := lastLine
			for _, r := range c.Records {
				if r.LineNo <= prev || r.LineNo > maxLine {
					t.Errorf("record line %d after %d (max %d)", r.LineNo, prev, maxLine)
				}
				prev = r.LineNo
				chunkMax = max(chunkMax, r.LineNo)
				if r.Amount <= 0 || r.Amount > MaxAmountFen {
					t.Errorf("amount %d", r.Amount)
				}
				total += r.Amount
				for _, s := range []string{r.TradeID, r.CardNo, r.TerminalOrderID, r.ReferenceNo, r.SellerID, r.TerminalID, r.BatchNo, r.TradeDate, r.TradeTime, r.IDNumber, r.Mobile, r.Referrer, r.ProductID} {
					if !utf8.ValidString(s) {
						t.Errorf("record field %q not UTF-8", s)
					}
				}
				if r.TradeID == "" || r.TerminalID == "" || !validDate(r.TradeDate) || !validTime(r.TradeTime) {
					t.Errorf("record %+v", r)
				}
			}
			prev = lastLine
			for _, b := range c.BadLines {
				if b.LineNo <= prev || b.LineNo > maxLine {
					t.Errorf("bad line %d after %d (max %d)", b.LineNo, prev, maxLine)
				}
				prev = b.LineNo
				chunkMax = max(chunkMax, b.LineNo)
				if !utf8.ValidString(b.Text) || !utf8.ValidString(b.Reason()) ||
					bytes.IndexByte([]byte(b.Text+b.Reason()), 0) >= 0 {
					t.Errorf("bad line not UTF-8: %+v", b)
				}
				if len(b.Text) > MaxBadTextBytes+8 {
					t.Errorf("bad-line text of %d bytes", len(b.Text))
				}
				for _, s := range []string{b.Text, b.Reason()} {
					if run := longDigitRun(s); run != "" {
						t.Errorf("bad line %q holds the digit run %s", s, run)
					}
				}
				if b.Kind == "" {
					t.Errorf("bad line without a kind: %+v", b)
				}
			}
			lastLine = chunkMax
			records += int64(len(c.Records))
			badLines += int64(len(c.BadLines))
			return nil
		})
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		h := sha256.Sum256(data)
		if sum.SHA256 != hex.EncodeToString(h[:]) || sum.Bytes != int64(len(data)) {
			t.Errorf("sha256 or size wrong: %+v", sum)
		}
		if sum.Records != records || sum.BadLines != badLines || sum.Lines != records+badLines || sum.TotalFen != total {
			t.Errorf("summary %+v, counted %d records %d bad lines total %d", sum, records, badLines, total)
		}
	})
}

// longDigitRun returns a maximal run of 16 or more digits (an X allowed as
// the 18th) in s, a card or ID number whole or fused with other digits, or
// "".
func longDigitRun(s string) string {
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
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
		if j-i >= 16 {
			return s[i:j]
		}
		i = j
	}
	return ""
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
