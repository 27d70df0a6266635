package legacy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// paths are the seven legacy paths with their example bodies (testdata).
var paths = []string{"open_card", "repeal_card", "pay", "pay_cancel", "pay_undo", "get_account_info", "download_product"}

// specErrcodes are the errcodes of SPEC section 3.
func specErrcode(n int) bool { return n == 0 || (n >= 10000 && n <= 10018) }

// startEdge serves the real handler, behind Listen and NewServer as the
// programs do, in front of the fake backend over real gRPC, on a loopback
// port. The backend answers every call with an empty success.
func startEdge(t testing.TB, cfg EdgeConfig, opts Options) (addr string, b *backend) {
	t.Helper()
	h, b := newGateway(t, opts)
	b.set(nil, nil)
	ln, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(cfg, h, ServerLimits{
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 20 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
	}, nil, nil)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), b
}

// checkEnvelope asserts what every answer of the edge must be, whatever was
// sent: no 5xx, the envelope (a JSON object errcode, errmsg, ..., request)
// with an errcode of SPEC section 3 and a message, and never 10000, which
// would blame the system for the client's mistake.
func checkEnvelope(t *testing.T, status int, header http.Header, body []byte) answer {
	t.Helper()
	if status >= 500 {
		t.Errorf("HTTP %d: a client's input answered as a server fault", status)
	}
	if ct := header.Get("Content-Type"); ct != contentType {
		t.Errorf("Content-Type %q, want %q (body %.200q)", ct, contentType, body)
	}
	var a struct {
		Errcode *int    `json:"errcode"`
		Errmsg  *string `json:"errmsg"`
		Request *string `json:"request"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.Errcode == nil || a.Errmsg == nil || a.Request == nil {
		t.Fatalf("HTTP %d: not the envelope: %.300q", status, body)
	}
	if !specErrcode(*a.Errcode) || *a.Errcode == codeInternal || *a.Errmsg == "" {
		t.Errorf("HTTP %d errcode %d errmsg %q: want an errcode of SPEC section 3 other than 10000, and a message", status, *a.Errcode, *a.Errmsg)
	}
	return answer{Errcode: *a.Errcode, Errmsg: *a.Errmsg, Request: *a.Request}
}

type bodyCase struct {
	name, path, body string
	errcode          int    // -1: any errcode but 10000
	errmsg           string // a part of the errmsg; "" checks nothing
	status           int    // 0 means 200
}

// controlCases puts a control character into every string field of every
// example body, in turn: each must be 10001 naming that field.
func controlCases(t *testing.T) []bodyCase {
	field := regexp.MustCompile(`"(\w+)"\s*:\s*"([^"]*)"`)
	var out []bodyCase
	for _, p := range paths {
		example := readExample(t, p)
		for _, m := range field.FindAllStringSubmatchIndex(example, -1) {
			name := example[m[2]:m[3]]
			for _, c := range []string{`\u0000`, `\u001f`, `\n`} {
				body := example[:m[5]] + c + example[m[5]:]
				out = append(out, bodyCase{
					name: p + "/" + name + "/" + c, path: p, body: body,
					errcode: codeMalformed, errmsg: "字段" + name + "格式错误：" + whyControl,
				})
			}
		}
	}
	return out
}

// surrogateCases puts a lone surrogate escape into every string field of
// every example body, in turn: each must be 10001 naming that field (read as
// U+FFFD, "\ud800" and "\udbff" were one terminal key).
func surrogateCases(t *testing.T) []bodyCase {
	field := regexp.MustCompile(`"(\w+)"\s*:\s*"([^"]*)"`)
	var out []bodyCase
	for _, p := range paths {
		example := readExample(t, p)
		for _, m := range field.FindAllStringSubmatchIndex(example, -1) {
			name := example[m[2]:m[3]]
			for _, c := range []string{`\ud800`, `\udbff`, `\udc00`, `\ude00\ud83d`} {
				body := example[:m[5]] + c + example[m[5]:]
				out = append(out, bodyCase{
					name: p + "/" + name + "/" + c, path: p, body: body,
					errcode: codeMalformed, errmsg: "字段" + name + "格式错误：" + whySurrogate,
				})
			}
		}
	}
	return out
}

// badBodies are request bodies a client may get wrong, one way each.
var badBodies = []bodyCase{
	{name: "empty", path: "pay", body: "", errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "whitespace", path: "pay", body: " \r\n\t", errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "open brace", path: "pay", body: "{", errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "close brace", path: "pay", body: "}", errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "array", path: "pay", body: "[]", errcode: codeMalformed, errmsg: msgNotObject},
	{name: "null", path: "pay", body: "null", errcode: codeMalformed, errmsg: msgNotObject},
	{name: "number", path: "pay", body: "0", errcode: codeMalformed, errmsg: msgNotObject},
	{name: "string", path: "pay", body: `"order"`, errcode: codeMalformed, errmsg: msgNotObject},
	{name: "key without value", path: "pay", body: `{"order"}`, errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "colon without value", path: "pay", body: `{"order":}`, errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "lone comma", path: "pay", body: `{,}`, errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "single quotes", path: "pay", body: `{'order':{}}`, errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "comment", path: "pay", body: "// x\n{}", errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "two objects", path: "pay", body: `{}{}`, errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "trailing garbage", path: "pay", body: `{} x`, errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "bare word value", path: "pay", body: `{"order":{"sum":five}}`, errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "NaN", path: "pay", body: `{"order":{"sum":NaN}}`, errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "raw NUL outside a string", path: "pay", body: "{\x00}", errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "raw NUL inside a string", path: "pay", body: "{\"order\":{\"remark\":\"a\x00b\"}}", errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "raw newline inside a string", path: "pay", body: "{\"order\":{\"remark\":\"a\nb\"}}", errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "bad escape", path: "pay", body: `{"order":{"remark":"\x"}}`, errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "short unicode escape", path: "pay", body: `{"order":{"remark":"\u12"}}`, errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "invalid UTF-8", path: "pay", body: "{\"order\":{\"remark\":\"\xff\"}}", errcode: codeMalformed, errmsg: msgNotUTF8},
	{name: "overlong UTF-8", path: "pay", body: "{\"order\":{\"remark\":\"\xc0\xaf\"}}", errcode: codeMalformed, errmsg: msgNotUTF8},
	{name: "UTF-16 body", path: "pay", body: "\xff\xfe{\x00}\x00", errcode: codeMalformed, errmsg: msgNotUTF8},
	{name: "GBK text", path: "pay", body: "{\"order\":{\"productName\":\"\xb2\xe2\xca\xd4\"}}", errcode: codeMalformed, errmsg: msgNotUTF8},
	{name: "two BOMs", path: "pay", body: "\ufeff\ufeff{}", errcode: codeMalformed, errmsg: msgNotJSON},
	{name: "lone surrogate escape", path: "pay", body: `{"order":{"remark":"\ud800"}}`, errcode: codeMalformed, errmsg: "字段remark格式错误：" + whySurrogate},
	{name: "lone surrogate escape in a key", path: "pay", body: `{"order":{"\ud800":1,"\udbff":2,"sum":1}}`, errcode: 0},
	{name: "deep nesting", path: "pay", body: strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000), errcode: codeMalformed, errmsg: msgTooDeep},
	{name: "deep arrays", path: "pay", body: `{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "}", errcode: codeMalformed, errmsg: msgTooDeep},
	{name: "order not an object", path: "pay", body: `{"order":[]}`, errcode: codeMalformed, errmsg: "字段order格式错误"},
	{name: "query a string", path: "get_account_info", body: `{"query":"13912345678"}`, errcode: codeMalformed, errmsg: "字段query格式错误"},
	{name: "duplicate key", path: "pay", body: `{"order":{"sum":1,"sum":2}}`, errcode: codeMalformed, errmsg: "字段sum重复"},
	{name: "duplicate top key", path: "open_card", body: `{"ID":"1","ID":"1"}`, errcode: codeMalformed, errmsg: "字段ID重复"},
	{name: "sum negative", path: "pay", body: `{"order":{"sum":-1}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum minus zero", path: "pay", body: `{"order":{"sum":-0}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum fraction", path: "pay", body: `{"order":{"sum":0.5}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum zero point zero", path: "pay", body: `{"order":{"sum":1.0}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum exponent", path: "pay", body: `{"order":{"sum":1E2}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum huge exponent", path: "pay", body: `{"order":{"sum":1e400}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum overflow", path: "pay", body: `{"order":{"sum":9223372036854775808}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum plus sign", path: "pay", body: `{"order":{"sum":"+1"}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum hex", path: "pay", body: `{"order":{"sum":"0x10"}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum with space", path: "pay", body: `{"order":{"sum":"1 "}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum yuan", path: "pay", body: `{"order":{"sum":"50.00"}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum boolean", path: "pay", body: `{"order":{"sum":true}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum object", path: "pay", body: `{"order":{"sum":{}}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "sum full-width digits", path: "pay", body: `{"order":{"sum":"５０"}}`, errcode: codeMalformed, errmsg: "字段sum"},
	{name: "paySum array", path: "open_card", body: `{"paySum":[100]}`, errcode: codeMalformed, errmsg: "字段paySum"},
	{name: "productPrice negative string", path: "pay", body: `{"order":{"productPrice":"-500"}}`, errcode: codeMalformed, errmsg: "字段productPrice"},
	{name: "id as object", path: "open_card", body: `{"ID":{"v":"1"}}`, errcode: codeMalformed, errmsg: "字段ID"},
	{name: "id as array", path: "open_card", body: `{"ID":["1"]}`, errcode: codeMalformed, errmsg: "字段ID"},
	{name: "mobile boolean", path: "open_card", body: `{"mobileNum":false}`, errcode: codeMalformed, errmsg: "字段mobileNum"},
	{name: "terminal as object", path: "download_product", body: `{"terminalId":{}}`, errcode: codeMalformed, errmsg: "字段terminalId"},
	{name: "control character in an unknown field is ignored", path: "download_product", body: `{"x\u0000":"\u0000"}`, errcode: 0},
	{name: "very long key", path: "download_product", body: `{"` + strings.Repeat("k", 60000) + `":1}`, errcode: 0},
	{name: "many keys", path: "download_product", body: "{" + manyKeys(4000) + "}", errcode: 0},
	{name: "over the body limit", path: "download_product", body: `{"remark":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}`,
		errcode: codeMalformed, errmsg: msgTooLarge, status: http.StatusRequestEntityTooLarge},
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	return b.String()
}

// TestBadInputCorpus sends every bad body of the corpus (the hand-written
// ones, and a control character and a lone surrogate escape in each string
// field of each example) to a
// real edge server over HTTP. Every answer is the envelope, none a 5xx or
// 10000, and the server is never called for a refused body.
func TestBadInputCorpus(t *testing.T) {
	addr, b := startEdge(t, DefaultEdgeConfig(), Options{})
	cases := append(append(controlCases(t), surrogateCases(t)...), badBodies...)
	if len(cases) < 90 {
		t.Fatalf("corpus has %d body cases", len(cases))
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, before := b.last()
			resp, err := http.Post("http://"+addr+"/front/offline/"+tt.path, "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			a := checkEnvelope(t, resp.StatusCode, resp.Header, body)
			want := tt.status
			if want == 0 {
				want = http.StatusOK
			}
			if resp.StatusCode != want {
				t.Errorf("HTTP %d, want %d", resp.StatusCode, want)
			}
			if tt.errcode >= 0 && a.Errcode != tt.errcode {
				t.Errorf("errcode %d %q, want %d", a.Errcode, a.Errmsg, tt.errcode)
			}
			if !strings.Contains(a.Errmsg, tt.errmsg) {
				t.Errorf("errmsg %q, want it to contain %q", a.Errmsg, tt.errmsg)
			}
			if _, after := b.last(); tt.errcode == codeMalformed && after != before {
				t.Error("the server was called for a refused body")
			}
		})
	}
}

type rawCase struct {
	name   string
	req    string // the bytes sent; "{{big}}" is replaced by 40 KiB of header
	status int    // the HTTP status wanted
	errmsg string // a part of the errmsg; "" checks nothing
	// halfClose shuts the writing side after the request, as a client does
	// that sends less body than it announced.
	halfClose bool
}

const payBody = `{"order":{"sum":1}}`

var rawCases = []rawCase{
	{name: "dot-dot path", req: "POST /front/offline/../offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", status: 404, errmsg: msgNotFound},
	{name: "dot-dot at the end", req: "POST /front/offline/pay/.. HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", status: 404, errmsg: msgNotFound},
	{name: "double slash", req: "POST //front/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", status: 404, errmsg: msgNotFound},
	{name: "dot segment", req: "POST /front/offline/./pay HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", status: 404, errmsg: msgNotFound},
	{name: "encoded dot-dot", req: "POST /front/offline/%2e%2e/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", status: 404, errmsg: msgNotFound},
	{name: "dot-dot before an operations path", req: "GET /x/../healthz HTTP/1.1\r\nHost: x\r\n\r\n", status: 404, errmsg: msgNotFound},
	{name: "POST to an operations path", req: "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", status: 404, errmsg: msgNotFound},
	{name: "bad escape in the path", req: "POST /front/offline/p%zzay HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", status: 400, errmsg: msgBadHTTP},
	{name: "negative Content-Length", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}", status: 400, errmsg: msgBadHTTP},
	{name: "non-numeric Content-Length", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", status: 400, errmsg: msgBadHTTP},
	{name: "signed Content-Length", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}", status: 400, errmsg: msgBadHTTP},
	{name: "overflowing Content-Length", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}", status: 400, errmsg: msgBadHTTP},
	{name: "two Content-Lengths", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{} ", status: 400, errmsg: msgBadHTTP},
	{name: "huge Content-Length", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n{}", status: 413, errmsg: msgTooLarge},
	{name: "unknown Transfer-Encoding", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{}", status: 400, errmsg: msgBadEncoding},
	{name: "Transfer-Encoding list", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", status: 400},
	{name: "bad chunk size", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", status: 400, errmsg: msgReadFailed},
	{name: "chunked over the limit", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + bigChunks(), status: 413, errmsg: msgTooLarge},
	{name: "chunked and Content-Length", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", status: 200}, // net/http drops the Content-Length
	{name: "body shorter than announced", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}", status: 400, errmsg: msgReadFailed, halfClose: true},
	{name: "header block too large", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nX-Big: {{big}}\r\nContent-Length: 2\r\n\r\n{}", status: 431, errmsg: msgHeaderTooLarge},
	{name: "request line too long", req: "POST /front/offline/{{big}} HTTP/1.1\r\nHost: x\r\n\r\n", status: 431, errmsg: msgHeaderTooLarge},
	{name: "no Host in HTTP/1.1", req: "POST /front/offline/pay HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", status: 400, errmsg: msgBadHTTP},
	{name: "two Hosts", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Length: 2\r\n\r\n{}", status: 400, errmsg: msgBadHTTP},
	{name: "bad Host", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x y\r\nContent-Length: 2\r\n\r\n{}", status: 400, errmsg: msgBadHTTP},
	{name: "request line without target", req: "POST\r\nHost: x\r\n\r\n", status: 400, errmsg: msgBadHTTP},
	{name: "HTTP/2.0 in an HTTP/1 request line", req: "POST /front/offline/pay HTTP/2.0\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", status: 400, errmsg: msgBadVersion},
	{name: "unknown HTTP version", req: "POST /front/offline/pay HTTP/9.9\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", status: 400},
	{name: "not HTTP at all", req: "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", status: 400, errmsg: msgBadHTTP},
	{name: "NUL in a header value", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}", status: 400, errmsg: msgBadHTTP},
	{name: "header without colon", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nNoColon\r\nContent-Length: 2\r\n\r\n{}", status: 400, errmsg: msgBadHTTP},
	{name: "space in a header name", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\nContent-Length: 2\r\n\r\n{}", status: 400, errmsg: msgBadHTTP},
	{name: "folded header", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\n{}", status: 200}, // net/http unfolds it
	{name: "unknown Expect", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}", status: 417, errmsg: msgBadExpect},
	{name: "OPTIONS star", req: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", status: 404, errmsg: msgNotFound},
	{name: "CONNECT", req: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", status: 404, errmsg: msgNotFound},
	{name: "lower-case method", req: "post /front/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", status: 405, errmsg: msgMethod},
	{name: "TRACE", req: "TRACE /front/offline/pay HTTP/1.1\r\nHost: x\r\n\r\n", status: 405, errmsg: msgMethod},
	{name: "absolute request target", req: "POST http://x/front/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 19\r\n\r\n" + payBody, status: 200},
	{name: "HTTP/1.0 without Host", req: "POST /front/offline/pay HTTP/1.0\r\nContent-Length: 19\r\n\r\n" + payBody, status: 200},
	{name: "query string", req: "POST /front/offline/pay?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 19\r\n\r\n" + payBody, status: 200},
	{name: "HTTP/2 preface without h2c", req: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", status: 404},
	{name: "HTTP/2 upgrade request", req: "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 19\r\n\r\n" + payBody, status: 200},
	{name: "bare LF line ends", req: "POST /front/offline/pay HTTP/1.1\nHost: x\nContent-Length: 19\n\n" + payBody, status: 200},
}

func bigChunks() string {
	chunk := strings.Repeat("x", 8192)
	return strings.Repeat(fmt.Sprintf("%x\r\n%s\r\n", len(chunk), chunk), 10) + "0\r\n\r\n"
}

// TestRawHTTPCorpus sends malformed HTTP over a raw socket to a real edge
// server: whatever net/http or the handler refuses is answered with the
// envelope, never a 5xx or a redirect.
func TestRawHTTPCorpus(t *testing.T) {
	addr, _ := startEdge(t, DefaultEdgeConfig(), Options{})
	for _, tt := range rawCases {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawExchange(t, addr, strings.ReplaceAll(tt.req, "{{big}}", strings.Repeat("a", 40<<10)), tt.halfClose)
			a := checkEnvelope(t, resp.StatusCode, resp.Header, body)
			if resp.StatusCode != tt.status {
				t.Errorf("HTTP %d %q, want %d", resp.StatusCode, a.Errmsg, tt.status)
			}
			if !strings.Contains(a.Errmsg, tt.errmsg) {
				t.Errorf("errmsg %q, want it to contain %q", a.Errmsg, tt.errmsg)
			}
		})
	}
}

// rawExchange writes req on a new connection and reads one response.
func rawExchange(t *testing.T, addr, req string, halfClose bool) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no HTTP response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return resp, body
}

// TestRewriteRefusal pins the net/http refusal format the rewriting relies
// on, and that a handler's own responses pass through untouched.
func TestRewriteRefusal(t *testing.T) {
	const hdr = netHTTPErrorHeaders
	tests := []struct {
		in     string
		status int // 0: left alone
	}{
		{"HTTP/1.1 431 Request Header Fields Too Large" + hdr + "431 Request Header Fields Too Large", 431},
		{"HTTP/1.1 400 Bad Request" + hdr + "400 Bad Request", 400},
		{"HTTP/1.1 400 Bad Request: missing required Host header" + hdr + "400 Bad Request: missing required Host header", 400},
		{"HTTP/1.1 501 Not Implemented" + hdr + "Unsupported transfer encoding", 400},
		{"HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version" + hdr + "x", 400},
		{"HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nDate: x\r\nContent-Length: 0\r\n\r\n", 417},
		{"HTTP/1.1 200 OK" + hdr + "ok", 0},
		{"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\nDate: x\r\n\r\n{}", 0},
		{"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", 0},
		{"{\"errcode\":0}", 0},
		{"HTTP/1.1 4", 0},
	}
	for _, tt := range tests {
		out := rewriteRefusal([]byte(tt.in))
		if tt.status == 0 {
			if out != nil {
				t.Errorf("%.40q rewritten", tt.in)
			}
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("%.40q: rewritten into no response: %v", tt.in, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tt.status || !resp.Close {
			t.Errorf("%.40q: HTTP %d close %v, want %d and close", tt.in, resp.StatusCode, resp.Close, tt.status)
		}
		checkEnvelope(t, resp.StatusCode, resp.Header, body)
	}
}
