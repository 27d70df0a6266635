package cli

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReadmesAgreeWithUsage: every synopsis of a subcommand in the two
// READMEs names the flags the help text names for it, and the same --state
// choices, so that a reader who copies one gets what `settlement help` says.
func TestReadmesAgreeWithUsage(t *testing.T) {
	flagRE := regexp.MustCompile(`--[a-z-]+`)
	stateRE := regexp.MustCompile(`--state ([a-z|]+)`)
	synopsis := map[string]string{} // subcommand → its usage line(s)
	last := ""
	for _, line := range strings.Split(usage, "\n") {
		line = strings.TrimSpace(line)
		if last != "" && strings.HasPrefix(line, "[") { // a continuation line
			synopsis[last] += " " + line
			continue
		}
		last = ""
		for _, sub := range []string{"exceptions list", "exceptions resolve", "report", "audit"} {
			if strings.HasPrefix(line, sub+" ") {
				synopsis[sub], last = line, sub
			}
		}
	}
	if len(synopsis) != 4 {
		t.Fatalf("usage synopses found: %v", synopsis)
	}
	for _, path := range []string{"../../README.md", "../../../README.md"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			for sub, use := range synopsis {
				// A synopsis, not an example: it shows optional flags.
				i := strings.Index(line, "settlement "+sub+" ")
				if i < 0 || !strings.Contains(line, "[--") {
					continue
				}
				n++
				got, want := flagRE.FindAllString(line[i:], -1), flagRE.FindAllString(use, -1)
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(slices.Compact(got), slices.Compact(want)) {
					t.Errorf("%s: %q names flags %v, the help text %v", path, line, got, want)
				}
				if m := stateRE.FindStringSubmatch(line); m != nil && m[1] != stateRE.FindStringSubmatch(use)[1] {
					t.Errorf("%s: %q: --state %s, the help text --state %s", path, line, m[1], stateRE.FindStringSubmatch(use)[1])
				}
			}
		}
		if n == 0 {
			t.Errorf("%s shows no settlement synopsis", path)
		}
	}
}
