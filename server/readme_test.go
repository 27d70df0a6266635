package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"mapfront/server/internal/authz"
)

// TestReadmeCurls runs the README's "Try it" section, as written, against a
// fresh demo database through the real gateway program
// (scripts/readme-curls.sh), so that the README's curl sequence and the
// answers it shows stay true.
func TestReadmeCurls(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sed", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	s := startSystem(t, false)
	server := filepath.Join(t.TempDir(), "server")
	build := exec.Command("go", "build", "-o", server, "mapfront/server")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build server: %v", err)
	}
	cmd := exec.Command("bash", "../scripts/readme-curls.sh", "README.md")
	cmd.Env = append(os.Environ(), "README_CURLS_BASE="+s.base, "README_CURLS_SERVER="+server)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("scripts/readme-curls.sh: %v", err)
	}
}

// readmeSection returns the README's lines after the heading line head, up
// to the next heading of the same or a higher level (outside code blocks).
func readmeSection(t *testing.T, head string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	level := strings.Index(head, " ")
	var out []string
	in, code := false, false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			code = !code
		}
		if !code && strings.HasPrefix(line, "#") {
			if n := strings.Index(line, " "); n > 0 && n <= level && strings.Trim(line[:n], "#") == "" {
				if in {
					break
				}
				in = line == head
				continue
			}
		}
		if in {
			out = append(out, line)
		}
	}
	if !in {
		t.Fatalf("README has no heading %q", head)
	}
	return strings.Join(out, "\n")
}

// The README's Operations → Commands block lists every server command.
func TestReadmeCommands(t *testing.T) {
	block := readmeSection(t, "### Commands")
	for _, c := range commands {
		if !strings.Contains(block, "bin/server "+c.name) {
			t.Errorf("README's Commands block lacks bin/server %s", c.name)
		}
	}
}

// The README's roles table (Internal trust) says exactly what the
// authorization table allows: for every RPC, the roles whose row names it
// (directly, by its service, or as one of "the reads") are the roles
// authz.Allowed gives. (It had omitted ListProposals for operator, auditor
// and settlement, ListAudit for supervisor, LiftTerminalSuspension for admin.)
func TestReadmeRolesTable(t *testing.T) {
	section := readmeSection(t, "### Internal trust")
	byShort := map[string][]string{} // short method or service name: full method names
	for _, r := range allRPCs(t) {
		parts := strings.Split(r.name, "/") // "", "mapfront.v1.AdminService", "TopUpCash"
		service := strings.TrimPrefix(parts[1], "mapfront.v1.")
		if _, dup := byShort[parts[2]]; dup {
			t.Fatalf("method name %s in two services", parts[2])
		}
		byShort[parts[2]] = []string{r.name}
		byShort[service] = append(byShort[service], r.name)
	}
	word := regexp.MustCompile(`[A-Z][A-Za-z]+`)
	names := func(text string) []string {
		var out []string
		for _, w := range word.FindAllString(text, -1) {
			out = append(out, byShort[w]...)
		}
		return out
	}
	i := strings.Index(section, "\nThe reads: ")
	if i < 0 {
		t.Fatal(`README's Internal trust has no "The reads: " paragraph`)
	}
	readsText := section[i+1:]
	readsText = readsText[:strings.Index(readsText, "\n\n")]
	reads := names(readsText)

	readme := map[string][]authz.Role{} // full method: roles the README gives it
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		m := regexp.MustCompile("^\\| `([a-z]+)` \\| (.*) \\|$").FindStringSubmatch(line)
		if m == nil {
			continue
		}
		rows++
		role := authz.Role(m[1])
		if !slices.Contains(authz.AllRoles, role) {
			t.Errorf("README's roles table has a row for %q, which is no role", role)
		}
		methods := names(m[2])
		if strings.Contains(m[2], "the reads") {
			methods = append(methods, reads...)
		}
		for _, method := range methods {
			if !slices.Contains(readme[method], role) {
				readme[method] = append(readme[method], role)
			}
		}
	}
	if rows != len(authz.AllRoles) {
		t.Errorf("README's roles table has %d rows, want one per role (%d)", rows, len(authz.AllRoles))
	}
	for _, r := range allRPCs(t) {
		if !strings.HasPrefix(r.name, "/mapfront.v1.") {
			continue
		}
		allowed, _ := authz.Allowed(r.name)
		slices.Sort(allowed)
		said := readme[r.name]
		slices.Sort(said)
		if !slices.Equal(allowed, said) {
			t.Errorf("%s: README's roles table says %v, authz allows %v", r.name, said, allowed)
		}
	}
}
