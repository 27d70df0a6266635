package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mapfront/bench/internal/identity"
	"mapfront/bench/internal/pinblock"
)

func TestParseMix(t *testing.T) {
	good := []struct {
		in   string
		want Mix
	}{
		{"", DefaultMix},
		{"pay=100", Mix{OpPay: 100}},
		{"pay=80,query=10,cancel=5,undo=5", Mix{80, 10, 5, 5}},
		{" undo=1 , pay = 3 ", Mix{OpPay: 3, OpUndo: 1}},
		{"pay=0,query=1", Mix{OpQuery: 1}},
	}
	for _, c := range good {
		got, err := ParseMix(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseMix(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"pay", "pay=x", "pay=-1", "refund=5", "pay=1,pay=2", "pay=0", "pay=0,query=0", "pay=1,", "pay=10000000"} {
		if _, err := ParseMix(in); err == nil {
			t.Errorf("ParseMix(%q) accepted", in)
		}
	}
	if s := (Mix{80, 10, 5, 5}).String(); s != "pay=80,query=10,cancel=5,undo=5" {
		t.Errorf("String = %q", s)
	}
}

func TestLoopback(t *testing.T) {
	for _, a := range []string{"127.0.0.1:9090", "localhost:1", "[::1]:80", "127.3.4.5:8"} {
		if err := CheckLoopbackAddr(a); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:9090", "example.com:80", "0.0.0.0:9090", "127.0.0.1", ":9090"} {
		if err := CheckLoopbackAddr(a); err == nil {
			t.Errorf("%s accepted", a)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://localhost:18080/"} {
		if err := CheckLoopbackURL(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"https://127.0.0.1:8080", "http://192.168.1.2:8080", "127.0.0.1:8080", "http://mapfront.example"} {
		if err := CheckLoopbackURL(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

// The bodies carry the document's field names in its order, amounts as JSON
// numbers.
func TestBody(t *testing.T) {
	term := BenchTerminal(0)
	b, err := Body(&Txn{Op: OpPay, Terminal: term, BatchNo: "B1", TerminalOrderID: "T1", ConsumerID: "15000000001", PINBlock: "00FF", Sum: 7})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"order":{"consumerId":"15000000001","paymentCodeDES":"00FF","sum":7,"sellerId":"BENCHSH","storeId":"BENCHST",` +
		`"terminalId":"BENCH0001","operatorId":"bench","batchNo":"B1","terminalOrderId":"T1","productName":"bench",` +
		`"productPrice":7,"productQuantity":"1","remark":""}}`
	if string(b) != want {
		t.Errorf("pay body\n got %s\nwant %s", b, want)
	}
	b, _ = Body(&Txn{Op: OpQuery, Terminal: term, BatchNo: "B1", TerminalOrderID: "T2", ConsumerID: "15000000001", PINBlock: "00FF"})
	if !strings.HasPrefix(string(b), `{"query":{"consumerId":"15000000001","paymentCodeDES":"00FF","sellerId"`) {
		t.Errorf("query body %s", b)
	}
	b, _ = Body(&Txn{Op: OpCancel, Terminal: term, BatchNo: "B1", TerminalOrderID: "T3", OrderID: "ud1"})
	if !strings.HasPrefix(string(b), `{"order":{"orderId":"ud1","sellerId":"BENCHSH"`) || !strings.Contains(string(b), `"terminalOrderId":"T3"`) {
		t.Errorf("cancel body %s", b)
	}
	b, _ = Body(&Txn{Op: OpUndo, Terminal: term, BatchNo: "B1", TerminalOrderID: "T1"})
	if string(b) != `{"order":{"sellerId":"BENCHSH","storeId":"BENCHST","terminalId":"BENCH0001","operatorId":"bench","terminalOrderId":"T1","batchNo":"B1","remark":""}}` {
		t.Errorf("undo body %s", b)
	}
}

func TestParseAnswer(t *testing.T) {
	cases := []struct {
		op     Op
		status int
		body   string
		code   int
		order  string
	}{
		{OpPay, 200, `{"errcode":0,"errmsg":"支付成功","order":{"orderId":"ud20260101"},"request":"{}"}`, 0, "ud20260101"},
		{OpPay, 200, `{"errcode":10009,"errmsg":"余额不足","request":"{}"}`, 10009, ""},
		{OpPay, 200, `{"errcode":0,"errmsg":"支付成功","request":"{}"}`, CodeBadAnswer, ""},
		{OpQuery, 200, `{"errcode":0,"errmsg":"查询余额成功","card":{"balance":1}}`, 0, ""},
		{OpPay, 200, `<html>`, CodeBadAnswer, ""},
		{OpPay, 200, `{"errmsg":"x"}`, CodeBadAnswer, ""},
		{OpUndo, 404, `{"errcode":10001,"errmsg":"接口路径不存在"}`, CodeBadAnswer, ""},
	}
	for i, c := range cases {
		out := parseAnswer(c.op, c.status, []byte(c.body))
		if out.Errcode != c.code || out.OrderID != c.order {
			t.Errorf("case %d: %+v, want code %d order %q", i, out, c.code, c.order)
		}
	}
}

// fakeServer plays the rules the runner relies on, in memory: terminal keys
// are unique per kind, a cancel must name an approved pay of the same
// terminal that was neither cancelled nor reversed, an undo names a pay key
// of the same terminal.
type fakeServer struct {
	mu       sync.Mutex
	keys     map[string]bool   // kind|terminal|batch|order
	pays     map[string]string // orderId -> "terminal|batch|tid"
	payByKey map[string]string // "terminal|batch|tid" -> orderId
	state    map[string]string // orderId -> "", "cancelled", "reversed"
	pins     *pinblock.Builder
	n        int
	fail     func(t *Txn) int // optional injected errcode
}

func newFake(t *testing.T) *fakeServer {
	b, err := pinblock.NewBuilderHex("0123456789ABCDEFFEDCBA9876543210")
	if err != nil {
		t.Fatal(err)
	}
	return &fakeServer{keys: map[string]bool{}, pays: map[string]string{}, payByKey: map[string]string{}, state: map[string]string{}, pins: b}
}

func (f *fakeServer) Close() error { return nil }

func (f *fakeServer) Do(_ context.Context, t *Txn) Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		if c := f.fail(t); c != 0 {
			return Outcome{Errcode: c, Errmsg: "injected"}
		}
	}
	key := t.TerminalID + "|" + t.BatchNo + "|" + t.TerminalOrderID
	switch t.Op {
	case OpPay, OpQuery:
		want, _ := f.pins.Build("258036", t.ConsumerID)
		if t.PINBlock != want {
			return Outcome{Errcode: 10007, Errmsg: "密码错误"}
		}
		if t.Op == OpQuery {
			return Outcome{}
		}
		if f.keys["pay|"+key] {
			return Outcome{Errcode: 10003, Errmsg: "key reused"}
		}
		if t.Sum < 1 || t.Sum > 9 {
			return Outcome{Errcode: 10015, Errmsg: "amount"}
		}
		f.keys["pay|"+key] = true
		f.n++
		id := fmt.Sprintf("ud%018d", f.n)
		f.pays[id], f.payByKey[key] = key, id
		return Outcome{OrderID: id}
	case OpCancel:
		if f.keys["cancel|"+key] {
			return Outcome{Errcode: 10003, Errmsg: "key reused"}
		}
		f.keys["cancel|"+key] = true
		orig, ok := f.pays[t.OrderID]
		if !ok {
			return Outcome{Errcode: 10010, Errmsg: "not found"}
		}
		if !strings.HasPrefix(orig, t.TerminalID+"|") {
			return Outcome{Errcode: 10012, Errmsg: "other terminal"}
		}
		if f.state[t.OrderID] != "" {
			return Outcome{Errcode: 10011, Errmsg: "already " + f.state[t.OrderID]}
		}
		f.state[t.OrderID] = "cancelled"
		return Outcome{}
	case OpUndo:
		id, ok := f.payByKey[key]
		if !ok {
			return Outcome{Errcode: 10010, Errmsg: "undo of a key never paid"}
		}
		if f.state[id] == "" {
			f.state[id] = "reversed"
		}
		return Outcome{}
	}
	return Outcome{Errcode: CodeBadAnswer}
}

func testConfig(t *testing.T) RunConfig {
	b, err := pinblock.NewBuilderHex("0123456789ABCDEFFEDCBA9876543210")
	if err != nil {
		t.Fatal(err)
	}
	return RunConfig{Customers: 50, Concurrency: 6, Duration: 10 * time.Second, MaxRequests: 3000,
		Mix: Mix{40, 20, 20, 20}, Password: "258036", PINs: b, Terminals: 4, BatchNo: "20260101000000",
		Seed: 1, MaxSum: 9, Timeout: time.Second}
}

// A mixed run against the fake: every answer is errcode 0, so cancels only
// target approved pays of their own terminal, undos only keys that were
// paid, and no terminal key repeats.
func TestRunMixAgainstFake(t *testing.T) {
	f := newFake(t)
	rep, err := Run(context.Background(), testConfig(t), f)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 3000 {
		t.Errorf("total %d, want 3000 (bounded by -n)", rep.Total)
	}
	if n := rep.Unexpected(); n != 0 {
		var buf strings.Builder
		rep.Write(&buf)
		t.Fatalf("%d unexpected answers:\n%s", n, buf.String())
	}
	for op := range numOps {
		if rep.ByOp[op].Count == 0 {
			t.Errorf("no %v sent", op)
		}
	}
	if rep.ByOp[OpPay].OK != f.n {
		t.Errorf("report says %d pays approved, fake saw %d", rep.ByOp[OpPay].OK, f.n)
	}
	var kv strings.Builder
	rep.WriteKV(&kv)
	for _, k := range []string{"total=3000\n", "unexpected=0\n", "pay_tps=", "p99_ms="} {
		if !strings.Contains(kv.String(), k) {
			t.Errorf("key=value output lacks %q:\n%s", k, kv.String())
		}
	}
}

// Any errcode other than 0 is unexpected, and reported with its errmsg.
func TestRunUnexpected(t *testing.T) {
	f := newFake(t)
	var n atomic.Int64
	f.fail = func(t *Txn) int {
		if t.Op == OpPay && n.Add(1)%10 == 0 {
			return 10009
		}
		return 0
	}
	cfg := testConfig(t)
	cfg.Mix, cfg.MaxRequests = DefaultMix, 200
	rep, err := Run(context.Background(), cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Unexpected() != 20 {
		t.Errorf("unexpected = %d, want 20", rep.Unexpected())
	}
	var buf strings.Builder
	rep.Write(&buf)
	if !strings.Contains(buf.String(), "10009") || !strings.Contains(buf.String(), "UNEXPECTED, first errmsg: injected") {
		t.Errorf("report:\n%s", buf.String())
	}
}

// The time bound alone stops a run.
func TestRunStopsByTime(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxRequests, cfg.Duration = 0, 200*time.Millisecond
	start := time.Now()
	rep, err := Run(context.Background(), cfg, newFake(t))
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second || rep.Total == 0 {
		t.Errorf("ran %v, %d requests", el, rep.Total)
	}
}

func TestRunConfigRefusals(t *testing.T) {
	for name, mut := range map[string]func(*RunConfig){
		"unbounded":   func(c *RunConfig) { c.Duration = 0 },
		"customers":   func(c *RunConfig) { c.Customers = identity.MaxCustomers + 1 },
		"concurrency": func(c *RunConfig) { c.Concurrency = 0 },
		"mix":         func(c *RunConfig) { c.Mix = Mix{} },
		"password":    func(c *RunConfig) { c.Password = "12" },
	} {
		cfg := testConfig(t)
		mut(&cfg)
		if _, err := Run(context.Background(), cfg, newFake(t)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// HTTPClient against a loopback stand-in for the gateway: the right paths,
// and keep-alive connections reused (no more connections than workers).
func TestHTTPClientKeepAlive(t *testing.T) {
	var conns atomic.Int64
	var paths sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		paths.Store(r.URL.Path, true)
		var v map[string]map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			http.Error(w, "bad", 400)
			return
		}
		io.WriteString(w, `{"errcode":0,"errmsg":"ok","order":{"orderId":"ud1"},"request":""}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := NewHTTPClient(srv.URL, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := testConfig(t)
	cfg.Concurrency, cfg.MaxRequests = 4, 400
	rep, err := Run(context.Background(), cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 400 || rep.Unexpected() != 0 {
		t.Errorf("total %d, unexpected %d", rep.Total, rep.Unexpected())
	}
	// A worker's next request can race the return of its connection to the
	// idle pool (the transport does that asynchronously) and dial one more;
	// without reuse there would be one connection per request (400).
	if n := conns.Load(); n > 8 {
		t.Errorf("%d connections for 4 workers and 400 requests: keep-alive not reused", n)
	}
	for _, p := range []string{"/front/offline/pay", "/front/offline/get_account_info", "/front/offline/pay_cancel", "/front/offline/pay_undo"} {
		if _, ok := paths.Load(p); !ok {
			t.Errorf("%s never called", p)
		}
	}
}

func TestHTTPClientTransportError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	c, err := NewHTTPClient("http://"+addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	out := c.Do(context.Background(), &Txn{Op: OpUndo, Terminal: BenchTerminal(0), BatchNo: "B", TerminalOrderID: "T"})
	if out.Errcode != CodeTransport {
		t.Errorf("outcome %+v, want transport error", out)
	}
	if _, err := NewHTTPClient("http://10.1.2.3:8080", 1); err == nil {
		t.Error("non-loopback gateway accepted")
	}
}
