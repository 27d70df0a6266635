package parse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// sampleLine is the partner document's own sample (线下开卡交割接口): 13
// fields, no referrer, its last value 1234 the product id.
const sampleLine = "2020030744015541000101023952001524000539|6225380083477614|0.01|000539|152412390951|307440155410001|01023952|001524|20141211|152412|123456789123456788|15017513750|1234"

// line14 is a full 14-field line with a referrer.
const line14 = "T0001|6225380083477614|12.5|000540|152412390952|SH01|POS01|000001|20250101|235959|11010519491231002X|13912345678|R9|1010"

const header14 = "交易id|卡号|金额|流水号|参考号|商户号|终端号|批次号|交易日期|交易时间|身份证号|手机号|推荐人id|产品编号"

func parseAll(t *testing.T, input string, opts Options) ([]Record, []BadLine, Summary) {
	t.Helper()
	var recs []Record
	var bad []BadLine
	sum, err := Parse(strings.NewReader(input), opts, func(c Chunk) error {
		recs = append(recs, c.Records...)
		bad = append(bad, c.BadLines...)
		return nil
	})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return recs, bad, sum
}

func TestSampleLine(t *testing.T) {
	recs, bad, sum := parseAll(t, sampleLine+"\n", Options{})
	if len(bad) != 0 || len(recs) != 1 {
		t.Fatalf("got %d records, bad lines %+v", len(recs), bad)
	}
	want := Record{
		LineNo:          1,
		TradeID:         "2020030744015541000101023952001524000539",
		CardNo:          "6225380083477614",
		Amount:          1,
		TerminalOrderID: "000539",
		ReferenceNo:     "152412390951",
		SellerID:        "307440155410001",
		TerminalID:      "01023952",
		BatchNo:         "001524",
		TradeDate:       "20141211",
		TradeTime:       "152412",
		IDNumber:        "123456789123456788",
		Mobile:          "15017513750",
		Referrer:        "",
		ProductID:       "1234",
	}
	if recs[0] != want {
		t.Errorf("record\n got %+v\nwant %+v", recs[0], want)
	}
	if sum.Records != 1 || sum.Lines != 1 || sum.BadLines != 0 || sum.TotalFen != 1 || sum.Header {
		t.Errorf("summary %+v", sum)
	}
}

func TestFourteenFields(t *testing.T) {
	recs, bad, _ := parseAll(t, line14, Options{})
	if len(bad) != 0 || len(recs) != 1 {
		t.Fatalf("records %d, bad %+v", len(recs), bad)
	}
	r := recs[0]
	if r.Referrer != "R9" || r.ProductID != "1010" || r.Amount != 1250 || r.IDNumber != "11010519491231002X" {
		t.Errorf("record %+v", r)
	}
}

func TestParseYuan(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0.01", 1},
		{"12", 1200},
		{"12.5", 1250},
		{"12.50", 1250},
		{"1234.56", 123456},
		{"0.10", 10},
		{"007.05", 705},
		{"0", 0},
		{"10000000000000", MaxAmountFen},
		{"9999999999999.99", MaxAmountFen - 1},
	}
	for _, c := range good {
		got, err := ParseYuan(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseYuan(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	bad := []string{
		"", "-1", "-0.01", "+1", "1e3", "1E2", "1.234", "0.001", "12.", ".5", ".",
		"1,000.00", "1 000", "一", "0x10", "1..2", "1.2.3", "NaN", "Inf",
		"10000000000000.01", "99999999999999999999999", " 1",
	}
	for _, in := range bad {
		if got, err := ParseYuan(in); err == nil {
			t.Errorf("ParseYuan(%q) = %d, want an error", in, got)
		}
	}
}

// TestTolerances feeds the same two records wrapped in every tolerated
// variation and expects the same records back.
func TestTolerances(t *testing.T) {
	spaced := strings.ReplaceAll(sampleLine, "|", " | ")
	cases := []struct {
		name   string
		input  string
		header bool
	}{
		{"plain LF", sampleLine + "\n" + line14 + "\n", false},
		{"no final newline", sampleLine + "\n" + line14, false},
		{"CRLF", sampleLine + "\r\n" + line14 + "\r\n", false},
		{"blank lines", "\n\n" + sampleLine + "\n   \n\t\r\n" + line14 + "\n\n", false},
		{"surrounding spaces", "  " + spaced + "  \n\t" + line14 + "\t\n", false},
		{"full-width space", "\u3000" + sampleLine + "\u3000\n" + line14 + "\n", false},
		{"BOM", "\uFEFF" + sampleLine + "\n" + line14 + "\n", false},
		{"header", header14 + "\n" + sampleLine + "\n" + line14 + "\n", true},
		{"BOM and header CRLF", "\uFEFF" + header14 + "\r\n" + sampleLine + "\r\n" + line14 + "\r\n", true},
		{"13-field header", strings.TrimSuffix(header14, "|推荐人id|产品编号") + "|产品编号\n" + sampleLine + "\n" + line14, true},
		{"header with upper-case ID", strings.Replace(header14, "交易id", "交易ID", 1) + "\n" + sampleLine + "\n" + line14, true},
		{"GBK header", gbkHeader + "\n" + sampleLine + "\n" + line14, true},
		{"blank line before header", "\n" + header14 + "\n" + sampleLine + "\n" + line14, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, bad, sum := parseAll(t, c.input, Options{})
			if len(bad) != 0 {
				t.Fatalf("bad lines: %+v", bad)
			}
			if len(recs) != 2 {
				t.Fatalf("got %d records, want 2", len(recs))
			}
			if recs[0].TradeID != "2020030744015541000101023952001524000539" || recs[0].ProductID != "1234" || recs[0].Amount != 1 {
				t.Errorf("first record %+v", recs[0])
			}
			if recs[1].TradeID != "T0001" || recs[1].ProductID != "1010" || recs[1].Amount != 1250 {
				t.Errorf("second record %+v", recs[1])
			}
			if sum.Header != c.header || sum.Records != 2 || sum.Lines != 2 || sum.TotalFen != 1251 {
				t.Errorf("summary %+v", sum)
			}
			if sum.SHA256 != sha(c.input) || sum.Bytes != int64(len(c.input)) {
				t.Errorf("sha/bytes %s/%d, want %s/%d", sum.SHA256, sum.Bytes, sha(c.input), len(c.input))
			}
		})
	}
}

// gbkHeader is the header line encoded in GBK, as a Windows tool may write
// it: not UTF-8, but still recognisable as a header.
var gbkHeader = string([]byte{0xbd, 0xbb, 0xd2, 0xd7, 'i', 'd', '|', 0xbf, 0xa8, 0xba, 0xc5, '|', 0xbd, 0xf0, 0xb6, 0xee, '|', 0xc1, 0xf7, 0xcb, 0xae, 0xba, 0xc5, '|', 0xb2, 0xce, 0xbf, 0xbc, 0xba, 0xc5, '|', 0xc9, 0xcc, 0xbb, 0xa7, 0xba, 0xc5, '|', 0xd6, 0xd5, 0xb6, 0xcb, 0xba, 0xc5, '|', 0xc5, 0xfa, 0xb4, 0xce, 0xba, 0xc5, '|', 0xbd, 0xbb, 0xd2, 0xd7, 0xc8, 0xd5, 0xc6, 0xda, '|', 0xbd, 0xbb, 0xd2, 0xd7, 0xca, 0xb1, 0xbc, 0xe4, '|', 0xc9, 0xed, 0xb7, 0xdd, 0xd6, 0xa4, 0xba, 0xc5, '|', 0xca, 0xd6, 0xbb, 0xfa, 0xba, 0xc5, '|', 0xcd, 0xc6, 0xbc, 0xf6, 0xc8, 0xcb, 'i', 'd', '|', 0xb2, 0xfa, 0xc6, 0xb7, 0xb1, 0xe0, 0xba, 0xc5})

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// withField returns the sample line with field i replaced.
func withField(i int, v string) string {
	f := strings.Split(sampleLine, "|")
	f[i] = v
	return strings.Join(f, "|")
}

func TestBadLines(t *testing.T) {
	cases := []struct {
		name   string
		line   string
		kind   Kind
		detail string // a part of the detail
	}{
		{"12 fields", strings.Join(strings.Split(sampleLine, "|")[:12], "|"), KindFieldCount, "12 fields"},
		{"15 fields", line14 + "|x", KindFieldCount, "15 fields"},
		{"trailing separator on 14", line14 + "|", KindFieldCount, "15 fields"},
		{"one field", "hello", KindFieldCount, "1 fields"},
		{"empty trade id", withField(fieldTradeID, ""), KindMissingField, "交易id"},
		{"empty terminal order id", withField(fieldTerminalOrderID, " "), KindMissingField, "流水号"},
		{"empty seller", withField(fieldSellerID, ""), KindMissingField, "商户号"},
		{"empty terminal", withField(fieldTerminalID, ""), KindMissingField, "终端号"},
		{"empty batch", withField(fieldBatchNo, ""), KindMissingField, "批次号"},
		{"empty amount", withField(fieldAmount, ""), KindMissingField, "金额"},
		{"trade id too long", withField(fieldTradeID, strings.Repeat("9", 65)), KindBadField, "交易id longer than 64"},
		{"terminal id too long", withField(fieldTerminalID, strings.Repeat("A", 33)), KindBadField, "终端号 longer than 32"},
		{"space inside seller id", withField(fieldSellerID, "SH 01"), KindBadField, "商户号"},
		{"Chinese in terminal order id", withField(fieldTerminalOrderID, "流水"), KindBadField, "流水号"},
		{"control character in referrer", strings.Replace(line14, "|R9|", "|R\x019|", 1), KindBadField, "推荐人id"},
		{"invalid UTF-8 in referrer", strings.Replace(line14, "|R9|", "|R\xff9|", 1), KindBadField, "推荐人id"},
		{"negative amount", withField(fieldAmount, "-0.01"), KindBadAmount, "negative"},
		{"three decimals", withField(fieldAmount, "0.001"), KindBadAmount, "more than 2 decimals"},
		{"exponent", withField(fieldAmount, "1e2"), KindBadAmount, "exponent"},
		{"zero amount", withField(fieldAmount, "0.00"), KindBadAmount, "zero"},
		{"amount in fen with letters", withField(fieldAmount, "1元"), KindBadAmount, "not a yuan amount"},
		{"huge amount", withField(fieldAmount, "99999999999999999999"), KindBadAmount, "too large"},
		{"date not a date", withField(fieldTradeDate, "20141301"), KindBadDate, "20141301"},
		{"date Feb 29 non-leap", withField(fieldTradeDate, "20230229"), KindBadDate, "20230229"},
		{"date with dashes", withField(fieldTradeDate, "2014-12-11"), KindBadDate, "2014-12-11"},
		{"date short", withField(fieldTradeDate, "141211"), KindBadDate, "141211"},
		{"time 24h", withField(fieldTradeTime, "240000"), KindBadTime, "240000"},
		{"time minute 60", withField(fieldTradeTime, "126000"), KindBadTime, "126000"},
		{"time with colons", withField(fieldTradeTime, "15:24:12"), KindBadTime, "15:24:12"},
		{"time short", withField(fieldTradeTime, "1524"), KindBadTime, "1524"},
		{"repeated header", header14, KindRepeatedHeader, "header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A good line before and after proves that parsing goes on and
			// that the line number is the physical one.
			input := sampleLine + "\n\n" + c.line + "\n" + line14 + "\n"
			recs, bad, sum := parseAll(t, input, Options{})
			if len(recs) != 2 {
				t.Errorf("got %d records, want 2", len(recs))
			}
			if len(bad) != 1 {
				t.Fatalf("bad lines %+v, want one", bad)
			}
			b := bad[0]
			if b.LineNo != 3 || b.Kind != c.kind || !strings.Contains(b.Detail, c.detail) {
				t.Errorf("bad line %+v, want line 3 kind %s detail containing %q", b, c.kind, c.detail)
			}
			if !strings.HasPrefix(b.Reason(), string(c.kind)+": ") {
				t.Errorf("Reason() = %q", b.Reason())
			}
			if sum.Lines != 3 || sum.Records != 2 || sum.BadLines != 1 || sum.TotalFen != 1251 {
				t.Errorf("summary %+v", sum)
			}
		})
	}
}

func TestBadLineMasksIDAndCard(t *testing.T) {
	line := withField(fieldAmount, "abc")
	_, bad, _ := parseAll(t, line, Options{})
	if len(bad) != 1 {
		t.Fatalf("bad %+v", bad)
	}
	text := bad[0].Text
	for _, secret := range []string{"123456789123456788", "6225380083477614"} {
		if strings.Contains(text, secret) {
			t.Errorf("text %q holds %s", text, secret)
		}
	}
	// The 40-digit 交易id is a run of 16 or more digits too: it keeps its
	// first 6 and last 4 (the line number finds the line in its file).
	for _, kept := range []string{"123456********6788", "622538******7614", "202003******************************0539", "307440155410001", "15017513750"} {
		if !strings.Contains(text, kept) {
			t.Errorf("text %q lacks %s", text, kept)
		}
	}

	// A shifted line may put the ID number where the amount belongs; the
	// detail that quotes the amount masks it too.
	_, bad, _ = parseAll(t, withField(fieldAmount, "123456789123456788"), Options{})
	if len(bad) != 1 || strings.Contains(bad[0].Reason(), "123456789123456788") || !strings.Contains(bad[0].Reason(), "123456********6788") {
		t.Errorf("bad %+v", bad)
	}

	// With the wrong field count the fields have no known place, so ID and
	// card numbers are found by their shape.
	_, bad, _ = parseAll(t, "x|11010519491231002X|6225380083477614|307440155410001", Options{})
	if len(bad) != 1 || bad[0].Text != "x|110105********002X|622538******7614|307440155410001" {
		t.Errorf("bad %+v", bad)
	}
}

func TestLineTooLong(t *testing.T) {
	long := sampleLine + "|" + strings.Repeat("123456789012345678|", 400) // ~7.6 KiB
	for _, tail := range []string{"\n" + line14 + "\n", ""} {
		input := sampleLine + "\n" + long + tail
		recs, bad, sum := parseAll(t, input, Options{})
		if len(bad) != 1 || bad[0].Kind != KindLineTooLong || bad[0].LineNo != 2 {
			t.Fatalf("bad %+v", bad)
		}
		if len(bad[0].Text) > MaxBadTextBytes+8 {
			t.Errorf("kept %d bytes of text", len(bad[0].Text))
		}
		if strings.Contains(bad[0].Text, "123456789123456788") || strings.Contains(bad[0].Text, "123456789012345678") {
			t.Errorf("text holds an unmasked ID: %q", bad[0].Text)
		}
		wantRecs := 1
		if tail != "" {
			wantRecs = 2
		}
		if len(recs) != wantRecs || sum.Lines != int64(wantRecs+1) || sum.Bytes != int64(len(input)) {
			t.Errorf("records %d, summary %+v", len(recs), sum)
		}
	}

	// The limit counts the content, not the line ending.
	exact := sampleLine + strings.Repeat(" ", 100)
	recs, bad, _ := parseAll(t, exact+"\r\n", Options{MaxLineBytes: len(exact)})
	if len(recs) != 1 || len(bad) != 0 {
		t.Errorf("a line of exactly the limit: records %d bad %+v", len(recs), bad)
	}
	_, bad, _ = parseAll(t, exact+" \r\n", Options{MaxLineBytes: len(exact)})
	if len(bad) != 1 || bad[0].Kind != KindLineTooLong {
		t.Errorf("a line one past the limit: bad %+v", bad)
	}
}

func TestChunks(t *testing.T) {
	var b strings.Builder
	for i := range 10 {
		if i == 4 || i == 7 {
			b.WriteString("garbage\n")
			continue
		}
		fmt.Fprintf(&b, "T%03d|c|1.00|%06d|r|SH01|POS01|000001|20250101|120000|id|m|1010\n", i, i)
	}
	var sizes []int
	var lines []int64
	sum, err := Parse(strings.NewReader(b.String()), Options{ChunkSize: 3}, func(c Chunk) error {
		sizes = append(sizes, c.Len())
		for _, r := range c.Records {
			lines = append(lines, r.LineNo)
		}
		for _, bl := range c.BadLines {
			lines = append(lines, bl.LineNo)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[3 3 3 1]" {
		t.Errorf("chunk sizes %v", sizes)
	}
	if len(lines) != 10 {
		t.Errorf("line numbers %v", lines)
	}
	if sum.Records != 8 || sum.BadLines != 2 || sum.Lines != 10 || sum.TotalFen != 800 {
		t.Errorf("summary %+v", sum)
	}
}

func TestEmptyFile(t *testing.T) {
	for _, input := range []string{"", "\n\r\n", "\uFEFF", header14 + "\r\n"} {
		calls := 0
		sum, err := Parse(strings.NewReader(input), Options{}, func(Chunk) error { calls++; return nil })
		if err != nil || calls != 0 || sum.Lines != 0 || sum.TotalFen != 0 || sum.SHA256 != sha(input) {
			t.Errorf("%q: calls %d summary %+v err %v", input, calls, sum, err)
		}
	}
}

func TestEmitErrorStops(t *testing.T) {
	stop := errors.New("stop")
	input := strings.Repeat(sampleLine+"\n", 5)
	calls := 0
	_, err := Parse(strings.NewReader(input), Options{ChunkSize: 2}, func(Chunk) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("err %v after %d calls", err, calls)
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(strings.NewReader(sampleLine+"\n"), iotest.ErrReader(boom))
	_, err := Parse(r, Options{}, func(Chunk) error { return nil })
	if !errors.Is(err, boom) {
		t.Errorf("err %v, want %v", err, boom)
	}
}

// TestOneByteReads proves that the result does not depend on how the
// reader splits the input.
func TestOneByteReads(t *testing.T) {
	input := "\uFEFF" + header14 + "\r\n" + sampleLine + "\r\nbad\r\n" + line14
	want, wantBad, wantSum := parseAll(t, input, Options{})
	var got []Record
	var gotBad []BadLine
	sum, err := Parse(iotest.OneByteReader(strings.NewReader(input)), Options{}, func(c Chunk) error {
		got = append(got, c.Records...)
		gotBad = append(gotBad, c.BadLines...)
		return nil
	})
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(gotBad) != fmt.Sprint(wantBad) || sum != wantSum {
		t.Errorf("one-byte reads differ: %v %+v %+v", err, sum, wantSum)
	}
}

func TestTotalOverflow(t *testing.T) {
	big := withField(fieldAmount, "10000000000000") // MaxAmountFen
	// math.MaxInt64 holds 9223 of them; the 9224th would overflow.
	input := strings.Repeat(big+"\n", 9224)
	recs, bad, sum := parseAll(t, input, Options{})
	if len(recs) != 9223 || len(bad) != 1 || bad[0].Kind != KindTotalOverflow || bad[0].LineNo != 9224 {
		t.Errorf("records %d bad %+v", len(recs), bad)
	}
	if sum.TotalFen != 9223*MaxAmountFen {
		t.Errorf("total %d", sum.TotalFen)
	}
}

func TestLargeFileBoundedChunks(t *testing.T) {
	// 50,000 lines through a reader that never holds the file: the chunk
	// size, not the file, bounds what is held at once.
	const n = 50_000
	r := &repeatReader{line: []byte(sampleLine + "\r\n"), n: n}
	maxLen := 0
	sum, err := Parse(r, Options{ChunkSize: 1000}, func(c Chunk) error {
		maxLen = max(maxLen, c.Len())
		return nil
	})
	if err != nil || sum.Records != n || sum.TotalFen != n || maxLen != 1000 {
		t.Errorf("err %v summary %+v max chunk %d", err, sum, maxLen)
	}
}

type repeatReader struct {
	line []byte
	n    int
	buf  bytes.Buffer
}

func (r *repeatReader) Read(p []byte) (int, error) {
	for r.buf.Len() < len(p) && r.n > 0 {
		r.buf.Write(r.line)
		r.n--
	}
	if r.buf.Len() == 0 {
		return 0, io.EOF
	}
	return r.buf.Read(p)
}

// A referrer written in GBK (a file from a Windows tool, as its header may
// be) is read as GB18030 into UTF-8: the record is kept, where it was a bad
// line and its card was never activated (found by a review).
func TestGBKReferrer(t *testing.T) {
	zhangSan := string([]byte{0xd5, 0xc5, 0xc8, 0xfd}) // 张三 in GBK
	recs, bad, _ := parseAll(t, gbkHeader+"\n"+strings.Replace(line14, "|R9|", "|"+zhangSan+"|", 1)+"\n", Options{})
	if len(bad) != 0 || len(recs) != 1 {
		t.Fatalf("records %+v, bad lines %+v", recs, bad)
	}
	if recs[0].Referrer != "张三" {
		t.Fatalf("referrer %q, want 张三", recs[0].Referrer)
	}
}
