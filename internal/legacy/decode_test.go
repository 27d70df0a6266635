package legacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

func TestStripTrailingCommas(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":1,}`, `{"a":1}`},
		{"{\"a\":[1,2,\n\t],\r\n}", "{\"a\":[1,2\n\t]\r\n}"},
		{`{"a":"x,}","b":"y,]",}`, `{"a":"x,}","b":"y,]"}`},
		{`{"a":"q\",}",}`, `{"a":"q\",}"}`},
		{`{"a":"back\\",}`, `{"a":"back\\"}`},
		{`{"a":1,"b":2}`, `{"a":1,"b":2}`},
		{`{"a":1,,}`, `{"a":1,,}`}, // a comma after a comma trails no value: kept, the parser refuses it
		{`{,}`, `{,}`},
		{`[ , ]`, `[ , ]`},
		{`{"a":{},}`, `{"a":{}}`},
		{`,`, `,`},
	}
	for _, tt := range tests {
		if got := string(stripTrailingCommas([]byte(tt.in))); got != tt.want {
			t.Errorf("stripTrailingCommas(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestEncodeOrder checks field-number order, json_name keys, int64 as
// numbers, and optional fields written only when set.
func TestEncodeOrder(t *testing.T) {
	m := &mapfrontv1.OpenCardRequest{IdNumber: "11010519491231002X", PaySum: proto.Int64(0)}
	got := string(appendMessage(nil, m.ProtoReflect()))
	want := `{"ID":"11010519491231002X","mobileNum":"","referrer":"","sellerId":"","storeId":"","terminalId":"","batchNo":"","operatorId":"","terminalOrderId":"","productId":"","paySum":0}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	m.PaySum = nil
	if got := string(appendMessage(nil, m.ProtoReflect())); got != want[:len(want)-len(`,"paySum":0}`)]+"}" {
		t.Errorf("unset optional written: %s", got)
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"乐驾包<&>", `"乐驾包<&>"`},
		{"a\"b\\c\n\r\t\x01", `"a\"b\\c\n\r\t\u0001"`},
		{"bad\xffutf8", `"bad\ufffdutf8"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"\ufeff{}", "\"\ufeff{}\""},
	}
	for _, tt := range tests {
		got := string(appendString(nil, tt.in))
		if got != tt.want {
			t.Errorf("appendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil || back != toValidUTF8(tt.in) {
			t.Errorf("%s does not read back as %q: %q %v", got, tt.in, back, err)
		}
	}
}

func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out := make([]rune, 0, len(s))
	for _, r := range s {
		out = append(out, r)
	}
	return string(out)
}

// requestTypes are the messages the decoder fills in production.
var requestTypes = []func() proto.Message{
	func() proto.Message { return &mapfrontv1.OpenCardRequest{} },
	func() proto.Message { return &mapfrontv1.RepealCardRequest{} },
	func() proto.Message { return &mapfrontv1.PayRequest{} },
	func() proto.Message { return &mapfrontv1.CancelPayRequest{} },
	func() proto.Message { return &mapfrontv1.UndoPayRequest{} },
	func() proto.Message { return &mapfrontv1.GetAccountInfoRequest{} },
	func() proto.Message { return &mapfrontv1.DownloadProductRequest{} },
	// Responses too: they have a list and optional fields.
	func() proto.Message { return &mapfrontv1.DownloadProductResponse{} },
	func() proto.Message { return &mapfrontv1.PayResponse{} },
}

// FuzzUnmarshal: the decoder never panics, refuses only with a *DecodeError,
// and what it accepts the encoder writes as valid JSON that decodes back to
// the same JSON. The envelope is valid JSON for any body.
func FuzzUnmarshal(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"\ufeff{\"paySum\":\"100\",}",
		`{"order":{"sum":1.5}}`,
		`{"product":[{"productPrice":1},{},]}`,
		`{"order":{"accountId":"1","balance":"0"}}`,
		`{"a":[[[[{}]]]],"ID":12345678901234567890123}`,
		"{\"ID\":\"\\ud800\\u2028\"}",
		`{"ID":"1","ID":"1"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newMsg := range requestTypes {
			m := newMsg()
			if err := unmarshal(data, m); err != nil {
				var de *DecodeError
				if !errors.As(err, &de) || de.Msg == "" || !utf8.ValidString(de.Msg) {
					t.Fatalf("error %v is not a usable DecodeError", err)
				}
				continue
			}
			out := appendMessage(nil, m.ProtoReflect())
			if !utf8.Valid(out) || !json.Valid(out) {
				t.Fatalf("encoder wrote invalid JSON: %q", out)
			}
			// An unset message is written as an object of zero values, so
			// the round trip is compared on the JSON, not on the messages.
			back := newMsg()
			if err := unmarshal(out, back); err != nil {
				t.Fatalf("encoder output %q refused: %v", out, err)
			}
			if again := appendMessage(nil, back.ProtoReflect()); string(again) != string(out) {
				t.Fatalf("round trip changed %q to %q", out, again)
			}
		}
		env := (&envelope{errcode: codeMalformed, errmsg: msgNotJSON, request: data}).appendJSON(nil)
		var a struct{ Request string }
		if err := json.Unmarshal(env, &a); err != nil || !utf8.Valid(env) {
			t.Fatalf("envelope is not valid JSON: %q", env)
		}
		if utf8.Valid(data) && a.Request != string(data) {
			t.Fatalf("request echo %q, want %q", a.Request, data)
		}
	})
}

// parseTokens is the decoder's former parser, on encoding/json's token
// reader: FuzzParseDocument holds parseDocument to its results.
func parseTokens(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := parseTokenValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &DecodeError{Msg: msgNotJSON}
	}
	return v, nil
}

func parseTokenValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, &DecodeError{Msg: msgTooDeep}
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, &DecodeError{Msg: msgNotJSON}
	}
	switch tok {
	case json.Delim('{'):
		obj := map[string]any{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, &DecodeError{Msg: msgNotJSON}
			}
			key, ok := kt.(string)
			if !ok {
				return nil, &DecodeError{Msg: msgNotJSON}
			}
			v, err := parseTokenValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			if _, dup := obj[key]; dup {
				return nil, &DecodeError{Msg: fmt.Sprintf("字段%s重复", key)}
			}
			obj[key] = v
		}
		if _, err := dec.Token(); err != nil {
			return nil, &DecodeError{Msg: msgNotJSON}
		}
		return obj, nil
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			v, err := parseTokenValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := dec.Token(); err != nil {
			return nil, &DecodeError{Msg: msgNotJSON}
		}
		return arr, nil
	case json.Delim('}'), json.Delim(']'):
		return nil, &DecodeError{Msg: msgNotJSON}
	}
	return tok, nil
}

// FuzzParseDocument: the one-pass parser reads every valid UTF-8 body as the
// token reader did: the same tree, or the same refusal (issue 11 replaced
// the token reader, which allocated on every token). The exception is a
// lone surrogate escape, kept distinct rather than read as U+FFFD.
func FuzzParseDocument(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"a":1,"a":{"b":[1,2,{"c":null}]}} `, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":-0.5E+7}`,
		`{"a":tru}`, `{"a":true,"b":false,"c":null}`, `{"a":"\u00e9\"\\\/\b\f\n\r\t"}`, `{"a":"\x"}`, `{"a":"\u12G4"}`,
		"{\"a\":\"\x01\"}", `{"a" 1}`, `{"a":1 "b":2}`, `{1:2}`, `[1,2]x`, `{} {}`, `[`, `{"a":[}`, ``, ` `, `"s"`,
		`{"a":1,"a":2} x`, `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[x`, `{"a":"\ud800"}`, `{"\u0061":1,"a":2}`,
		`{"\ud800":1,"\udbff":2}`, `{"\ud800":1,"\ud800":2}`, `{"a":"\ud83d\ude00\udc00\ud800\u0041"}`, `{"\ufffd":1,"\ud800":[}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return // unmarshal refuses these before parsing
		}
		want, wantErr := parseTokens(data)
		got, gotErr := parseDocument(data)
		// The one difference: a lone surrogate escape, which the token
		// reader read as U+FFFD, is kept distinct (unescape). So two keys
		// the token reader took for one (a duplicate) may be two here.
		if wantErr != nil && gotErr == nil || (wantErr != nil && gotErr != nil && wantErr.Error() != gotErr.Error()) {
			if strings.HasPrefix(wantErr.Error(), "字段") && strings.HasSuffix(wantErr.Error(), "重复") &&
				strings.Contains(wantErr.Error(), "\ufffd") && bytes.Contains(data, []byte(`\u`)) {
				return
			}
		}
		if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
			t.Fatalf("%q: error %v, want %v", data, gotErr, wantErr)
		}
		if got = withoutSurrogates(got); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: %#v, want %#v", data, got, want)
		}
	})
}

// withoutSurrogates is the tree v with every lone surrogate unescape kept
// replaced by U+FFFD, as the token reader read it.
func withoutSurrogates(v any) any {
	switch t := v.(type) {
	case string:
		return replaceSurrogates(t)
	case []any:
		for i := range t {
			t[i] = withoutSurrogates(t[i])
		}
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[replaceSurrogates(k)] = withoutSurrogates(e)
		}
		return out
	}
	return v
}

// TestLoneSurrogate: a \u escape of a surrogate that is not a high one
// followed by a low one is refused naming the field (10001), never read as
// U+FFFD: "\ud800" and "\udbff" were one terminalOrderId, so the second pay
// answered the first's result. Raw invalid UTF-8 is refused as a whole body.
func TestLoneSurrogate(t *testing.T) {
	field := func(name string) string { return fieldError(name, whySurrogate).Msg }
	order := func(fields string) string { return `{"order":{` + fields + `}}` }
	refused := []struct{ name, body, errmsg string }{
		{"lone high", order(`"terminalOrderId":"\ud800"`), field("terminalOrderId")},
		{"last high", order(`"terminalOrderId":"\udbff"`), field("terminalOrderId")},
		{"lone low", order(`"terminalOrderId":"\udc00"`), field("terminalOrderId")},
		{"last low", order(`"terminalOrderId":"\uDFFF"`), field("terminalOrderId")},
		{"high at the end of text", order(`"remark":"abc\ud83d"`), field("remark")},
		{"high then text", order(`"remark":"\ud83dx"`), field("remark")},
		{"high then another escape", order(`"remark":"\ud83d\n"`), field("remark")},
		{"high then high", order(`"remark":"\ud83d\ud83d"`), field("remark")},
		{"low then high", order(`"remark":"\ude00\ud83d"`), field("remark")},
		{"high then non-surrogate escape", order(`"remark":"\ud83d\u0041"`), field("remark")},
		{"pair then lone high", order(`"remark":"\ud83d\ude00\ud83d"`), field("remark")},
		{"amount as a string", order(`"sum":"1\ud800"`), field("sum")},
		{"terminal id", order(`"terminalId":"\ud800"`), field("terminalId")},
		{"top-level field", `{"ID":"\udfff"}`, field("ID")},
		{"first bad field in the document", order(`"sellerId":"\ud800","terminalOrderId":"\ud800"`), field("sellerId")},
		{"raw invalid byte", order("\"terminalOrderId\":\"\xff\""), msgNotUTF8},
		{"raw surrogate bytes", order("\"terminalOrderId\":\"\xed\xa0\x80\""), msgNotUTF8},
		{"raw invalid byte in an unknown field", order("\"x\":\"\xc0\xaf\""), msgNotUTF8},
		{"raw invalid byte in a key", order("\"\xff\":1"), msgNotUTF8},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			for _, m := range []proto.Message{&mapfrontv1.PayRequest{}, &mapfrontv1.OpenCardRequest{}} {
				err := unmarshal([]byte(tt.body), m)
				var de *DecodeError
				if !errors.As(err, &de) {
					// A body for the other message's fields: only the
					// body-wide refusals apply to it.
					if err == nil && !strings.HasPrefix(tt.errmsg, "字段") {
						t.Errorf("%T: accepted, want %q", m, tt.errmsg)
					}
					continue
				}
				if de.Msg != tt.errmsg {
					t.Errorf("%T: %q, want %q", m, de.Msg, tt.errmsg)
				}
			}
		})
	}

	accepted := []struct{ name, body, want string }{
		{"pair", order(`"remark":"\ud83d\ude00"`), "😀"},
		{"pair in upper case", order(`"remark":"\uD83D\uDE00"`), "😀"},
		{"last pair", order(`"remark":"\udbff\udfff"`), "\U0010FFFF"},
		{"escaped replacement character", order(`"remark":"\ufffd"`), "\ufffd"},
		{"raw replacement character", order(`"remark":"` + "\ufffd" + `"`), "\ufffd"},
		{"escapes around a pair", order(`"remark":"\"\ud83d\ude00\\\/\u00e9"`), "\"😀\\/\u00e9"},
		// Keys and unknown fields name no field: ignored, as before.
		{"in an unknown field", order(`"remark":"x","x":"\ud800"`), "x"},
		{"in an unknown key", order(`"remark":"x","\ud800":1,"\udbff":2`), "x"},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			var m mapfrontv1.PayRequest
			if err := unmarshal([]byte(tt.body), &m); err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got := m.GetOrder().GetRemark(); got != tt.want {
				t.Errorf("remark %q, want %q", got, tt.want)
			}
		})
	}

	// A duplicate key that holds one quotes it valid, as encoding/json read it.
	var m mapfrontv1.PayRequest
	err := unmarshal([]byte(`{"\ud800":1,"\ud800":2}`), &m)
	var de *DecodeError
	if !errors.As(err, &de) || de.Msg != "字段\ufffd重复" {
		t.Errorf("duplicate key: %v, want 字段\ufffd重复", err)
	}
}

// TestUnescape holds unescape to encoding/json on every string without a
// lone surrogate, and to distinct results where there is one.
func TestUnescape(t *testing.T) {
	same := []string{
		`\"`, `\\`, `\/`, `\b\f\n\r\t`, `a\u0041b`, `\u00e9\u4e2d`, `\uFFFF`, `\ud83d\ude00`, `x\uD800\uDC00y`,
		`\u0000`, `\u001f`, `\ufffd`, `中\n文`,
	}
	for _, s := range same {
		var want string
		if err := json.Unmarshal([]byte(`"`+s+`"`), &want); err != nil {
			t.Fatal(err)
		}
		if got, err := unescape([]byte(s)); err != nil || got != want {
			t.Errorf("unescape(%s) = %q %v, want %q", s, got, err, want)
		}
	}
	for _, s := range []string{`\x`, `\u12`, `\u12G4`, `\`, `\ud800\u12`, `\U0041`} {
		if _, err := unescape([]byte(s)); err != errNotJSON {
			t.Errorf("unescape(%s): %v, want %v", s, err, errNotJSON)
		}
	}
	lone := []string{`\ud800`, `\udbff`, `\udc00`, `\udfff`, `\ud800\ud800`, `\udc00\ud800`, `a\ud800`, `\ud800a`}
	seen := map[string]string{}
	for _, s := range lone {
		got, err := unescape([]byte(s))
		if err != nil || utf8.ValidString(got) {
			t.Errorf("unescape(%s) = %q %v: want invalid UTF-8", s, got, err)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("unescape(%s) = unescape(%s) = %q", s, other, got)
		}
		seen[got] = s
		var want string
		if err := json.Unmarshal([]byte(`"`+s+`"`), &want); err != nil {
			t.Fatal(err)
		}
		if r := replaceSurrogates(got); r != want {
			t.Errorf("replaceSurrogates(unescape(%s)) = %q, want %q (encoding/json)", s, r, want)
		}
	}
}
