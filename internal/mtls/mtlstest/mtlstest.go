// Package mtlstest gives tests a private PKI in t.TempDir(): a CA, a server
// certificate for 127.0.0.1 and localhost, and client certificates by
// identity, as the files the programs read (mtls.Files).
package mtlstest

import (
	"os"
	"sync"
	"testing"

	"mapfront/internal/mtls"
	"mapfront/internal/pki"
)

// ServerName is the identity of the server certificate.
const ServerName = "server"

// PKI is a test CA in a temporary directory.
type PKI struct {
	t   testing.TB
	dir string
	ca  *pki.CA
	mu  sync.Mutex
}

// New creates a CA and the server certificate in a new temporary directory.
func New(t testing.TB) *PKI {
	t.Helper()
	ca, err := pki.NewCA("mapfront test CA")
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{t: t, dir: t.TempDir(), ca: ca}
	if err := pki.WriteCACert(pki.CACertPath(p.dir), ca); err != nil {
		t.Fatal(err)
	}
	p.issue(pki.Leaf{Name: ServerName, Hosts: []string{"127.0.0.1", "::1", "localhost"}})
	return p
}

// Dir is the directory holding the files.
func (p *PKI) Dir() string { return p.dir }

// CAFile is the CA certificate's file.
func (p *PKI) CAFile() string { return pki.CACertPath(p.dir) }

// Server returns the server's files.
func (p *PKI) Server() mtls.Files { return p.files(ServerName) }

// Client returns the files of a client certificate for identity name
// (URI SAN spiffe://mapfront/<name>), creating it the first time.
func (p *PKI) Client(name string) mtls.Files {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := os.Stat(pki.CertPath(p.dir, name)); err == nil {
		return p.files(name)
	}
	p.issue(pki.Leaf{Name: name})
	return p.files(name)
}

// Env returns the MAPFRONT_GRPC_*_FILE variables for f.
func Env(f mtls.Files) map[string]string {
	return map[string]string{mtls.EnvCAFile: f.CA, mtls.EnvCertFile: f.Cert, mtls.EnvKeyFile: f.Key}
}

// Args returns the -grpc-*-file flags for f.
func Args(f mtls.Files) []string {
	return []string{"-grpc-ca-file", f.CA, "-grpc-cert-file", f.Cert, "-grpc-key-file", f.Key}
}

func (p *PKI) issue(l pki.Leaf) {
	p.t.Helper()
	is, err := p.ca.Issue(l)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := pki.WriteIssued(pki.CertPath(p.dir, l.Name), pki.KeyPath(p.dir, l.Name), is); err != nil {
		p.t.Fatal(err)
	}
}

func (p *PKI) files(name string) mtls.Files {
	return mtls.Files{CA: p.CAFile(), Cert: pki.CertPath(p.dir, name), Key: pki.KeyPath(p.dir, name)}
}
