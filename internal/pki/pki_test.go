package pki_test

import (
	"testing"

	"mapfront/internal/pki"
)

// A certificate is issued only for a name that mtls.Identity reads back:
// one SPIFFE path segment.
func TestIssueNames(t *testing.T) {
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "ops/1", "a b", "..", "admin?x", "管理员"} {
		if _, err := ca.Issue(pki.Leaf{Name: name}); err == nil {
			t.Errorf("issued a certificate for %q", name)
		}
	}
	for _, name := range []string{"gateway", "ops-1", "team.settlement_2"} {
		is, err := ca.Issue(pki.Leaf{Name: name})
		if err != nil || len(is.Cert.URIs) != 1 || is.Cert.URIs[0].String() != "spiffe://mapfront/"+name {
			t.Errorf("%s: %v", name, err)
		}
	}
}
