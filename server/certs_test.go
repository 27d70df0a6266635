package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"mapfront/internal/mtls"
	"mapfront/server/internal/authz"
)

// TestCerts: `server certs` makes a CA, a server certificate for loopback,
// one client certificate per demo identity naming it, and a roles file
// the server accepts; a second run changes nothing.
func TestCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := makeCerts([]string{"-dir", dir}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(dir, "admin.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := makeCerts([]string{"-dir", dir}); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "admin.crt")); string(after) != string(before) {
		t.Error("a second run replaced admin.crt")
	}
	roots := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if !roots.AppendCertsFromPEM(ca) {
		t.Fatal("ca.crt holds no certificate")
	}
	read := func(name string) *x509.Certificate {
		b, err := os.ReadFile(filepath.Join(dir, name+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	srv := read("server")
	if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("server certificate for 127.0.0.1: %v", err)
	}
	if err := srv.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	roles, err := authz.LoadRoles(filepath.Join(dir, "roles"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range demoIdentities {
		c := read(id.name)
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: %v", id.name, err)
		}
		if got, err := mtls.Identity(c); err != nil || got != id.name {
			t.Errorf("%s: identity %q, %v", id.name, got, err)
		}
		if len(roles[id.name]) == 0 {
			t.Errorf("%s has no role in the roles file", id.name)
		}
		if fi, err := os.Stat(filepath.Join(dir, id.name+".key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.key: %v %v, want mode 0600", id.name, fi.Mode(), err)
		}
	}
	if got := roles["gateway"]; len(got) != 1 || got[0] != authz.POSP {
		t.Errorf("gateway roles %v, want only posp", got)
	}
}
