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
// the token reader, which allocated on every token).
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
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return // unmarshal refuses these before parsing
		}
		want, wantErr := parseTokens(data)
		got, gotErr := parseDocument(data)
		if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
			t.Fatalf("%q: error %v, want %v", data, gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: %#v, want %#v", data, got, want)
		}
	})
}
