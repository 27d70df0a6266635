package legacy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// testPKI is a CA for the server certificate, a CA of the POSP and a client
// certificate it signed, written as PEM files.
type testPKI struct {
	serverCert, serverKey, serverCA string // files
	clientCA                        string // file
	client                          tls.Certificate
	otherClient                     tls.Certificate // signed by a CA the edge does not trust
	roots                           *x509.CertPool  // trusts the server certificate
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		p := filepath.Join(dir, name)
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	serial := int64(1)
	issue := func(tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert, key, der
	}
	ca := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		return issue(&x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	}
	keyBlock := func(k *ecdsa.PrivateKey) *pem.Block {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
	}
	clientCert := func(caCert *x509.Certificate, caKey *ecdsa.PrivateKey) tls.Certificate {
		_, key, der := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "posp"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, caCert, caKey)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}

	var p testPKI
	srvCA, srvCAKey, srvCADER := ca("mapfront test server CA")
	_, srvKey, srvDER := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "gateway"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, srvCA, srvCAKey)
	p.serverCert = write("server.pem", &pem.Block{Type: "CERTIFICATE", Bytes: srvDER})
	p.serverKey = write("server.key", keyBlock(srvKey))
	p.serverCA = write("server-ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: srvCADER})
	p.roots = x509.NewCertPool()
	p.roots.AddCert(srvCA)

	pospCA, pospCAKey, pospCADER := ca("POSP client CA")
	p.clientCA = write("client-ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: pospCADER})
	p.client = clientCert(pospCA, pospCAKey)
	otherCA, otherCAKey, _ := ca("someone else")
	p.otherClient = clientCert(otherCA, otherCAKey)
	return p
}

// tlsClient is an HTTPS client trusting the test server CA, presenting certs
// and, when from is set, connecting from that local address.
func tlsClient(p testPKI, from string, maxVersion uint16, certs ...tls.Certificate) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:     d.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: p.roots, Certificates: certs, MaxVersion: maxVersion},
	}}
}

func postTo(t *testing.T, c *http.Client, url, body string) (*http.Response, []byte, error) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// TestEdgeTLS: over HTTPS with a client certificate from the POSP's CA the
// document's pay example works; without one, or with one from another CA,
// the handshake is refused; from 127.0.0.2, outside an allowlist of
// 127.0.0.1/32, the answer is 403 with the envelope; plain HTTP to the
// HTTPS port gets the envelope too.
func TestEdgeTLS(t *testing.T) {
	p := newPKI(t)
	cfg := DefaultEdgeConfig()
	cfg.CertFile, cfg.KeyFile, cfg.ClientCAFile = p.serverCert, p.serverKey, p.clientCA
	if err := cfg.Allow.Set("127.0.0.1/32"); err != nil {
		t.Fatal(err)
	}
	addr, b := startEdge(t, cfg, Options{})
	paid := &mapfrontv1.PayResponse{Order: &mapfrontv1.PaymentOrder{OrderId: "ud20261129000000000001", Sum: 5000,
		Status: mapfrontv1.PaymentStatus_PAYMENT_STATUS_PAID, AccountId: proto.String("1010123412341234"), Balance: proto.Int64(295000)}}
	b.set(paid, nil)
	url := "https://" + addr + "/front/offline/pay"
	body := readExample(t, "pay")

	t.Run("client certificate", func(t *testing.T) {
		resp, out, err := postTo(t, tlsClient(p, "", 0, p.client), url, body)
		if err != nil {
			t.Fatal(err)
		}
		a := checkEnvelope(t, resp.StatusCode, resp.Header, out)
		if resp.StatusCode != 200 || a.Errcode != 0 || a.Request != body || !strings.Contains(string(out), `"balance":295000`) {
			t.Errorf("HTTP %d %s", resp.StatusCode, out)
		}
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("answer not over TLS 1.2+: %+v", resp.TLS)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		_, before := b.last()
		if resp, out, err := postTo(t, tlsClient(p, "", 0), url, body); err == nil {
			t.Errorf("answered without a client certificate: HTTP %d %s", resp.StatusCode, out)
		}
		if _, after := b.last(); after != before {
			t.Error("the server was called")
		}
	})
	t.Run("client certificate of another CA", func(t *testing.T) {
		if resp, out, err := postTo(t, tlsClient(p, "", 0, p.otherClient), url, body); err == nil {
			t.Errorf("answered: HTTP %d %s", resp.StatusCode, out)
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		if resp, _, err := postTo(t, tlsClient(p, "", tls.VersionTLS11, p.client), url, body); err == nil {
			t.Errorf("answered over TLS 1.1: HTTP %d", resp.StatusCode)
		}
	})
	t.Run("source outside the allowlist", func(t *testing.T) {
		_, before := b.last()
		resp, out, err := postTo(t, tlsClient(p, "127.0.0.2", 0, p.client), url, body)
		if err != nil {
			t.Skipf("cannot connect from 127.0.0.2 here: %v", err)
		}
		a := checkEnvelope(t, resp.StatusCode, resp.Header, out)
		if resp.StatusCode != http.StatusForbidden || a.Errcode != codeTerminal || a.Errmsg != msgSourceRefused {
			t.Errorf("HTTP %d errcode %d %q, want 403 10002 %q", resp.StatusCode, a.Errcode, a.Errmsg, msgSourceRefused)
		}
		if _, after := b.last(); after != before {
			t.Error("the server was called")
		}
	})
	t.Run("plain HTTP to the HTTPS port", func(t *testing.T) {
		resp, out := rawExchange(t, addr, "POST /front/offline/pay HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", false)
		a := checkEnvelope(t, resp.StatusCode, resp.Header, out)
		if resp.StatusCode != http.StatusBadRequest || a.Errmsg != msgUseHTTPS {
			t.Errorf("HTTP %d %q", resp.StatusCode, a.Errmsg)
		}
	})
}

// TestEdgeMinTLS13 refuses a TLS 1.2 client when 1.3 is the minimum.
func TestEdgeMinTLS13(t *testing.T) {
	p := newPKI(t)
	cfg := DefaultEdgeConfig()
	cfg.CertFile, cfg.KeyFile, cfg.MinTLS = p.serverCert, p.serverKey, tls.VersionTLS13
	addr, b := startEdge(t, cfg, Options{})
	b.set(&mapfrontv1.DownloadProductResponse{}, nil)
	url := "https://" + addr + "/front/offline/download_product"
	if _, _, err := postTo(t, tlsClient(p, "", tls.VersionTLS12), url, "{}"); err == nil {
		t.Error("TLS 1.2 accepted with a 1.3 minimum")
	}
	resp, out, err := postTo(t, tlsClient(p, "", 0), url, "{}")
	if err != nil || resp.StatusCode != 200 || resp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("TLS 1.3: %v %s", err, out)
	}
}

// TestDefaultAllowIsLoopback: without -allow, loopback is admitted and any
// other source refused (the safe default).
func TestDefaultAllowIsLoopback(t *testing.T) {
	var allow Prefixes
	h := admit(allow, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(299) }), slog.New(slog.DiscardHandler), nil)
	for remote, want := range map[string]int{
		"127.0.0.1:5000": 299, "127.8.9.10:5000": 299, "[::1]:5000": 299, "[::ffff:127.0.0.1]:5000": 299,
		"10.0.0.1:5000": 403, "[2001:db8::1]:5000": 403, "garbage": 403,
	} {
		req, _ := http.NewRequest(http.MethodPost, "/front/offline/pay", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%s: HTTP %d, want %d", remote, rec.Code, want)
		}
	}
}

func TestEdgeConfig(t *testing.T) {
	c := DefaultEdgeConfig()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	pairs := c.RegisterFlags(fs, "legacy-", "MAPFRONT_LEGACY_")
	err := fs.Parse([]string{"-legacy-allow", "10.8.0.0/16, 192.168.1.7", "-legacy-tls-min-version", "1.3",
		"-legacy-terminal-limit", "5/s", "-legacy-source-limit", "off", "-legacy-open-card-limit", "3/2m",
		"-legacy-access-log-every", "1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Allow.String() != "10.8.0.0/16,192.168.1.7/32" || c.MinTLS != tls.VersionTLS13 ||
		c.Limits.Terminal != (Limit{5, time.Second}) || c.Limits.Source != (Limit{}) || c.Limits.OpenCard != (Limit{3, 2 * time.Minute}) || c.AccessLogEvery != 1 {
		t.Errorf("parsed %+v", c)
	}
	if DefaultEdgeConfig().AccessLogEvery != DefaultAccessLogEvery {
		t.Errorf("default access-log-every %d", DefaultEdgeConfig().AccessLogEvery)
	}
	found := false
	for _, p := range pairs {
		if p.Flag == "legacy-tls-cert-file" && p.Env == "MAPFRONT_LEGACY_TLS_CERT_FILE" {
			found = true
		}
	}
	if !found {
		t.Errorf("flag/env pairs %v", pairs)
	}
	for _, bad := range [][]string{{"-legacy-allow", "10.0.0.0/33"}, {"-legacy-tls-min-version", "1.1"},
		{"-legacy-terminal-limit", "5"}, {"-legacy-terminal-limit", "-1/s"}, {"-legacy-terminal-limit", "5/0s"}} {
		c := DefaultEdgeConfig()
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.RegisterFlags(fs, "legacy-", "MAPFRONT_LEGACY_")
		if err := fs.Parse(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	for _, c := range []EdgeConfig{
		{CertFile: "a.pem", MinTLS: tls.VersionTLS12},
		{ClientCAFile: "ca.pem", MinTLS: tls.VersionTLS12},
		{MinTLS: tls.VersionTLS11},
		{MinTLS: tls.VersionTLS12, AccessLogEvery: -1},
	} {
		if c.Validate() == nil {
			t.Errorf("%+v valid", c)
		}
	}
	if _, err := Listen("127.0.0.1:0", EdgeConfig{CertFile: "/nonexistent", KeyFile: "/nonexistent", MinTLS: tls.VersionTLS12}); err == nil {
		t.Error("Listen with missing key material")
	}
}

// clock is a settable test clock for the limits.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// refusals counts the Refused reports.
type refusals struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *refusals) add(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[reason]++
}

func (r *refusals) get(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[reason]
}

func payFrom(terminal, key string) string {
	return `{"order":{"consumerId":"13912345678","sum":100,"sellerId":"S","storeId":"T","terminalId":"` + terminal +
		`","batchNo":"1","terminalOrderId":"` + key + `"}}`
}

// TestTerminalRateLimit: terminal A sends at three times its rate and gets
// 10018 for the excess, with nothing sent to the server, while terminal B at
// its rate is never refused.
func TestTerminalRateLimit(t *testing.T) {
	const n = 10 // per second, and the burst
	clk := &clock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	var ref refusals
	h, b := newGateway(t, Options{Limits: Limits{Terminal: Limit{N: n, Per: time.Second}}, Now: clk.Now, Refused: ref.add})
	b.set(&mapfrontv1.PayResponse{}, nil)
	start := clk.Now()
	const seconds = 3
	var okA, busyA, okB int
	for i := range 3 * n * seconds {
		at := start.Add(time.Duration(i) * time.Second / (3 * n))
		clk.set(at)
		_, before := b.last()
		body := payFrom("A", "a"+strings.Repeat("0", i%3))
		a := readAnswer(t, post(h, "/front/offline/pay", body), body)
		_, after := b.last()
		switch a.Errcode {
		case 0:
			okA++
		case codeBusy:
			busyA++
			if after != before {
				t.Fatal("a refused request reached the server")
			}
			if a.Errmsg != msgRateLimited {
				t.Errorf("errmsg %q", a.Errmsg)
			}
		default:
			t.Fatalf("terminal A: errcode %d %s", a.Errcode, a.Errmsg)
		}
		if i%3 == 0 { // B at exactly its rate
			body := payFrom("B", "b")
			if a := readAnswer(t, post(h, "/front/offline/pay", body), body); a.Errcode != 0 {
				t.Fatalf("terminal B refused at its own rate: errcode %d %s", a.Errcode, a.Errmsg)
			}
			okB++
		}
	}
	// A token bucket of n with n per second admits the burst plus what the
	// elapsed time refilled.
	elapsed := float64(3*n*seconds-1) / float64(3*n)
	wantOK := n + int(elapsed*n)
	t.Logf("terminal A: %d approved, %d refused; terminal B: %d approved", okA, busyA, okB)
	if okA < wantOK-1 || okA > wantOK+1 {
		t.Errorf("terminal A approved %d, want about %d", okA, wantOK)
	}
	if busyA < n*seconds { // two thirds of 3n per second, less the burst
		t.Errorf("terminal A refused %d", busyA)
	}
	if ref.get(RefusedTerminalRate) != busyA {
		t.Errorf("refusals reported %d, want %d", ref.get(RefusedTerminalRate), busyA)
	}
}

// TestOpenCardLimit: open_card has its own, smaller budget per terminal;
// other calls of that terminal go on.
func TestOpenCardLimit(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	var ref refusals
	h, b := newGateway(t, Options{Limits: Limits{Terminal: Limit{N: 100, Per: time.Second}, OpenCard: Limit{N: 2, Per: time.Minute}},
		Now: clk.Now, Refused: ref.add})
	open := `{"ID":"110105194912310038","mobileNum":"13800000001","terminalId":"POS01","paySum":1}`
	for i, want := range []int{0, 0, codeBusy, codeBusy} {
		b.set(&mapfrontv1.OpenCardResponse{}, nil)
		if a := readAnswer(t, post(h, "/front/offline/open_card", open), open); a.Errcode != want {
			t.Errorf("open_card %d: errcode %d, want %d", i+1, a.Errcode, want)
		}
	}
	b.set(&mapfrontv1.PayResponse{}, nil)
	if a := readAnswer(t, post(h, "/front/offline/pay", payFrom("POS01", "1")), payFrom("POS01", "1")); a.Errcode != 0 {
		t.Errorf("pay after the open_card limit: errcode %d", a.Errcode)
	}
	other := strings.Replace(open, "POS01", "POS02", 1)
	b.set(&mapfrontv1.OpenCardResponse{}, nil)
	if a := readAnswer(t, post(h, "/front/offline/open_card", other), other); a.Errcode != 0 {
		t.Errorf("open_card of another terminal: errcode %d", a.Errcode)
	}
	clk.set(clk.Now().Add(30 * time.Second)) // one token back
	b.set(&mapfrontv1.OpenCardResponse{}, nil)
	if a := readAnswer(t, post(h, "/front/offline/open_card", open), open); a.Errcode != 0 {
		t.Errorf("open_card after the refill: errcode %d", a.Errcode)
	}
	if ref.get(RefusedOpenCardRate) != 2 {
		t.Errorf("open_card refusals reported %d, want 2", ref.get(RefusedOpenCardRate))
	}
}

// TestSourceRateLimit: one source address over its limit gets 10018 (the
// body echoed) before anything is decoded or sent.
func TestSourceRateLimit(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	var ref refusals
	h, b := newGateway(t, Options{Limits: Limits{Source: Limit{N: 3, Per: time.Second}}, Now: clk.Now, Refused: ref.add})
	b.set(&mapfrontv1.DownloadProductResponse{}, nil)
	body := readExample(t, "download_product")
	send := func(remote string) answer {
		req, _ := http.NewRequest(http.MethodPost, "/front/offline/download_product", strings.NewReader(body))
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return readAnswer(t, rec, body)
	}
	for i := range 3 {
		if a := send("10.0.0.1:" + strconv.Itoa(1000+i)); a.Errcode != 0 {
			t.Fatalf("request %d: errcode %d", i+1, a.Errcode)
		}
	}
	_, before := b.last()
	if a := send("10.0.0.1:4000"); a.Errcode != codeBusy {
		t.Errorf("4th request from the same host: errcode %d, want 10018", a.Errcode)
	}
	if _, after := b.last(); after != before {
		t.Error("a refused request reached the server")
	}
	if a := send("10.0.0.2:4000"); a.Errcode != 0 {
		t.Errorf("another host: errcode %d", a.Errcode)
	}
	if ref.get(RefusedSourceRate) != 1 {
		t.Errorf("source refusals reported %d", ref.get(RefusedSourceRate))
	}
}

// TestBucketsBounded: distinct keys cannot grow the limiter beyond
// maxBuckets, a full set still admits a key that is within its own limit,
// and full (idle) buckets are forgotten first.
func TestBucketsBounded(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	b := newBuckets(Limit{N: 1, Per: time.Second})
	for i := range maxBuckets {
		if !b.allow("k"+strconv.Itoa(i), now) {
			t.Fatalf("key %d refused", i)
		}
	}
	if !b.allow("one more", now) {
		t.Error("a new key refused with the set full")
	}
	if len(b.m) != maxBuckets || b.lru.Len() != maxBuckets {
		t.Errorf("%d buckets (%d in order of use), want the cap %d", len(b.m), b.lru.Len(), maxBuckets)
	}
	if _, ok := b.m["k0"]; ok {
		t.Error("the least recently used bucket was not the one forgotten")
	}
	if b.allow("k1", now) {
		t.Error("a spent bucket admitted again at once")
	}
	if !b.allow("another", now.Add(time.Second)) {
		t.Error("new key refused after the idle buckets refilled")
	}
	// Every bucket but k1's (used last at now) and another's was full
	// again, and forgotten; k1's too, once it refilled.
	if len(b.m) != 1 || b.lru.Len() != 1 {
		t.Errorf("%d buckets kept after the sweep, want 1", len(b.m))
	}
	if off := newBuckets(Limit{}); !off.allow("x", now) || len(off.m) != 0 {
		t.Error("the zero Limit limits or remembers")
	}
}

// TestTerminalFlood: a flood of made-up terminal ids from one source, far
// beyond maxBuckets, neither locks a real terminal out (it is admitted up to
// its own limit, and a new one gets through), nor lets the real terminal
// exceed its limit by pushing its bucket out, nor grows the set past the cap.
// The limited client is the one NewHandler uses, in front of an in-process
// backend that approves everything.
func TestTerminalFlood(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var refused []string
	c := &limitedClient{
		next:     okClient{},
		terminal: newBuckets(DefaultLimits().Terminal),
		openCard: newBuckets(DefaultLimits().OpenCard),
		now:      func() time.Time { return now },
		refused:  func(reason string) { refused = append(refused, reason) },
	}
	ctx := context.Background()
	pay := func(terminal string) error {
		_, err := c.Pay(ctx, &mapfrontv1.PayRequest{Order: &mapfrontv1.PayOrderInput{TerminalId: terminal}})
		return err
	}
	limit := DefaultLimits().Terminal.N
	real := 0 // the real terminal's requests admitted
	for i := range 3 * maxBuckets {
		// Every junk id is new and within its own limit: admitted too.
		if err := pay(fmt.Sprintf("junk%07d", i)); err != nil {
			t.Fatalf("junk key %d: %v", i, err)
		}
		if len(c.terminal.m) > maxBuckets {
			t.Fatalf("%d buckets after %d keys, over the cap %d", len(c.terminal.m), i+1, maxBuckets)
		}
		// The real terminal pays every 10,000 junk requests: within its
		// limit it is admitted, over it refused, the set full or not.
		if i%10_000 == 0 {
			err := pay("ZJ000001")
			switch {
			case real < limit && err != nil:
				t.Fatalf("real terminal's request %d refused in the flood: %v", real+1, err)
			case real >= limit && err == nil:
				t.Fatalf("real terminal admitted %d times in one instant, limit %d", real+1, limit)
			}
			if err == nil {
				real++
			}
		}
	}
	if real != limit {
		t.Errorf("real terminal admitted %d times, want its limit %d", real, limit)
	}
	if len(c.terminal.m) != maxBuckets {
		t.Errorf("%d buckets, want the cap %d", len(c.terminal.m), maxBuckets)
	}
	if err := pay("POS01"); err != nil {
		t.Errorf("a real terminal first seen with the set full of junk: %v", err)
	}
	for _, r := range refused {
		if r != RefusedTerminalRate {
			t.Errorf("refusal %q", r)
		}
	}
	if len(refused) != 3*maxBuckets/10_000-limit {
		t.Errorf("%d refusals, want only the real terminal's over its limit (%d)", len(refused), 3*maxBuckets/10_000-limit)
	}
}

func TestLimitText(t *testing.T) {
	for in, want := range map[string]string{"20/10s": "20/10s", "10/m": "10/1m", "10/1m": "10/1m", "3/2h": "3/2h",
		"5/90s": "5/1m30s", "1/500ms": "1/500ms", "off": "off", "0": "off"} {
		var l Limit
		if err := l.UnmarshalText([]byte(in)); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if l.String() != want {
			t.Errorf("%s reads as %s, want %s", in, l, want)
		}
	}
}

// TestTLSHandshakeBounded: a client that connects to the HTTPS port and
// never speaks is dropped once the header timeout passes; the handshake,
// which runs inside the first read, holds no connection open forever.
func TestTLSHandshakeBounded(t *testing.T) {
	p := newPKI(t)
	cfg := DefaultEdgeConfig()
	cfg.CertFile, cfg.KeyFile = p.serverCert, p.serverKey
	ln, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(cfg, http.NotFoundHandler(), ServerLimits{ReadHeaderTimeout: 200 * time.Millisecond}, nil, nil)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("silent client still connected after 5 s")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("dropped after %v, want about the 200 ms header timeout", d)
	}
}
