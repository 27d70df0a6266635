// Package parse reads the POSP's daily settlement file (日切文件, SPEC section 6
// and the partner document's 线下开卡交割接口): one record per line, 14
// `|`-separated fields, amounts in yuan.
//
// The parser streams: it reads through a bufio.Reader, hands records to the
// caller in chunks of bounded size and keeps only running totals, so memory
// does not grow with the file. A line it cannot read becomes a BadLine with
// its line number and the reason, and parsing goes on: one bad line must not
// hide the rest of the day's sales.
package parse

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// Defaults for Options.
const (
	// DefaultChunkSize is how many records and bad lines go in one chunk.
	DefaultChunkSize = 1000
	// DefaultMaxLineBytes is the longest line read as a record: a real line
	// is about 150 bytes, so anything past 4 KiB is garbage, and refusing it
	// keeps the reader's buffer bounded.
	DefaultMaxLineBytes = 4096
	// MaxBadTextBytes bounds the text of a bad line kept for the exception
	// queue: enough to see what was wrong, not a way to ship a whole blob.
	MaxBadTextBytes = 1024
)

// Field positions in a 14-field line. A 13-field line has no referrer, so
// its product id sits at fieldReferrer.
const (
	fieldTradeID = iota
	fieldCardNo
	fieldAmount
	fieldTerminalOrderID
	fieldReferenceNo
	fieldSellerID
	fieldTerminalID
	fieldBatchNo
	fieldTradeDate
	fieldTradeTime
	fieldIDNumber
	fieldMobile
	fieldReferrer
	fieldProductID
	fieldCount
)

// Record is one settled card sale, a line of the file.
type Record struct {
	LineNo          int64  // 1-based line number in the file
	TradeID         string // 交易id: the file's unique key of a record
	CardNo          string // 卡号 (not used for matching)
	Amount          int64  // 金额, in fen
	TerminalOrderID string // 流水号
	ReferenceNo     string // 参考号 (not used for matching)
	SellerID        string // 商户号
	TerminalID      string // 终端号
	BatchNo         string // 批次号
	TradeDate       string // 交易日期, yyyyMMdd, checked to be a real date
	TradeTime       string // 交易时间, HHmmss, checked to be a real time
	IDNumber        string // 身份证号
	Mobile          string // 手机号
	Referrer        string // 推荐人id, empty on a 13-field line
	ProductID       string // 产品编号
}

// Kind classifies why a line is bad; the server files every bad line as an
// exception and the kind tells an operator where to look.
type Kind string

// The kinds of bad line.
const (
	KindFieldCount     Kind = "field_count"     // not 13 or 14 fields
	KindLineTooLong    Kind = "line_too_long"   // over Options.MaxLineBytes
	KindMissingField   Kind = "missing_field"   // a required field is empty
	KindBadField       Kind = "bad_field"       // a field has characters or a length it cannot have
	KindBadAmount      Kind = "bad_amount"      // 金额 is not a positive yuan amount with ≤ 2 decimals
	KindBadDate        Kind = "bad_date"        // 交易日期 is not a real yyyyMMdd date
	KindBadTime        Kind = "bad_time"        // 交易时间 is not a real HHmmss time
	KindRepeatedHeader Kind = "repeated_header" // a header line after the first line
	KindTotalOverflow  Kind = "total_overflow"  // the file total would overflow int64
	KindBadTrailer     Kind = "bad_trailer"     // a 合计/TOTAL line that cannot be read, or not the last line
)

// BadLine is a line that could not be read as a record.
type BadLine struct {
	LineNo int64
	Kind   Kind
	// Detail names the field and what is wrong with it.
	Detail string
	// Text is the line with card and ID numbers masked (first 6 and last 4
	// kept, SPEC section 7), made valid UTF-8 and cut to MaxBadTextBytes.
	Text string
}

// Reason is the kind and the detail in one string, as the wire carries it.
func (b BadLine) Reason() string { return string(b.Kind) + ": " + b.Detail }

// Chunk is a bounded part of the file, in file order.
type Chunk struct {
	Records  []Record
	BadLines []BadLine
}

// Len returns the number of records and bad lines in the chunk.
func (c Chunk) Len() int { return len(c.Records) + len(c.BadLines) }

// Summary is what the whole file holds. The server keeps it with the batch
// (SPEC section 6: the file's sha256, record count and total).
type Summary struct {
	SHA256   string // hex of the sha256 of the raw bytes, BOM and all
	Bytes    int64  // size of the file
	Lines    int64  // data lines: Records + BadLines (no blank or header lines)
	Records  int64
	BadLines int64
	// TotalFen is the sum of the records' amounts. Bad lines have no amount
	// the server could check, so they are not in it.
	TotalFen int64
	// Header reports whether the file began with a header line.
	Header bool
	// BadAmountFen is the sum of the amounts still readable on bad lines,
	// and BadNoAmount the bad lines without one: the POSP's trailer counts
	// every line it wrote, readable or not.
	BadAmountFen int64
	BadNoAmount  int64
	// Trailer is the file's last line when it is a trailer (合计|count|total
	// or TOTAL|count|total); nil when there is none.
	Trailer *Trailer
}

// Trailer is the POSP's closing line: how many record lines it wrote and
// their total, for the file to be checked against (CheckTrailer).
type Trailer struct {
	LineNo   int64
	Count    int64
	TotalFen int64
}

// Options tune the parser; zero fields take the defaults.
type Options struct {
	ChunkSize    int // records and bad lines per chunk (DefaultChunkSize)
	MaxLineBytes int // longest line, without its line ending (DefaultMaxLineBytes)
}

func (o Options) withDefaults() Options {
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	return o
}

const utf8BOM = "\uFEFF"

// Parse reads the file from r and calls emit with each chunk of at most
// Options.ChunkSize records and bad lines, in file order, then returns the
// file's summary. Chunks are never empty and are not reused, so emit may
// keep them.
//
// Errors: a read error from r, or the error emit returned (wrapped), which
// stops the parse. Bad lines are not errors.
func Parse(r io.Reader, opts Options, emit func(Chunk) error) (Summary, error) {
	opts = opts.withDefaults()
	p := parser{
		opts: opts,
		hash: sha256.New(),
		emit: emit,
	}
	// The hash sees every byte exactly as read, before any tolerance.
	counted := &countingReader{r: io.TeeReader(r, p.hash)}
	// Room for the longest allowed line plus its CRLF, so that ReadSlice
	// fills the buffer only on a line that is too long.
	br := bufio.NewReaderSize(counted, opts.MaxLineBytes+2)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, io.EOF) {
			// A Ctrl-Z (0x1A) at the very end is the old DOS end-of-file
			// mark some exporters still write: not a line.
			line = bytes.TrimRight(line, "\x1a")
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			p.lineNo++
			p.bad(KindLineTooLong, fmt.Sprintf("longer than %d bytes", opts.MaxLineBytes), truncatedText(line))
			if err := skipLine(br); err != nil && !errors.Is(err, io.EOF) {
				return Summary{}, fmt.Errorf("parse: read: %w", err)
			}
			if err := p.flushIfFull(); err != nil {
				return Summary{}, err
			}
			continue
		}
		if len(line) > 0 {
			p.lineNo++
			p.line(line)
			if err := p.flushIfFull(); err != nil {
				return Summary{}, err
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Summary{}, fmt.Errorf("parse: read: %w", err)
		}
	}
	if err := p.flush(); err != nil {
		return Summary{}, err
	}
	p.sum.Trailer = p.trailer
	p.sum.Bytes = counted.n
	p.sum.SHA256 = hex.EncodeToString(p.hash.Sum(nil))
	p.sum.Lines = p.sum.Records + p.sum.BadLines
	return p.sum, nil
}

// skipLine discards the rest of an over-long line.
func skipLine(br *bufio.Reader) error {
	for {
		_, err := br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type parser struct {
	opts    Options
	hash    hash.Hash
	emit    func(Chunk) error
	lineNo  int64
	content bool // a non-blank line has been seen
	// trailer is the last content line so far if it is a trailer; a content
	// line after it makes it a bad line.
	trailer *Trailer
	// ctrlZ are the lines of only Ctrl-Z seen since the last content line.
	ctrlZ []heldLine
	chunk Chunk
	sum   Summary
}

// heldLine is a line kept back (trimmed), with its number.
type heldLine struct {
	no   int64
	text string
}

func (p *parser) flushIfFull() error {
	if p.chunk.Len() < p.opts.ChunkSize {
		return nil
	}
	return p.flush()
}

func (p *parser) flush() error {
	if p.chunk.Len() == 0 {
		return nil
	}
	c := p.chunk
	p.chunk = Chunk{}
	if err := p.emit(c); err != nil {
		return fmt.Errorf("parse: line %d: %w", p.lineNo, err)
	}
	return nil
}

func (p *parser) bad(kind Kind, detail, text string) {
	p.chunk.BadLines = append(p.chunk.BadLines, BadLine{
		LineNo: p.lineNo,
		Kind:   kind,
		// A detail quotes a field, and on a line whose fields are shifted
		// that field may be an ID number: masked like the text.
		Detail: maskDigitRuns(storable(detail)),
		Text:   text,
	})
	p.sum.BadLines++
}

// badRecord files a line of record width that failed a check; its amount,
// when still readable, counts toward what a trailer must total.
func (p *parser) badRecord(kind Kind, detail string, fields []string) {
	p.bad(kind, detail, badText(fields))
	if len(fields) == fieldCount || len(fields) == fieldCount-1 {
		if a, err := ParseYuan(fields[fieldAmount]); err == nil && a <= MaxAmountFen && a <= math.MaxInt64-p.sum.BadAmountFen {
			p.sum.BadAmountFen += a
			return
		}
	}
	p.sum.BadNoAmount++
}

// line handles one physical line, its terminator included.
func (p *parser) line(raw []byte) {
	if p.lineNo == 1 {
		raw = bytes.TrimPrefix(raw, []byte(utf8BOM))
	}
	raw = bytes.TrimSuffix(raw, []byte("\n"))
	raw = bytes.TrimSuffix(raw, []byte("\r"))
	if len(raw) > p.opts.MaxLineBytes {
		// Possible only at the end of a file without a final newline, where
		// ReadSlice returns what it has instead of a full buffer.
		p.bad(KindLineTooLong, fmt.Sprintf("longer than %d bytes", p.opts.MaxLineBytes), truncatedText(raw))
		return
	}
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return
	}
	if strings.Trim(s, "\x1a \t") == "" {
		// Only the DOS end-of-file mark (Ctrl-Z, 0x1A), which an exporter
		// may write with a line ending after it: not a line if nothing but
		// blank lines follow, the bad line it always was if a line does.
		// Held until the next content line tells.
		p.ctrlZ = append(p.ctrlZ, heldLine{p.lineNo, s})
		return
	}
	if held := p.ctrlZ; len(held) > 0 {
		p.ctrlZ = nil
		saved := p.lineNo
		for _, h := range held {
			p.lineNo = h.no
			p.contentLine(h.text)
		}
		p.lineNo = saved
	}
	p.contentLine(s)
}

// contentLine handles a non-blank line, trimmed.
func (p *parser) contentLine(s string) {
	fields := strings.Split(s, "|")
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	first := !p.content
	p.content = true
	if tr := p.trailer; tr != nil {
		// A trailer closes the file: one with lines after it is not one.
		p.trailer = nil
		saved := p.lineNo
		p.lineNo = tr.LineNo
		p.bad(KindBadTrailer, "trailer line before the last line", fmt.Sprintf("合计|%d|%s", tr.Count, formatYuan(tr.TotalFen)))
		p.sum.BadNoAmount++
		p.lineNo = saved
	}
	if isTrailer(fields) {
		tr, detail := readTrailer(fields)
		if tr == nil {
			p.bad(KindBadTrailer, detail, badText(fields))
			p.sum.BadNoAmount++
			return
		}
		tr.LineNo = p.lineNo
		p.trailer = tr
		return
	}
	if isHeader(fields) {
		if first {
			p.sum.Header = true
			return
		}
		p.badRecord(KindRepeatedHeader, "header line after the first line", fields)
		return
	}
	rec, kind, detail := readRecord(fields)
	if kind != "" {
		p.badRecord(kind, detail, fields)
		return
	}
	if rec.Amount > math.MaxInt64-p.sum.TotalFen {
		p.badRecord(KindTotalOverflow, "the file total would overflow", fields)
		return
	}
	rec.LineNo = p.lineNo
	p.chunk.Records = append(p.chunk.Records, rec)
	p.sum.Records++
	p.sum.TotalFen += rec.Amount
}

// isHeader recognises the optional column-name line. The partner's header
// is 交易id|卡号|…; a header written in GBK is not UTF-8 and would not
// compare equal, so a line of the right width whose every field is
// non-ASCII text without a digit counts too: every real record has digits in
// its amount and dates, and an empty or ASCII-only line is not a header.
func isHeader(fields []string) bool {
	if len(fields) != fieldCount && len(fields) != fieldCount-1 {
		return false
	}
	if strings.EqualFold(fields[0], "交易id") {
		return true
	}
	for _, f := range fields {
		if f == "" || strings.ContainsAny(f, "0123456789") || printableASCII(f) {
			return false
		}
	}
	return true
}

// readRecord checks the fields of one line. It checks what every record
// needs to be matched (the terminal key, the seller, the amount, the trade
// time). The identity fields (ID number, mobile, referrer, product id) are
// needed only when the record has to open a card, so the server checks them
// then (SPEC section 6: a record that cannot be opened is an exception); a
// record that matches a payment must not be lost over a field it does not
// need. Here they are only kept free of control characters.
func readRecord(f []string) (Record, Kind, string) {
	switch len(f) {
	case fieldCount:
	case fieldCount - 1:
		// No referrer: the product id moves up one place (the partner
		// document's own sample line has 13 fields, ending in 1234).
		f = append(f[:fieldReferrer:fieldReferrer], "", f[fieldReferrer])
	default:
		return Record{}, KindFieldCount, fmt.Sprintf("%d fields, want 14 (or 13 without 推荐人id)", len(f))
	}
	type check struct {
		i        int
		name     string
		required bool
		max      int
		ascii    bool
	}
	checks := [...]check{
		{fieldTradeID, "交易id", true, 64, true},
		{fieldCardNo, "卡号", false, 32, true},
		{fieldTerminalOrderID, "流水号", true, 32, true},
		{fieldReferenceNo, "参考号", false, 32, true},
		{fieldSellerID, "商户号", true, 32, true},
		{fieldTerminalID, "终端号", true, 32, true},
		{fieldBatchNo, "批次号", true, 32, true},
		{fieldIDNumber, "身份证号", false, 32, true},
		{fieldMobile, "手机号", false, 32, true},
		{fieldReferrer, "推荐人id", false, 64, false},
		{fieldProductID, "产品编号", false, 32, true},
	}
	// The referrer is the one free-text field: a file written in GBK (as
	// its header and trailer may be) can carry a Chinese name there. It is
	// read as GB18030, a superset of GBK, when it is not UTF-8, so that a
	// record that matches a payment is not lost over a field it does not
	// need; bytes that are neither stay a bad field.
	if v := f[fieldReferrer]; !utf8.ValidString(v) {
		if d, err := simplifiedchinese.GB18030.NewDecoder().String(v); err == nil && !strings.ContainsRune(d, utf8.RuneError) {
			f[fieldReferrer] = d
		}
	}
	for _, c := range checks {
		v := f[c.i]
		switch {
		case v == "" && c.required:
			return Record{}, KindMissingField, c.name + " is empty"
		case utf8.RuneCountInString(v) > c.max:
			return Record{}, KindBadField, fmt.Sprintf("%s longer than %d characters", c.name, c.max)
		case c.ascii && !printableASCII(v):
			return Record{}, KindBadField, c.name + " has characters other than printable ASCII"
		case !c.ascii && !printableText(v):
			return Record{}, KindBadField, c.name + " has control characters or is not UTF-8"
		}
	}
	if f[fieldAmount] == "" {
		return Record{}, KindMissingField, "金额 is empty"
	}
	amount, err := ParseYuan(f[fieldAmount])
	if err != nil {
		return Record{}, KindBadAmount, fmt.Sprintf("金额 %q: %v", clip(f[fieldAmount]), err)
	}
	if amount == 0 {
		return Record{}, KindBadAmount, "金额 is zero"
	}
	if !validDate(f[fieldTradeDate]) {
		return Record{}, KindBadDate, fmt.Sprintf("交易日期 %q is not a yyyyMMdd date", clip(f[fieldTradeDate]))
	}
	if !validTime(f[fieldTradeTime]) {
		return Record{}, KindBadTime, fmt.Sprintf("交易时间 %q is not an HHmmss time", clip(f[fieldTradeTime]))
	}
	return Record{
		TradeID:         f[fieldTradeID],
		CardNo:          f[fieldCardNo],
		Amount:          amount,
		TerminalOrderID: f[fieldTerminalOrderID],
		ReferenceNo:     f[fieldReferenceNo],
		SellerID:        f[fieldSellerID],
		TerminalID:      f[fieldTerminalID],
		BatchNo:         f[fieldBatchNo],
		TradeDate:       f[fieldTradeDate],
		TradeTime:       f[fieldTradeTime],
		IDNumber:        f[fieldIDNumber],
		Mobile:          f[fieldMobile],
		Referrer:        f[fieldReferrer],
		ProductID:       f[fieldProductID],
	}, "", ""
}

// clip shortens a field quoted in a detail: the detail is a message, and a
// huge or sensitive value has no place in it. Amount, date and time fields
// are not sensitive; they are only cut short.
func clip(s string) string {
	const max = 24
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7E {
			return false
		}
	}
	return true
}

func printableText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7F {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validDate checks a yyyyMMdd date against the real calendar (no 20230229).
func validDate(s string) bool {
	if len(s) != 8 || !allDigits(s) {
		return false
	}
	_, err := time.Parse("20060102", s)
	return err == nil
}

// validTime checks an HHmmss time of day (no leap second: the POSP does
// not write one).
func validTime(s string) bool {
	if len(s) != 6 || !allDigits(s) {
		return false
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[2]-'0')*10 + int(s[3]-'0')
	sec := int(s[4]-'0')*10 + int(s[5]-'0')
	return h < 24 && m < 60 && sec < 60
}
