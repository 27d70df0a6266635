package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

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

// bench/compare.sh end to end in a tiny configuration, once per load tool,
// so that the one benchmark command cannot rot unnoticed: pgbench, then
// pays through the gateway and through the single binary, each answered
// errcode 0 with a proving ledger, and the summary block complete. Each run
// has ports, binaries, PKI and master key of its own (nothing shared with
// `make run`, kill-during-pay.sh or a parallel run), and its own databases.
// About 25 s per tool on a quiet machine; skipped with -short, without a
// test database, without psql or pgbench, and (the wrk run) without wrk.
func TestCompareScript(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	admin := os.Getenv("MAPFRONT_TEST_DATABASE_URL")
	if admin == "" {
		t.Skip("MAPFRONT_TEST_DATABASE_URL not set")
	}
	for _, tool := range []string{"psql", "pgbench"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	script, err := filepath.Abs("../compare.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"loadgen", "wrk"} {
		t.Run(tool, func(t *testing.T) {
			if _, err := exec.LookPath(tool); tool == "wrk" && err != nil {
				t.Skip("wrk not found (Debian: apt-get install wrk)")
			}
			dir := t.TempDir()
			cmd := exec.Command(script, "-customers", "200", "-d", "3", "-c", "4", "-tool", tool)
			cmd.Env = append(os.Environ(), "MAPFRONT_BENCH_PG_ADMIN="+admin,
				"MAPFRONT_BENCH_GRPC_ADDR="+freeAddr(t), "MAPFRONT_BENCH_HEALTH_ADDR="+freeAddr(t),
				"MAPFRONT_BENCH_GATEWAY_ADDR="+freeAddr(t), "MAPFRONT_BENCH_LEGACY_ADDR="+freeAddr(t),
				"MAPFRONT_BENCH_BIN="+filepath.Join(dir, "bin"), "MAPFRONT_BENCH_PKI_DIR="+filepath.Join(dir, "pki"),
				"MAPFRONT_BENCH_MASTER_KEY_FILE="+filepath.Join(dir, "master.key"),
				"MAPFRONT_BENCH_WRK_RATE=5000", "TMPDIR="+dir)
			out, err := cmd.CombinedOutput()
			t.Logf("%s", out)
			if err != nil {
				t.Fatalf("compare.sh -tool %s: %v", tool, err)
			}
			for _, want := range []string{
				`(?m)^pgbench -N TPS +[0-9.]+ `,
				`(?m)^pgbench CPU/transaction +PostgreSQL backends [0-9]+ µs, pgbench [0-9]+ µs; all [0-9]+ µs: [0-9]+ CPUs allow [0-9]+ a second, this run used [0-9]+ % of them$`,
				`(?m)^via gateway CPU/pay +PostgreSQL backends [0-9]+ µs, server [0-9]+ µs, gateway [0-9]+ µs, ` + tool + ` [0-9]+ µs; all [0-9]+ µs: [0-9]+ CPUs allow [0-9]+ a second, this run used [0-9]+ % of them; a pay costs [0-9]+\.[0-9]{2} of a pgbench transaction$`,
				`(?m)^single binary CPU/pay +PostgreSQL backends [0-9]+ µs, server [0-9]+ µs, ` + tool + ` [0-9]+ µs; all [0-9]+ µs: [0-9]+ CPUs allow [0-9]+ a second, this run used [0-9]+ % of them; a pay costs [0-9]+\.[0-9]{2} of a pgbench transaction$`,
				`(?m)^via gateway latency +p50 [0-9.]+ ms, p99 [0-9.]+ ms`,
				`(?m)^single binary latency +p50 [0-9.]+ ms, p99 [0-9.]+ ms`,
				`(?m)^via gateway VerifyLedger +proves `,
				`(?m)^single binary VerifyLedger +proves `,
			} {
				if !regexp.MustCompile(want).Match(out) {
					t.Errorf("no line matching %s", want)
				}
			}
			for _, mode := range []string{"via gateway", "single binary"} {
				m := regexp.MustCompile(`(?m)^` + mode + ` pays/s +([0-9.]+) \(ratio to pgbench [0-9.]+; ([0-9]+) approved pays, ([0-9]+) requests; all answers errcode 0\)$`).FindSubmatch(out)
				if m == nil {
					t.Errorf("%s: no pays/s line with all answers errcode 0", mode)
					continue
				}
				if tps, _ := strconv.ParseFloat(string(m[1]), 64); tps <= 0 || string(m[2]) != string(m[3]) || string(m[2]) == "0" {
					t.Errorf("%s: %s pays/s, %s approved of %s requests", mode, m[1], m[2], m[3])
				}
			}
		})
	}
}
