package main

import (
	"os"
	"os/exec"
	"path/filepath"
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
