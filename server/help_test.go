package main

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// `server help` lists every command main dispatches, one line each, then
// serve's flags. (console-user was missing from the unknown-command list, and
// --help printed serve's flags only.)
func TestHelpListsEveryCommand(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	body := string(src[bytes.Index(src, []byte("func main() {")):])
	body = body[:strings.Index(body, "\n}\n")]
	var dispatched []string
	for _, c := range regexp.MustCompile(`(?m)^\tcase (.+):$`).FindAllStringSubmatch(body, -1) {
		for _, q := range regexp.MustCompile(`"([a-z-]+)"`).FindAllStringSubmatch(c[1], -1) {
			dispatched = append(dispatched, q[1])
		}
	}
	if len(dispatched) < 8 {
		t.Fatalf("found only %v in main's switch", dispatched)
	}
	var listed []string
	for _, c := range commands {
		listed = append(listed, c.name)
	}
	for _, d := range dispatched {
		if !slices.Contains(listed, d) {
			t.Errorf("main dispatches %q, which help does not list", d)
		}
	}
	for _, l := range listed {
		if l != "help" && !slices.Contains(dispatched, l) {
			t.Errorf("help lists %q, which main does not dispatch", l)
		}
	}
	var out bytes.Buffer
	usage(&out)
	help := out.String()
	for _, c := range commands {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(c.name) + ` +\S`).MatchString(help) {
			t.Errorf("help has no line for %s:\n%s", c.name, help)
		}
	}
	if i, j := strings.Index(help, "Commands:"), strings.Index(help, "-database-url"); i < 0 || j < i {
		t.Errorf("help: want the commands, then serve's flags:\n%s", help)
	}
	for _, arg := range []string{"help", "-h", "-help", "--help"} {
		if !isHelp(arg) {
			t.Errorf("%s does not ask for help", arg)
		}
	}
}
