package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"mapfront/internal/pki"
)

// demoIdentities are the certificates `server certs` makes for the demo and
// the roles its roles file gives them (SPEC section 7): one identity per
// program or person, each with the least it needs; loadgen provisions its
// customers (admin, operator) and can send the POSP's calls (posp).
var demoIdentities = []struct {
	name  string
	roles string
}{
	{"gateway", "posp"},
	{"settlement", "settlement"},
	{"operator", "operator"},
	{"admin", "admin"},
	{"auditor", "auditor"},
	{"supervisor", "supervisor"},
	{"loadgen", "admin,operator,posp"},
}

// makeCerts is `server certs`: a local CA and the demo certificates under
// -dir (default .data/pki), and a roles file beside them. What exists is
// kept, so running it again changes nothing; a site with its own PKI does
// not run it (README, "Internal trust").
func makeCerts(args []string) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	dir := fs.String("dir", ".data/pki", "directory of the CA, the certificates and the roles file")
	hosts := fs.String("hosts", "127.0.0.1,::1,localhost", "names and addresses of the server certificate, comma-separated")
	if err := fs.Parse(args); err != nil {
		return configErr(err)
	}
	if fs.NArg() > 0 {
		return configErr(fmt.Errorf("certs: unexpected arguments %q", fs.Args()))
	}
	leaves := []pki.Leaf{{Name: "server", Hosts: strings.Split(*hosts, ",")}}
	var roles strings.Builder
	roles.WriteString("# identity=role[,role]: who may call what on the gRPC API (server/internal/authz).\n" +
		"# The identity is the certificate's URI SAN spiffe://mapfront/<identity>, else its subject CN.\n")
	for _, id := range demoIdentities {
		leaves = append(leaves, pki.Leaf{Name: id.name})
		fmt.Fprintf(&roles, "%s=%s\n", id.name, id.roles)
	}
	created, err := pki.Ensure(*dir, leaves)
	if err != nil {
		return err
	}
	rolesPath := filepath.Join(*dir, "roles")
	if _, err := os.Stat(rolesPath); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(rolesPath, []byte(roles.String()), 0o600); err != nil {
			return err
		}
		created = append(created, rolesPath)
	}
	for _, f := range created {
		fmt.Println("created", f)
	}
	return nil
}
