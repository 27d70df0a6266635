package legacy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxDepth bounds the nesting of a request body. The legacy bodies are two
// levels deep; the bound only keeps a hostile body from costing stack.
const maxDepth = 32

// Messages of the 10001 answers the decoder gives. They are shown on the
// terminal's screen, so they are short Chinese and never quote the body.
const (
	msgNotJSON    = "请求报文不是合法的JSON"
	msgNotUTF8    = "请求报文不是合法的UTF-8编码"
	msgNotObject  = "请求报文必须是JSON对象"
	msgTooDeep    = "请求报文嵌套过深"
	whyAmount     = "金额必须是非负整数（分）"
	whyAmountSize = "金额超出范围"
	whyControl    = "不能含控制字符"
	whySurrogate  = "含无效的Unicode转义（不成对的代理项）"
)

// DecodeError is a request body that the legacy contract cannot accept.
// Msg is the errmsg of the 10001 answer; it names the legacy field (its JSON
// name) when one field is at fault.
type DecodeError struct {
	Msg string
}

func (e *DecodeError) Error() string { return e.Msg }

// fieldError is the 10001 error for one field, worded like the server's own
// validation errors so that the terminal sees one style.
func fieldError(name, why string) *DecodeError {
	return &DecodeError{Msg: fmt.Sprintf("字段%s格式错误：%s", name, why)}
}

// unmarshal fills m from a legacy request body. It is liberal in the ways the
// partner needs (SPEC section 2): a UTF-8 BOM, a trailing comma before } or ]
// (the partner document's own examples have them), unknown fields (ignored),
// null (read as absent), a JSON number where a string is expected (its literal
// text is kept: "batchNo":1234567 reads as "1234567"), and an amount written as a string of digits. It is strict where
// leniency would move money wrongly: amounts must be non-negative integers of
// fen that fit in int64, and a key given twice is refused rather than letting
// one of the two values win silently.
//
// Every error is a *DecodeError.
func unmarshal(data []byte, m proto.Message) error {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		return &DecodeError{Msg: msgNotUTF8}
	}
	v, err := parseDocument(stripTrailingCommas(data))
	if err != nil {
		return err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return &DecodeError{Msg: msgNotObject}
	}
	wire, err := appendMessageWire(make([]byte, 0, len(data)), obj, m.ProtoReflect().Descriptor())
	if err != nil {
		return err
	}
	// Merge: the fields the body names are set on m (a message field
	// merged, a list appended to) and the others left as they are, as
	// setting each through protoreflect did.
	if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(wire, m); err != nil {
		// Not expected: the wire bytes are built from m's own descriptor
		// and the body is valid UTF-8.
		return &DecodeError{Msg: msgNotJSON}
	}
	return nil
}

// stripTrailingCommas drops every comma, outside strings, that is followed
// (after optional whitespace) by } or ]. The result is then parsed strictly,
// so this is the only leniency in the syntax.
//
// A body without such a comma (the usual one) is returned as it is, not
// copied.
func stripTrailingCommas(b []byte) []byte {
	var out []byte // nil until the first comma is dropped
	inString, escaped := false, false
	// last is the last byte written outside whitespace: a comma right after
	// { [ or another comma trails no value, and stays for the parser to
	// refuse.
	var last byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			if out != nil {
				out = append(out, c)
			}
			last = c
			continue
		}
		switch c {
		case '"':
			inString = true
		case ',':
			j := i + 1
			for j < len(b) && isSpace(b[j]) {
				j++
			}
			if j < len(b) && (b[j] == '}' || b[j] == ']') && last != '{' && last != '[' && last != ',' {
				if out == nil {
					out = append(make([]byte, 0, len(b)), b[:i]...)
				}
				continue
			}
		}
		if out != nil {
			out = append(out, c)
		}
		if !isSpace(c) {
			last = c
		}
	}
	if out == nil {
		return b
	}
	return out
}

// isControl reports a C0 control character (U+0000 to U+001F).
func isControl(r rune) bool { return r < 0x20 }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// parseDocument reads b, which must be exactly one JSON value (surrounded by
// whitespace at most), as a tree of map[string]any, []any, string,
// json.Number, bool and nil: what the former parser on encoding/json's token
// reader (with UseNumber) gave, found in one pass without its per-token
// allocations. Its refusals are the token reader's too, in the same order:
// the first of a syntax error (msgNotJSON), a value nested beyond maxDepth
// (msgTooDeep, checked before the value's separator is read, as the token
// reader reads a separator with the value after it) and a duplicate key
// (found once its value is read). FuzzParseDocument holds it to that. The
// one difference: a lone surrogate escape, which the token reader read as
// U+FFFD, is kept as invalid UTF-8 (unescape) so that unmarshal refuses it.
func parseDocument(b []byte) (any, error) {
	// One copy of the body as a string: every key and every string value
	// without escapes is a substring of it, not an allocation of its own
	// (they live as long as the request, as the body does).
	p := parser{b: b, s: string(b)}
	v, err := p.value(0, 0)
	if err != nil {
		return nil, err
	}
	// Exactly one value: anything after it is not the partner's body.
	if p.skipSpace(); p.i != len(p.b) {
		return nil, errNotJSON
	}
	return v, nil
}

// parser is parseDocument's position in the body. The body is valid UTF-8
// (unmarshal checks first), so only the JSON grammar is checked here; a
// string is invalid UTF-8 only where it had a lone surrogate escape
// (unescape).
type parser struct {
	b []byte
	s string // b as a string
	i int
}

var errNotJSON = &DecodeError{Msg: msgNotJSON}

func (p *parser) skipSpace() {
	for p.i < len(p.b) && isSpace(p.b[p.i]) {
		p.i++
	}
}

// at reports whether the next byte is c.
func (p *parser) at(c byte) bool { return p.i < len(p.b) && p.b[p.i] == c }

// value reads one value at nesting depth, after the separator sep (',' or
// ':') unless sep is 0.
func (p *parser) value(depth int, sep byte) (any, error) {
	if depth > maxDepth {
		return nil, &DecodeError{Msg: msgTooDeep}
	}
	p.skipSpace()
	if sep != 0 {
		if !p.at(sep) {
			return nil, errNotJSON
		}
		p.i++
		p.skipSpace()
	}
	if p.i >= len(p.b) {
		return nil, errNotJSON
	}
	switch c := p.b[p.i]; {
	case c == '{':
		p.i++
		return p.object(depth)
	case c == '[':
		p.i++
		return p.array(depth)
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, errNotJSON
}

func (p *parser) literal(word string) error {
	if !bytes.HasPrefix(p.b[p.i:], []byte(word)) {
		return errNotJSON
	}
	p.i += len(word)
	return nil
}

// object reads the members after '{' up to and including '}'.
func (p *parser) object(depth int) (any, error) {
	obj := map[string]any{}
	for first := true; ; first = false {
		p.skipSpace()
		if p.at('}') {
			p.i++
			return obj, nil
		}
		if p.i >= len(p.b) || p.at(']') {
			return nil, errNotJSON
		}
		if !first {
			if !p.at(',') {
				return nil, errNotJSON
			}
			p.i++
			p.skipSpace()
		}
		if !p.at('"') {
			return nil, errNotJSON
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		v, err := p.value(depth+1, ':')
		if err != nil {
			return nil, err
		}
		if _, dup := obj[key]; dup {
			return nil, &DecodeError{Msg: fmt.Sprintf("字段%s重复", replaceSurrogates(key))}
		}
		obj[key] = v
	}
}

// array reads the elements after '[' up to and including ']'.
func (p *parser) array(depth int) (any, error) {
	arr := []any{}
	for first := true; ; first = false {
		p.skipSpace()
		if p.at(']') {
			p.i++
			return arr, nil
		}
		if p.i >= len(p.b) || p.at('}') {
			return nil, errNotJSON
		}
		var sep byte = ','
		if first {
			sep = 0
		}
		v, err := p.value(depth+1, sep)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
}

// str reads a string at '"'. One without escapes is its bytes; one with
// escapes is decoded by unescape.
func (p *parser) str() (string, error) {
	start := p.i
	p.i++
	escaped := false
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !escaped {
				return p.s[start+1 : p.i-1], nil
			}
			return unescape(p.b[start+1 : p.i-1])
		case c == '\\':
			escaped = true
			p.i += 2 // the escape's second byte is never the closing quote
		case c < 0x20:
			return "", errNotJSON
		default:
			p.i++
		}
	}
	return "", errNotJSON
}

// unescape decodes the text between a string's quotes (valid UTF-8, no
// control character, at least one backslash) as encoding/json does, with
// one difference: a \u escape of a surrogate (U+D800 to U+DFFF) that is not
// a high one followed by a low one is not replaced by U+FFFD, which would make
// "\ud800" and "\udbff" one string (two pays with those terminalOrderIds
// would share a terminal key), but kept as the three bytes UTF-8 would give
// it, which are never valid UTF-8 (utf8.ValidString is false). A raw body
// cannot hold those bytes (unmarshal refuses invalid UTF-8 first), so they
// mark the string as one no field can hold: scalar refuses it naming the
// field, a key holding one names no field, and two such strings differ
// exactly where their escapes do.
func unescape(raw []byte) (string, error) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(raw) {
			return "", errNotJSON
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			out = append(out, raw[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(raw[i+2:])
			if !ok {
				return "", errNotJSON
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r < 0xDC00 && i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if lo, ok := hex4(raw[i+2:]); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						out = utf8.AppendRune(out, utf16.DecodeRune(r, lo))
						i += 6
						continue
					}
				}
				out = appendSurrogate(out, r)
				continue
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return "", errNotJSON
		}
		i += 2
	}
	return string(out), nil
}

// hex4 reads the four hex digits of a \u escape at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// appendSurrogate appends the surrogate r (U+D800 to U+DFFF) as the three
// bytes of UTF-8's pattern for its value, which UTF-8 forbids (see unescape).
func appendSurrogate(b []byte, r rune) []byte {
	return append(b, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
}

// replaceSurrogates is s with each lone surrogate unescape kept replaced by
// U+FFFD (what encoding/json reads it as), for a message that quotes s.
func replaceSurrogates(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 && i+2 < len(s) && s[i] == 0xED && s[i+1] >= 0xA0 && s[i+1] <= 0xBF {
			b.WriteRune(utf8.RuneError)
			i += 3
			continue
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}

// number reads a number as its literal text, checked against JSON's grammar:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) number() (any, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.digits() == 0:
		return nil, errNotJSON
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return nil, errNotJSON
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return nil, errNotJSON
		}
	}
	return json.Number(p.s[start:p.i]), nil
}

func (p *parser) digits() int {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// appendMessageWire appends the fields of a message of type md, read from
// obj, in protobuf's wire format; unmarshal then decodes that into the
// message with protobuf's own decoder. (Setting each field through
// protoreflect boxed every string twice: some twenty allocations per pay.)
// Keys are matched to fields by their json_name (the partner's names, e.g.
// ID and paymentCodeDES). Fields are visited in declaration (document)
// order so that, of several bad fields, the first in the document is the
// one reported. Keys that name no field are ignored.
func appendMessageWire(b []byte, obj map[string]any, md protoreflect.MessageDescriptor) ([]byte, error) {
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		v, ok := obj[fd.JSONName()]
		if !ok || v == nil {
			continue // absent, and null is read as absent
		}
		var err error
		if b, err = appendFieldWire(b, fd, v); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendFieldWire appends field fd with the JSON value v. A scalar is
// written even at its zero value, so that a proto3 optional field is
// present ("paySum":0 stays distinct from an absent paySum, SPEC section 5:
// absent is the full price); a message is written even when empty, so
// that it is set.
func appendFieldWire(b []byte, fd protoreflect.FieldDescriptor, v any) ([]byte, error) {
	name := fd.JSONName()
	switch {
	case fd.IsMap():
		// The legacy contract has no map fields; refusing is safer than
		// guessing how the partner would write one.
		return nil, fieldError(name, "不支持该字段")
	case fd.IsList():
		arr, ok := v.([]any)
		if !ok {
			return nil, fieldError(name, "应为JSON数组")
		}
		for _, ev := range arr {
			if ev == nil {
				return nil, fieldError(name, "数组元素不能为null")
			}
			if fd.Kind() == protoreflect.MessageKind {
				obj, ok := ev.(map[string]any)
				if !ok {
					return nil, fieldError(name, "数组元素应为JSON对象")
				}
				var err error
				if b, err = appendNestedWire(b, fd, obj); err != nil {
					return nil, err
				}
				continue
			}
			sv, err := scalar(fd, ev)
			if err != nil {
				return nil, err
			}
			b = appendScalarWire(b, fd, sv)
		}
		return b, nil
	case fd.Kind() == protoreflect.MessageKind:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, fieldError(name, "应为JSON对象")
		}
		return appendNestedWire(b, fd, obj)
	}
	sv, err := scalar(fd, v)
	if err != nil {
		return nil, err
	}
	return appendScalarWire(b, fd, sv), nil
}

// appendNestedWire appends the message field fd (or an element of it) read
// from obj: its tag, its length and its fields.
func appendNestedWire(b []byte, fd protoreflect.FieldDescriptor, obj map[string]any) ([]byte, error) {
	b = protowire.AppendTag(b, fd.Number(), protowire.BytesType)
	start := len(b)
	b, err := appendMessageWire(b, obj, fd.Message())
	if err != nil {
		return nil, err
	}
	// The length goes before the fields: shift them by its size.
	n := len(b) - start
	size := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, size)...)
	copy(b[start+size:], b[start:start+n])
	protowire.AppendVarint(b[start:start], uint64(n))
	return b, nil
}

// appendScalarWire appends the value v of field fd (of a kind that scalar
// returns) with its tag.
func appendScalarWire(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value) []byte {
	num := fd.Number()
	switch fd.Kind() {
	case protoreflect.StringKind:
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, v.String())
	case protoreflect.BoolKind:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(v.Bool()))
	case protoreflect.EnumKind:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(v.Enum()))
	case protoreflect.Int32Kind, protoreflect.Int64Kind:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(v.Int()))
	case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeZigZag(v.Int()))
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, v.Uint())
	case protoreflect.Sfixed32Kind:
		b = protowire.AppendTag(b, num, protowire.Fixed32Type)
		return protowire.AppendFixed32(b, uint32(v.Int()))
	case protoreflect.Fixed32Kind:
		b = protowire.AppendTag(b, num, protowire.Fixed32Type)
		return protowire.AppendFixed32(b, uint32(v.Uint()))
	case protoreflect.Sfixed64Kind:
		b = protowire.AppendTag(b, num, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, uint64(v.Int()))
	case protoreflect.Fixed64Kind:
		b = protowire.AppendTag(b, num, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, v.Uint())
	}
	panic("legacy: no wire encoding for kind " + fd.Kind().String()) // scalar returns none other
}

// scalar converts one JSON value to the field's scalar kind.
func scalar(fd protoreflect.FieldDescriptor, v any) (protoreflect.Value, error) {
	name := fd.JSONName()
	// The body is valid UTF-8, so a string that is not holds a lone
	// surrogate escape (unescape): refused for every kind of field, never
	// read as U+FFFD.
	if s, ok := v.(string); ok && !utf8.ValidString(s) {
		return protoreflect.Value{}, fieldError(name, whySurrogate)
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		switch s := v.(type) {
		case string:
			// JSON forbids raw control characters in a string but lets
			// them in escaped (\u0000). No field of the contract can hold
			// one: NUL is refused by PostgreSQL (an internal error, had it
			// got that far) and the others corrupt receipts and logs.
			if strings.IndexFunc(s, isControl) >= 0 {
				return protoreflect.Value{}, fieldError(name, whyControl)
			}
			return protoreflect.ValueOfString(s), nil
		case json.Number:
			// POS software writes numeric-looking ids as numbers now and
			// then; the literal text is what the terminal meant.
			return protoreflect.ValueOfString(string(s)), nil
		}
		return protoreflect.Value{}, fieldError(name, "应为字符串")
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		// Every int64 of the contract is an amount in fen (SPEC section 2).
		n, why := parseAmount(v)
		if why != "" {
			return protoreflect.Value{}, fieldError(name, why)
		}
		return protoreflect.ValueOfInt64(n), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(integerText(v), 10, 32)
		if err != nil {
			return protoreflect.Value{}, fieldError(name, "应为整数")
		}
		return protoreflect.ValueOfInt32(int32(n)), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(integerText(v), 10, 32)
		if err != nil {
			return protoreflect.Value{}, fieldError(name, "应为非负整数")
		}
		return protoreflect.ValueOfUint32(uint32(n)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(integerText(v), 10, 64)
		if err != nil {
			return protoreflect.Value{}, fieldError(name, "应为非负整数")
		}
		return protoreflect.ValueOfUint64(n), nil
	case protoreflect.BoolKind:
		if b, ok := v.(bool); ok {
			return protoreflect.ValueOfBool(b), nil
		}
		return protoreflect.Value{}, fieldError(name, "应为true或false")
	case protoreflect.EnumKind:
		// Enums travel as the partner's words (LegacyText) and are read
		// back the same way, so that the codec is one mapping both ways.
		if s, ok := v.(string); ok {
			values := fd.Enum().Values()
			for i := range values.Len() {
				if LegacyText(values.Get(i)) == s {
					return protoreflect.ValueOfEnum(values.Get(i).Number()), nil
				}
			}
		}
		return protoreflect.Value{}, fieldError(name, "取值无效")
	}
	// Floats and bytes do not occur in the legacy contract.
	return protoreflect.Value{}, fieldError(name, "不支持该字段")
}

// parseAmount reads an amount in fen: a JSON integer or a string of digits.
// Fractions and exponents are refused rather than rounded, because a POS that
// sends 1.5 has confused yuan and fen and no guess is safe with money.
// It returns the reason for refusal, or "".
func parseAmount(v any) (int64, string) {
	var s string
	switch t := v.(type) {
	case json.Number:
		s = string(t)
	case string:
		s = t
	default:
		return 0, whyAmount
	}
	if s == "" {
		return 0, whyAmount
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, whyAmount
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, whyAmountSize
	}
	return n, ""
}

// integerText returns the text of a JSON number or string, or "" (which no
// integer parser accepts) for anything else.
func integerText(v any) string {
	switch t := v.(type) {
	case json.Number:
		return string(t)
	case string:
		return t
	}
	return ""
}
