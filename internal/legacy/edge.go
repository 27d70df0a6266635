package legacy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"mapfront/internal/mtls"
)

// EdgeConfig is the POSP-facing listener (SPEC section 7, "the POSP edge"),
// the same for the gateway program and the server's single-binary mode:
// HTTPS when a certificate is given, an optional client certificate from the
// POSP's CA, a source allowlist, and the rate limits of the handler.
type EdgeConfig struct {
	// CertFile and KeyFile are PEM files of the server certificate (chain)
	// and its key. Both or neither: without them the listener speaks plain
	// HTTP (loopback development, or TLS ended in front of it).
	CertFile, KeyFile string
	// ClientCAFile, when set, is a PEM bundle of the CAs that sign the
	// POSP's client certificates: a client without a certificate they
	// verify is refused in the TLS handshake. Needs CertFile.
	ClientCAFile string
	// MinTLS is the lowest TLS version accepted: TLS 1.2 by default (older
	// POSP stacks; zero means 1.2), 1.3 where the partner supports it.
	MinTLS TLSVersion
	// Allow lists the source networks admitted; any other peer gets HTTP
	// 403 with the envelope (errcode 10002). Empty admits loopback only, so
	// that a gateway deployed without this setting is reachable by nobody
	// else: the POSP's networks must be named.
	Allow Prefixes
	// Limits are the request rate limits (see Limits).
	Limits Limits
	// AccessLogEvery thins the access log's successful answers (HTTP 200,
	// errcode 0): one in AccessLogEvery is logged (0 or 1: every one). Every
	// other answer (refusals, declines, errors) is always logged; at log
	// level debug every success is too. Default DefaultAccessLogEvery.
	AccessLogEvery int
}

// DefaultAccessLogEvery is the default of EdgeConfig.AccessLogEvery: at the
// pay rates the edge serves, a line per approved pay was a write(2) and a
// JSON encoding per request (about 5 % of the single binary's CPU per pay,
// BENCHMARKS.md), while the pays themselves are in the database.
const DefaultAccessLogEvery = 100

// DefaultEdgeConfig is plain HTTP, loopback only, TLS 1.2 minimum once a
// certificate is given, and DefaultLimits.
func DefaultEdgeConfig() EdgeConfig {
	return EdgeConfig{MinTLS: tls.VersionTLS12, Limits: DefaultLimits(), AccessLogEvery: DefaultAccessLogEvery}
}

// EdgeFlag names one setting of EdgeConfig as a flag and as the environment
// variable that stands in for it when the flag is not given.
type EdgeFlag struct{ Flag, Env string }

// RegisterFlags defines c's settings on fs, each flag named flagPrefix+name
// and its variable envPrefix+NAME (for example "" and "MAPFRONT_GATEWAY_"
// give -tls-cert-file and MAPFRONT_GATEWAY_TLS_CERT_FILE). It returns the
// pairs so that the caller applies the environment its own way.
func (c *EdgeConfig) RegisterFlags(fs *flag.FlagSet, flagPrefix, envPrefix string) []EdgeFlag {
	var out []EdgeFlag
	def := func(name string, define func(name string)) {
		define(flagPrefix + name)
		out = append(out, EdgeFlag{Flag: flagPrefix + name, Env: envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))})
	}
	def("tls-cert-file", func(n string) {
		fs.StringVar(&c.CertFile, n, c.CertFile, "PEM certificate (chain) for HTTPS to the POSP; empty: plain HTTP")
	})
	def("tls-key-file", func(n string) { fs.StringVar(&c.KeyFile, n, c.KeyFile, "PEM private key of the certificate") })
	def("tls-client-ca-file", func(n string) {
		fs.StringVar(&c.ClientCAFile, n, c.ClientCAFile, "PEM CA bundle: require a client certificate signed by one of them")
	})
	def("tls-min-version", func(n string) { fs.TextVar(&c.MinTLS, n, c.MinTLS, "lowest TLS version accepted: 1.2 or 1.3") })
	def("allow", func(n string) {
		fs.Var(&c.Allow, n, "source networks admitted, comma-separated CIDRs (e.g. 10.8.0.0/16); empty: loopback only")
	})
	def("terminal-limit", func(n string) {
		fs.TextVar(&c.Limits.Terminal, n, c.Limits.Terminal, "requests per terminal, N/period (e.g. 20/10s); off: no limit")
	})
	def("open-card-limit", func(n string) {
		fs.TextVar(&c.Limits.OpenCard, n, c.Limits.OpenCard, "open_card requests per terminal, N/period; off: no limit")
	})
	def("source-limit", func(n string) {
		fs.TextVar(&c.Limits.Source, n, c.Limits.Source, "requests per source address, N/period; off: no limit")
	})
	def("access-log-every", func(n string) {
		fs.IntVar(&c.AccessLogEvery, n, c.AccessLogEvery, "log one in N successful answers (1: all); refusals, declines and errors are all logged")
	})
	return out
}

// Validate refuses settings that cannot make a listener.
func (c EdgeConfig) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("tls-cert-file and tls-key-file: give both or neither"))
	}
	if c.ClientCAFile != "" && c.CertFile == "" {
		errs = append(errs, errors.New("tls-client-ca-file needs tls-cert-file: client certificates are a TLS feature"))
	}
	if c.MinTLS != 0 && c.MinTLS != tls.VersionTLS12 && c.MinTLS != tls.VersionTLS13 {
		errs = append(errs, fmt.Errorf("tls-min-version %v: want 1.2 or 1.3", c.MinTLS))
	}
	if c.AccessLogEvery < 0 {
		errs = append(errs, fmt.Errorf("access-log-every %d: want 1 or more (1: every answer; 0 counts as 1)", c.AccessLogEvery))
	}
	return errors.Join(errs...)
}

// CheckAddr refuses plain HTTP on an address that is not loopback: the
// POSP edge is HTTPS (SPEC section 7), and plain HTTP is for a developer's
// own machine (`make run`). Errors: plain HTTP on a non-loopback addr.
func (c EdgeConfig) CheckAddr(flagPrefix, addr string) error {
	if c.CertFile == "" && !mtls.IsLoopback(addr) {
		return fmt.Errorf("%saddr %s: plain HTTP is served only on a loopback address; give -%stls-cert-file and -%stls-key-file (the POSP edge is HTTPS, SPEC section 7)",
			flagPrefix, addr, flagPrefix, flagPrefix)
	}
	return nil
}

// tlsConfig loads the key material; nil without a certificate.
func (c EdgeConfig) tlsConfig() (*tls.Config, error) {
	if c.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   max(uint16(c.MinTLS), tls.VersionTLS12),
		// HTTP/1.1 only: the POSP's clients speak it, and net/http's
		// HTTP/2 would bypass the refusal rewriting of edgeConn.
		NextProtos: []string{"http/1.1"},
	}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS client CA %s: no PEM certificate in it", c.ClientCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Listen opens the POSP-facing listener on addr: TLS when c has a
// certificate, and every connection wrapped so that net/http's own refusals
// (see rewriteRefusal) are answered with the envelope too. Serve it with a
// server from NewServer.
func Listen(addr string, c EdgeConfig) (net.Listener, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	tcfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &edgeListener{Listener: ln, tls: tcfg}, nil
}

type edgeListener struct {
	net.Listener
	tls *tls.Config
}

func (l *edgeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.tls == nil {
		return &edgeConn{Conn: c}, nil
	}
	// The handshake happens in the first Read, under the deadline that
	// net/http sets for reading the request headers.
	return &edgeConn{Conn: tls.Server(c, l.tls), tls: true}, nil
}

// edgeConn hides the *tls.Conn from net/http on purpose: net/http writes its
// refusals straight to the connection it knows, so that connection must be
// this wrapper for the refusals to be rewritten. (A side effect: the
// request's TLS field is nil; nothing here reads it.)
type edgeConn struct {
	net.Conn
	tls bool
}

func (c *edgeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.tls {
		// Plain HTTP sent to the HTTPS port: answer it in plain HTTP with
		// the envelope, as net/http would (in plain text) for a *tls.Conn.
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader[:]) {
			_, _ = re.Conn.Write(refusalResponse(http.StatusBadRequest, msgUseHTTPS))
		}
	}
	return n, err
}

func looksLikeHTTP(h []byte) bool {
	for _, m := range []string{"GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE", "TRACE"} {
		if string(h) == m {
			return true
		}
	}
	return false
}

func (c *edgeConn) Write(p []byte) (int, error) {
	if r := rewriteRefusal(p); r != nil {
		if _, err := c.Conn.Write(r); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// netHTTPErrorHeaders follow the status line of every refusal net/http
// writes before a handler runs (net/http server.go, conn.serve). No response
// of a handler starts this way: net/http writes a handler's headers sorted,
// Connection before Content-Type, and adds Date.
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// Messages of the refusals answered at the connection.
const (
	msgHeaderTooLarge = "请求头过长"
	msgBadHTTP        = "HTTP请求格式错误"
	msgBadEncoding    = "不支持的传输编码"
	msgBadVersion     = "不支持的HTTP版本"
	msgBadExpect      = "不支持的Expect请求头"
	msgUseHTTPS       = "请使用HTTPS"
)

// rewriteRefusal returns the envelope version of a response net/http writes
// by itself, or nil for any other write. Those responses are: 431 (header
// block over MaxHeaderBytes), 501 (unsupported Transfer-Encoding), 505
// (unsupported HTTP version), 400 (malformed request line, header,
// Content-Length, Host...) and 417 (an Expect other than 100-continue, the
// one net/http answers through the response writer). Each is written in one
// Write and followed by closing the connection, so replacing the bytes
// whole is safe. 501 and 505 become 400: the fault is the client's, and
// the edge answers no client mistake with a 5xx.
func rewriteRefusal(p []byte) []byte {
	if len(p) < 12 || !bytes.HasPrefix(p, []byte("HTTP/1.")) || p[8] != ' ' {
		return nil
	}
	code, err := strconv.Atoi(string(p[9:12]))
	if err != nil {
		return nil
	}
	eol := bytes.Index(p, []byte("\r\n"))
	own := eol > 0 && bytes.HasPrefix(p[eol:], []byte(netHTTPErrorHeaders)) && code >= 400
	switch {
	case code == http.StatusExpectationFailed:
		return refusalResponse(http.StatusExpectationFailed, msgBadExpect)
	case !own:
		return nil
	case code == http.StatusRequestHeaderFieldsTooLarge:
		return refusalResponse(code, msgHeaderTooLarge)
	case code == http.StatusNotImplemented:
		return refusalResponse(http.StatusBadRequest, msgBadEncoding)
	case code == http.StatusHTTPVersionNotSupported:
		return refusalResponse(http.StatusBadRequest, msgBadVersion)
	}
	return refusalResponse(http.StatusBadRequest, msgBadHTTP)
}

// refusalResponse is a whole HTTP response carrying the envelope with
// errcode 10001, closing the connection.
func refusalResponse(status int, errmsg string) []byte {
	body := (&envelope{errcode: codeMalformed, errmsg: errmsg}).appendJSON(nil)
	head := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		status, http.StatusText(status), contentType, len(body))
	return append([]byte(head), body...)
}

// ServerLimits bound the HTTP server of the edge (SPEC section 7).
type ServerLimits struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
}

// NewServer returns the http.Server for a listener from Listen: h behind the
// source allowlist, net/http's "OPTIONS *" answer turned off so that h
// answers it, and net/http's own log lines sent to log. refused, when set,
// is told of each request refused for its source ("source").
func NewServer(c EdgeConfig, h http.Handler, lim ServerLimits, log *slog.Logger, refused func(reason string)) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:                      admit(c.Allow, h, log, refused),
		ReadHeaderTimeout:            lim.ReadHeaderTimeout,
		ReadTimeout:                  lim.ReadTimeout,
		WriteTimeout:                 lim.WriteTimeout,
		IdleTimeout:                  lim.IdleTimeout,
		MaxHeaderBytes:               lim.MaxHeaderBytes,
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Refusal reasons, the label of the refusal metrics.
const (
	RefusedSource       = "source"
	RefusedSourceRate   = "source_rate"
	RefusedTerminalRate = "terminal_rate"
	RefusedOpenCardRate = "open_card_rate"
)

const msgSourceRefused = "来源地址未授权"

// admit answers HTTP 403 with the envelope (errcode 10002, SPEC section 7)
// to a peer outside allow, before anything else is read or decided. The
// peer is the TCP peer: no header can claim another address.
func admit(allow Prefixes, next http.Handler, log *slog.Logger, refused func(string)) http.Handler {
	if len(allow) == 0 {
		allow = loopback
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && allow.contains(ap.Addr()) {
			next.ServeHTTP(w, r)
			return
		}
		log.Warn("legacy request refused: source not allowed", "remote", r.RemoteAddr, "path", PathName(r.URL.Path))
		if refused != nil {
			refused(RefusedSource)
		}
		WriteEnvelope(w, http.StatusForbidden, codeTerminal, msgSourceRefused)
	})
}

// WriteEnvelope writes an answer without payload and without a request
// echo: for answers given before a body was read (the allowlist, the
// operational endpoints).
func WriteEnvelope(w http.ResponseWriter, status int, errcode int32, errmsg string) {
	body := (&envelope{errcode: errcode, errmsg: errmsg}).appendJSON(nil)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Prefixes is a list of networks, written as comma-separated CIDRs (a bare
// address is its own /32 or /128). It is a flag.Value.
type Prefixes []netip.Prefix

var loopback = Prefixes{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func (p Prefixes) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range p {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

func (p *Prefixes) String() string {
	if p == nil {
		return ""
	}
	s := make([]string, len(*p))
	for i, n := range *p {
		s[i] = n.String()
	}
	return strings.Join(s, ",")
}

// Set replaces the list with the comma-separated networks of v.
func (p *Prefixes) Set(v string) error {
	var out Prefixes
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return fmt.Errorf("%q is not a CIDR network", f)
			}
			n = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, n.Masked())
	}
	*p = out
	return nil
}

// TLSVersion is a TLS protocol version written "1.2" or "1.3".
type TLSVersion uint16

func (v TLSVersion) MarshalText() ([]byte, error) {
	switch v {
	case tls.VersionTLS12:
		return []byte("1.2"), nil
	case tls.VersionTLS13:
		return []byte("1.3"), nil
	}
	return []byte(fmt.Sprintf("0x%04x", uint16(v))), nil
}

func (v *TLSVersion) UnmarshalText(b []byte) error {
	switch string(b) {
	case "1.2":
		*v = tls.VersionTLS12
	case "1.3":
		*v = tls.VersionTLS13
	default:
		return fmt.Errorf("TLS version %q: want 1.2 or 1.3", b)
	}
	return nil
}

func (v TLSVersion) String() string {
	b, _ := v.MarshalText()
	return string(b)
}
