// Package pki creates a small private PKI with Go's crypto/x509: a CA and
// the certificates it signs for mapfront's gRPC server and its clients
// (ECDSA P-256). The demo (`server certs`, `make run`) and the tests use
// it; a site with its own PKI does not need it at all (README, "Internal
// trust").
//
// A client certificate names its identity twice: as the URI SAN
// spiffe://mapfront/<name>, which is what the server reads, and as the
// subject CN, for people and for tools that only show the CN.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// TrustDomain is the host part of the SPIFFE-style URI SANs that name
// mapfront identities: spiffe://mapfront/<name>.
const TrustDomain = "mapfront"

// IdentityChars are the characters of an identity: a SPIFFE ID path
// segment's (mtls.Identity refuses any other).
const IdentityChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"

// SPIFFEID returns the URI SAN of identity name.
func SPIFFEID(name string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: TrustDomain, Path: "/" + name}
}

// CA is a certificate authority that can sign certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Validity of what this package creates: long enough for a demo or a test
// run, short enough that nobody mistakes the demo CA for a production one.
const (
	caValidity   = 5 * 365 * 24 * time.Hour
	leafValidity = 2 * 365 * 24 * time.Hour
)

// NewCA creates a self-signed CA named cn.
func NewCA(cn string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"mapfront"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Leaf is a certificate to issue. Name is the identity (URI SAN
// spiffe://mapfront/<Name> and subject CN). Hosts, when given, make it a
// server certificate for those DNS names and IP addresses; every leaf can
// also authenticate as a client.
type Leaf struct {
	Name  string
	Hosts []string
}

// Issued is a signed certificate and its private key.
type Issued struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Issue signs a certificate for l.
func (ca *CA) Issue(l Leaf) (*Issued, error) {
	if l.Name == "" {
		return nil, errors.New("pki: a certificate needs a name")
	}
	if strings.Trim(l.Name, IdentityChars) != "" || l.Name == "." || l.Name == ".." {
		return nil, fmt.Errorf("pki: identity %q: only letters, digits, '.', '-' and '_' make a SPIFFE ID's name", l.Name)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: l.Name, Organization: []string{"mapfront"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{SPIFFEID(l.Name)},
	}
	if len(l.Hosts) > 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		for _, h := range l.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, Key: key}, nil
}

// CACertPath is the CA certificate's file in a PKI directory.
func CACertPath(dir string) string { return filepath.Join(dir, "ca.crt") }

// CAKeyPath is the CA private key's file in a PKI directory.
func CAKeyPath(dir string) string { return filepath.Join(dir, "ca.key") }

// CertPath is the certificate file of identity name in a PKI directory.
func CertPath(dir, name string) string { return filepath.Join(dir, name+".crt") }

// KeyPath is the private key file of identity name in a PKI directory.
func KeyPath(dir, name string) string { return filepath.Join(dir, name+".key") }

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Ensure makes dir a PKI directory holding a CA and a certificate per leaf,
// creating only what is missing: an existing CA and existing certificates are
// kept, so that running it again changes nothing. It returns the names of
// the files it created. Private keys are written with mode 0600.
func Ensure(dir string, leaves []Leaf) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var created []string
	var ca *CA
	var err error
	if fileExists(CACertPath(dir)) || fileExists(CAKeyPath(dir)) {
		if ca, err = LoadCA(dir); err != nil {
			return nil, err
		}
	} else {
		if ca, err = NewCA("mapfront local CA"); err != nil {
			return nil, err
		}
		if err := writeFiles(CACertPath(dir), certPEM(ca.Cert), CAKeyPath(dir), ca.Key); err != nil {
			return nil, err
		}
		created = append(created, CACertPath(dir))
	}
	for _, l := range leaves {
		if fileExists(CertPath(dir, l.Name)) {
			continue
		}
		is, err := ca.Issue(l)
		if err != nil {
			return created, err
		}
		if err := writeFiles(CertPath(dir, l.Name), certPEM(is.Cert), KeyPath(dir, l.Name), is.Key); err != nil {
			return created, err
		}
		created = append(created, CertPath(dir, l.Name))
	}
	return created, nil
}

// LoadCA reads the CA of a PKI directory written by Ensure.
func LoadCA(dir string) (*CA, error) {
	certPEMBytes, err := os.ReadFile(CACertPath(dir))
	if err != nil {
		return nil, err
	}
	keyPEMBytes, err := os.ReadFile(CAKeyPath(dir))
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(certPEMBytes)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("pki: %s: no certificate", CACertPath(dir))
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", CACertPath(dir), err)
	}
	kb, _ := pem.Decode(keyPEMBytes)
	if kb == nil {
		return nil, fmt.Errorf("pki: %s: no private key", CAKeyPath(dir))
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", CAKeyPath(dir), err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: %s: not an ECDSA key", CAKeyPath(dir))
	}
	return &CA{Cert: cert, Key: key}, nil
}

// WriteIssued writes a certificate and its key as PEM files.
func WriteIssued(certPath, keyPath string, is *Issued) error {
	return writeFiles(certPath, certPEM(is.Cert), keyPath, is.Key)
}

// WriteCACert writes a CA's certificate (not its key) as a PEM file.
func WriteCACert(path string, ca *CA) error { return os.WriteFile(path, certPEM(ca.Cert), 0o644) }

// writeFiles writes the key first, so that a certificate on disk always has
// its key beside it.
func writeFiles(certPath string, cert []byte, keyPath string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certPath, cert, 0o644)
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
