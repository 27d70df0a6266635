package mtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"mapfront/internal/mtls"
	"mapfront/internal/mtls/mtlstest"
	"mapfront/internal/pki"
)

func TestIdentity(t *testing.T) {
	for _, c := range []struct {
		name string
		cert x509.Certificate
		want string
	}{
		{"spiffe first", x509.Certificate{Subject: pkix.Name{CommonName: "cn"}, URIs: []*url.URL{pki.SPIFFEID("gateway")}}, "gateway"},
		{"cn fallback", x509.Certificate{Subject: pkix.Name{CommonName: "ops1"}}, "ops1"},
		{"other trust domain is not read", x509.Certificate{Subject: pkix.Name{CommonName: "ops1"},
			URIs: []*url.URL{{Scheme: "spiffe", Host: "elsewhere", Path: "/admin"}}}, "ops1"},
	} {
		got, err := mtls.Identity(&c.cert)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if _, err := mtls.Identity(&x509.Certificate{}); err == nil {
		t.Error("a certificate without SAN or CN gave an identity")
	}
	// A URI SAN that claims the mapfront trust domain but is not exactly
	// spiffe://mapfront/<name>, or a second mapfront identity, makes the
	// certificate name none: never the CN instead, nor a name read out of
	// a malformed ID, nor the first of two.
	for _, raw := range [][]string{
		{"spiffe://mapfront/"},
		{"spiffe://evil@mapfront/admin"},
		{"spiffe://mapfront/admin?x=1"},
		{"spiffe://mapfront/admin#f"},
		{"spiffe://mapfront/%61dmin"},
		{"spiffe://mapfront:443/admin"},
		{"spiffe://MAPFRONT/admin"},
		{"spiffe://mapfront/ns/admin"},
		{"spiffe://mapfront/.."},
		{"spiffe://mapfront/auditor", "spiffe://mapfront/admin"},
		{"spiffe:mapfront/admin"},
		{"spiffe:///mapfront/admin"},
	} {
		c := x509.Certificate{Subject: pkix.Name{CommonName: "admin"}}
		for _, r := range raw {
			u, err := url.Parse(r)
			if err != nil {
				t.Fatal(err)
			}
			c.URIs = append(c.URIs, u)
		}
		if id, err := mtls.Identity(&c); err == nil {
			t.Errorf("%v: identity %q, want none", raw, id)
		}
	}
	// The same ID twice is one identity.
	twice := x509.Certificate{URIs: []*url.URL{pki.SPIFFEID("ops1"), pki.SPIFFEID("ops1")}}
	if id, err := mtls.Identity(&twice); err != nil || id != "ops1" {
		t.Errorf("the same ID twice: %q, %v", id, err)
	}
}

func TestPlaintextOnlyOnLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9090": true, "[::1]:9090": true, "localhost:9090": true, "127.3.2.1:1": true,
		":9090": false, "0.0.0.0:9090": false, "10.0.0.5:9090": false, "example.com:9090": false, "127.0.0.1": false,
	} {
		if got := mtls.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
		_, serr := mtls.ServerCredentials(addr, mtls.Files{}, true)
		_, derr := mtls.DialCredentials(addr, mtls.Files{}, true)
		if (serr == nil) != want || (derr == nil) != want {
			t.Errorf("%s: plaintext server %v, client %v", addr, serr, derr)
		}
	}
	// Without the flag, the files are required.
	if _, err := mtls.ServerCredentials("127.0.0.1:9090", mtls.Files{}, false); err == nil {
		t.Error("server without TLS files accepted")
	}
}

// TestHandshakeAndReload: a client with a certificate of the CA connects
// with TLS 1.3; one from another CA fails the handshake; a certificate
// replaced on disk is used from the next handshake on.
func TestHandshakeAndReload(t *testing.T) {
	p := mtlstest.New(t)
	scfg, err := mtls.ServerConfig(p.Server())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peers := make(chan string, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := tc.Handshake(); err != nil {
				peers <- "error"
			} else if st := tc.ConnectionState(); len(st.VerifiedChains) == 0 {
				peers <- "none"
			} else {
				id, _ := mtls.Identity(st.VerifiedChains[0][0])
				peers <- id
			}
			c.Close()
		}
	}()
	dial := func(f mtls.Files) (uint16, error) {
		cfg, err := mtls.ClientConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerName = "localhost"
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		// TLS 1.3 client certificates are checked after the client's
		// handshake ends: read to see the server's verdict.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, rerr := c.Read(make([]byte, 1))
		_ = rerr
		return c.ConnectionState().Version, nil
	}
	alice := p.Client("alice")
	if v, err := dial(alice); err != nil || v != tls.VersionTLS13 {
		t.Fatalf("alice: version %x, %v", v, err)
	}
	if got := <-peers; got != "alice" {
		t.Fatalf("server saw %q, want alice", got)
	}

	other := mtlstest.New(t)
	stranger := other.Client("admin")
	stranger.CA = p.CAFile() // trusts our server, but its certificate is the other CA's
	_, _ = dial(stranger)
	if got := <-peers; got != "error" {
		t.Fatalf("certificate of another CA: server saw %q, want a failed handshake", got)
	}

	// Replace alice's files by bob's: the same client config presents bob.
	bob := p.Client("bob")
	cfg, err := mtls.ClientConfig(alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range [][2]string{{bob.Cert, alice.Cert}, {bob.Key, alice.Key}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		future := time.Now().Add(time.Minute)
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(f[1], future, future)
	}
	cfg.ServerName = "localhost"
	c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Read(make([]byte, 1))
	c.Close()
	if got := <-peers; got != "bob" {
		t.Fatalf("after the files changed the client presented %q, want bob", got)
	}
}
