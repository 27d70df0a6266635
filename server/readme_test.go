package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
