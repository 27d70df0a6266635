// Package mtls is the mutual TLS of mapfront's gRPC links (SPEC section 7):
// TLS 1.3 only, the server requires a client certificate signed by the
// configured CA for everything but the health service, and each side reads
// its certificate, key and CA from files. Certificates and keys are re-read
// when their files change, so a renewed certificate is used from the next
// handshake on without a restart.
//
// The identity of a caller is its certificate's URI SAN
// spiffe://mapfront/<name>, or, in a certificate without one, its subject
// CN (Identity). Plaintext is only for development: MAPFRONT_INSECURE_DEV_PLAINTEXT=1
// and a loopback address, both on the server and on the client.
package mtls

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Environment variables of the gRPC link's TLS files; every program that
// serves or dials gRPC reads the same three names (and the flags of Register).
const (
	EnvCAFile   = "MAPFRONT_GRPC_CA_FILE"
	EnvCertFile = "MAPFRONT_GRPC_CERT_FILE"
	EnvKeyFile  = "MAPFRONT_GRPC_KEY_FILE"
	// EnvInsecureDevPlaintext set to 1 allows plaintext gRPC on a loopback
	// address, for development only.
	EnvInsecureDevPlaintext = "MAPFRONT_INSECURE_DEV_PLAINTEXT"
)

// Files names the PEM files of one end of a mutual-TLS link.
type Files struct {
	CA   string // the CA certificate(s) that sign the other end's certificate
	Cert string // this end's certificate (chain), leaf first
	Key  string // this end's private key
}

// FilesFromEnv reads Files from the three MAPFRONT_GRPC_*_FILE variables.
func FilesFromEnv(getenv func(string) string) Files {
	return Files{CA: getenv(EnvCAFile), Cert: getenv(EnvCertFile), Key: getenv(EnvKeyFile)}
}

// Register adds -grpc-ca-file, -grpc-cert-file and -grpc-key-file to fs,
// with f's values (usually FilesFromEnv) as defaults.
func (f *Files) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.CA, "grpc-ca-file", f.CA, "PEM file of the CA that signs the gRPC peers' certificates ($"+EnvCAFile+")")
	fs.StringVar(&f.Cert, "grpc-cert-file", f.Cert, "PEM file of this program's gRPC certificate ($"+EnvCertFile+")")
	fs.StringVar(&f.Key, "grpc-key-file", f.Key, "PEM file of this program's gRPC private key ($"+EnvKeyFile+")")
}

// Check reports which of the three files is not named.
func (f Files) Check() error {
	var missing []string
	for _, v := range []struct{ flag, env, val string }{
		{"grpc-ca-file", EnvCAFile, f.CA}, {"grpc-cert-file", EnvCertFile, f.Cert}, {"grpc-key-file", EnvKeyFile, f.Key},
	} {
		if v.val == "" {
			missing = append(missing, "-"+v.flag+" ($"+v.env+")")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("gRPC mutual TLS needs %s (or %s=1 on a loopback address, for development only)",
			strings.Join(missing, ", "), EnvInsecureDevPlaintext)
	}
	return nil
}

// DevPlaintext reports whether the development plaintext flag is set.
func DevPlaintext(getenv func(string) string) bool { return getenv(EnvInsecureDevPlaintext) == "1" }

// IsLoopback reports whether addr (host:port) names only the loopback
// interface: an IP loopback address or "localhost". ":9090" and
// "0.0.0.0:9090" listen everywhere, so they are not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkPlaintext refuses plaintext anywhere but on loopback.
func checkPlaintext(addr string) error {
	if !IsLoopback(addr) {
		return fmt.Errorf("%s=1 is refused on %q: plaintext gRPC is allowed only on a loopback address (127.0.0.1, ::1, localhost)",
			EnvInsecureDevPlaintext, addr)
	}
	return nil
}

// ServerCredentials returns the gRPC server option for listening on addr:
// mutual TLS with f, or, when devPlaintext, plaintext (only on loopback).
// Errors: unreadable or invalid files, a missing file name, plaintext
// asked for a non-loopback address.
func ServerCredentials(addr string, f Files, devPlaintext bool) (grpc.ServerOption, error) {
	if devPlaintext {
		if err := checkPlaintext(addr); err != nil {
			return nil, err
		}
		return grpc.Creds(insecure.NewCredentials()), nil
	}
	cfg, err := ServerConfig(f)
	if err != nil {
		return nil, err
	}
	return grpc.Creds(credentials.NewTLS(cfg)), nil
}

// DialCredentials returns the gRPC dial option for a client of addr: mutual
// TLS with f, or, when devPlaintext, plaintext (only to a loopback address).
// Errors as ServerCredentials.
func DialCredentials(addr string, f Files, devPlaintext bool) (grpc.DialOption, error) {
	if devPlaintext {
		if err := checkPlaintext(addr); err != nil {
			return nil, err
		}
		return grpc.WithTransportCredentials(insecure.NewCredentials()), nil
	}
	cfg, err := ClientConfig(f)
	if err != nil {
		return nil, err
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg)), nil
}

// ServerConfig is the server side: TLS 1.3, its certificate from f, client
// certificates verified against f.CA. A client may connect without a
// certificate, so that the gRPC health service can answer probes that have
// none; every other method refuses such a caller (server/internal/authz).
// A client certificate that does not verify fails the handshake.
// Files are re-read on the next handshake after they change.
func ServerConfig(f Files) (*tls.Config, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	r := &reloader{files: f}
	if _, err := r.current(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			s, err := r.current()
			if err != nil {
				return nil, err
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{s.cert},
				ClientCAs:    s.pool,
				ClientAuth:   tls.VerifyClientCertIfGiven,
			}, nil
		},
	}, nil
}

// ClientConfig is the client side: TLS 1.3, the server verified against
// f.CA under the name of the address dialled (gRPC sets ServerName from
// it), and this client's certificate from f, re-read when its files change.
// The CA is read once: changing it needs a restart of the client.
func ClientConfig(f Files) (*tls.Config, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	r := &reloader{files: f}
	s, err := r.current()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    s.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			s, err := r.current()
			if err != nil {
				return nil, err
			}
			return &s.cert, nil
		},
	}, nil
}

// reloader holds the parsed files and re-reads them when one of them has
// changed (size or modification time). A change that does not parse (a
// certificate written before its key, say) keeps the last good pair and is
// retried on the next handshake.
type reloader struct {
	files Files
	mu    sync.Mutex
	stamp string
	state *loaded
}

type loaded struct {
	cert tls.Certificate
	pool *x509.CertPool
}

// current returns the loaded files, re-reading them if they changed.
func (r *reloader) current() (*loaded, error) {
	stamp, err := r.stampNow()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && stamp == r.stamp && r.state != nil {
		return r.state, nil
	}
	s, lerr := load(r.files)
	if lerr != nil {
		if r.state != nil {
			return r.state, nil
		}
		return nil, lerr
	}
	r.state, r.stamp = s, stamp
	return s, nil
}

func (r *reloader) stampNow() (string, error) {
	var b strings.Builder
	for _, p := range []string{r.files.CA, r.files.Cert, r.files.Key} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

func load(f Files) (*loaded, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("gRPC certificate %s / key %s: %w", f.Cert, f.Key, err)
	}
	ca, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("gRPC CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) || !bytes.Contains(ca, []byte("CERTIFICATE")) {
		return nil, fmt.Errorf("gRPC CA %s: no PEM certificate in it", f.CA)
	}
	return &loaded{cert: cert, pool: pool}, nil
}

// Identity is the mapfront identity a certificate names: the path of its
// URI SAN spiffe://mapfront/<name>, else (no such URI SAN) its subject CN.
// A URI SAN of another trust domain is not read as a mapfront identity. A
// URI SAN that claims the mapfront trust domain must be exactly
// spiffe://mapfront/<name>, name one segment of letters, digits, '.', '-'
// and '_' (a SPIFFE ID's path characters): no user, port, query,
// fragment, percent-escape or empty name, and a certificate may name only
// one mapfront identity; otherwise it names none (an error), rather than a
// name read from a malformed ID or one of two.
// Errors: the certificate names none, or a malformed or second one.
func Identity(cert *x509.Certificate) (string, error) {
	name := ""
	for _, u := range cert.URIs {
		if !strings.EqualFold(u.Scheme, "spiffe") {
			continue
		}
		if u.Host == "" { // spiffe:mapfront/x, spiffe:///mapfront/x: no trust domain at all
			return "", fmt.Errorf("certificate URI SAN %q is not a SPIFFE ID", u.String())
		}
		if !strings.EqualFold(u.Hostname(), trustDomain) {
			continue
		}
		n, ok := spiffeName(u)
		if !ok {
			return "", fmt.Errorf("certificate URI SAN %q is not spiffe://%s/<identity>", u.String(), trustDomain)
		}
		if name != "" && n != name {
			return "", fmt.Errorf("certificate names two mapfront identities (%s and %s)", name, n)
		}
		name = n
	}
	if name != "" {
		return name, nil
	}
	if cert.Subject.CommonName != "" {
		return cert.Subject.CommonName, nil
	}
	return "", errors.New("certificate names no identity (no spiffe://mapfront/ URI SAN, no subject CN)")
}

// spiffeName is the name of u when u is exactly spiffe://mapfront/<name>
// (written as such: url.URL.String gives back the same text).
func spiffeName(u *url.URL) (string, bool) {
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || strings.Trim(name, identityChars) != "" ||
		name == "." || name == ".." {
		return "", false
	}
	return name, u.String() == "spiffe://"+trustDomain+"/"+name
}

// trustDomain is the SPIFFE trust domain of mapfront identities (the same
// as pki.TrustDomain, repeated to keep this package free of the generator).
const trustDomain = "mapfront"

// identityChars are the characters of an identity, a SPIFFE ID path
// segment's (pki.IdentityChars, repeated for the same reason).
const identityChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"
