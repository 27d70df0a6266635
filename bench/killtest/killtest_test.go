package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestJudge(t *testing.T) {
	for _, c := range []struct {
		code   int
		found  bool
		status string
		bad    bool
	}{
		{10018, false, "", false},
		{10018, true, "success", true},  // a false "no effect": the bug of issue 10
		{10018, true, "reversed", true}, // moved money, even if later undone
		{10000, false, "", false},
		{10000, true, "reversed", false},
		{10000, true, "success", true}, // the reversal did not take
		{-1, true, "success", true},
		{0, true, "success", false},
		{0, false, "", true},
		{0, true, "reversed", true},
		{10009, false, "", false},
	} {
		v := judge(answer{errcode: c.code, key: "k"}, c.found, c.status)
		if (v != "") != c.bad {
			t.Errorf("%d found=%v %q: violation %q, want bad=%v", c.code, c.found, c.status, v, c.bad)
		}
	}
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The short version of scripts/kill-during-pay.sh (issue 10, "What it must
// show" 1): 3 SIGKILLs of the real server during a pay load; no 10018 moved
// money, every 10000 reversed, the ledger proves. About 40 s; skipped with
// -short, without a test database or without psql.
func TestKillDuringPays(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	admin := os.Getenv("MAPFRONT_TEST_DATABASE_URL")
	if admin == "" {
		t.Skip("MAPFRONT_TEST_DATABASE_URL not set")
	}
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql not found")
	}
	script, err := filepath.Abs("../../scripts/kill-during-pay.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script, "-kills", "3", "-customers", "50", "-c", "4")
	cmd.Env = append(os.Environ(), "MAPFRONT_KILLTEST_PG_ADMIN="+admin,
		"MAPFRONT_KILLTEST_GRPC_ADDR="+freeAddr(t), "MAPFRONT_KILLTEST_HEALTH_ADDR="+freeAddr(t),
		"MAPFRONT_KILLTEST_GATEWAY_ADDR="+freeAddr(t))
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("kill-during-pay.sh: %v", err)
	}
	if !strings.Contains(string(out), "PASS: 3 kills") || !strings.Contains(string(out), "0 violations") {
		t.Fatal("no PASS line")
	}
}
