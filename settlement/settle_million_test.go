package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"mapfront/settlement/internal/cli"
)

// TestE2ESettleMillion settles a generated file of a million records the
// way production does (issue 11, show 4): the file on disk, the settlement
// command run whole through cli.Main (it parses the file twice and streams
// it over mTLS gRPC), the real server binary's SettlementService and store.
// It takes a minute or more, so it runs only when asked:
//
//	MAPFRONT_BENCH_SETTLE=1 go test -run TestE2ESettleMillion -timeout 60m -v ./settlement/
//
// MAPFRONT_BENCH_SETTLE_N sets another size (at least 10000). The file is
// the one TestSettleMillion (server/internal/postgres) generates: line i is,
// by i, i%10000 == 6 a bad line, i%1000 == 5 line i-1 again (duplicate),
// i%100 == 1 a card paid but never opened (opened from the file), == 2 an
// amount mismatch, == 3 and 4 the halves of a split payment (merged), any
// other a single full payment. A further n/1000 payments of the day are not
// in the file (missing). The report's counts are checked exactly and the
// ledger must prove.
//
// Besides the wall time it reports, per phase of the server's run, the CPU
// seconds of the PostgreSQL backends serving the database (from /proc, so
// that a loaded machine does not mislead), the server process's CPU and
// peak resident memory, and the command's own CPU.
func TestE2ESettleMillion(t *testing.T) {
	if os.Getenv("MAPFRONT_BENCH_SETTLE") != "1" {
		t.Skip("set MAPFRONT_BENCH_SETTLE=1 to settle a generated million-record file end to end")
	}
	n := 1_000_000
	if v := os.Getenv("MAPFRONT_BENCH_SETTLE_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10000 {
			t.Fatalf("MAPFRONT_BENCH_SETTLE_N=%q: want an integer ≥ 10000", v)
		}
	}
	ctx := t.Context()
	sys := newE2ESystem(t)
	sys.run(t, "migrate")
	sys.run(t, "demo")
	dbURL := ""
	for _, kv := range sys.env {
		if v, ok := strings.CutPrefix(kv, "MAPFRONT_DATABASE_URL="); ok {
			dbURL = v
		}
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	const day = "20261126"
	missing := n / 1000
	start := time.Now()
	seedMillion(t, ctx, pool, n, missing, day)
	// The seeded ID numbers are in clear, as rows written before
	// migration 0005 are: migrate seals them, so that the server starts at
	// once.
	sys.run(t, "migrate")
	t.Logf("seeded the day's payments in %s", time.Since(start).Round(time.Millisecond))
	path := filepath.Join(t.TempDir(), day+".txt")
	total := writeMillionFile(t, path, n, day)

	// VerifyLedger reads the whole ledger (a million cards) in one
	// statement: longer than a request's default 5 s.
	// The server's sessions time their PL/pgSQL functions (the ledger and
	// settlement triggers), reported after the run with the tables' updates.
	if _, err := pool.Exec(ctx, `DO $$ BEGIN
EXECUTE format('ALTER DATABASE %I SET track_functions = %L', current_database(), 'pl'); END $$`); err != nil {
		t.Fatal(err)
	}
	srv := sys.serve(t, "settle-million", "-statement-timeout", "10m")
	vars := map[string]string{
		"MAPFRONT_GRPC_ADDR":      srv.grpcAddr,
		"MAPFRONT_GRPC_TIMEOUT":   "60s",
		"MAPFRONT_SUBMIT_TIMEOUT": "60m",
		"MAPFRONT_SETTLE_WORKDIR": t.TempDir(),
	}
	for k, v := range srv.settlementTLS {
		vars[k] = v
	}

	sampler := startCPUSampler(ctx, pool, srv.cmd.Process.Pid)
	selfBefore := procCPU(os.Getpid())
	load := loadAvg()
	start = time.Now()
	r := settleCmd(ctx, vars, time.Now, "run", "--file", path, "--date", day)
	elapsed := time.Since(start)
	selfCPU := procCPU(os.Getpid()) - selfBefore
	samples := sampler.stop()
	if r.code != cli.ExitOK {
		t.Fatalf("settlement: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	peakRSS := procPeakRSS(srv.cmd.Process.Pid)

	b := srv.getBatch(t, ctx, day)
	opened, dups, bad := int64(n/100), int64(n/1000), int64(n/10000)
	halves := 2 * int64(n/100)
	singles := int64(n) - opened - int64(n/100) - halves - dups - bad
	if b.Records != int64(n) || b.TotalFen != total || b.Matched != singles+halves || b.Opened != opened ||
		b.Merged != halves/2 || b.Activated != singles+halves/2+opened {
		t.Fatalf("report %v\nwant records %d total %d matched %d opened %d merged %d activated %d",
			b, n, total, singles+halves, opened, halves/2, singles+halves/2+opened)
	}
	for typ, want := range map[string]int64{"amount_mismatch": int64(n / 100), "duplicate": dups, "bad_line": bad,
		"missing_from_file": int64(missing)} {
		if !hasException(b, typ, want) {
			t.Fatalf("report %v: want %d %s", b, want, typ)
		}
	}

	msg := fmt.Sprintf("settled %d records in %s: %.0f records/s, load average %s before", n,
		elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), load)
	t.Log(msg)
	fmt.Println("BenchmarkE2ESettleMillion:", msg)
	phases := runPhases(t, srv.logPath, start.Add(elapsed))
	var pgTotal, srvTotal float64
	for _, p := range phases {
		pg, sv := samples.between(p.from, p.to)
		pgTotal, srvTotal = pgTotal+pg, srvTotal+sv
		line := fmt.Sprintf("  %-8s %8s wall, PostgreSQL %6.1f s CPU, server %5.1f s CPU", p.name,
			p.to.Sub(p.from).Round(time.Millisecond), pg, sv)
		t.Log(line)
		fmt.Println(line)
	}
	pgAll, srvAll := samples.between(start, start.Add(elapsed))
	line := fmt.Sprintf("  whole run: PostgreSQL %.1f s CPU (phases %.1f), server %.1f s CPU (phases %.1f), command %.1f s CPU; server peak RSS %.1f MiB",
		pgAll, pgTotal, srvAll, srvTotal, selfCPU, float64(peakRSS)/1024)
	t.Log(line)
	fmt.Println(line)
	start = time.Now()
	srv.verifyLedger(t, ctx)
	t.Logf("ledger verified in %s", time.Since(start).Round(time.Millisecond))
	logTableStats(t, ctx, pool)
}

// logTableStats logs, for the tables settlement writes, how many updates
// were HOT (no index entries written), and the time spent in PL/pgSQL
// functions (track_functions). The server's sessions report their figures
// when idle, a second or so after the run.
func logTableStats(t *testing.T, ctx context.Context, pool *pgxpool.Pool) {
	time.Sleep(2 * time.Second)
	rows, err := pool.Query(ctx, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
WHERE relname IN ('accounts', 'card_orders', 'card_payments', 'settlement_trades', 'settlement_activations', 'postings')
ORDER BY relname`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var ins, upd, hot int64
		if err := rows.Scan(&name, &ins, &upd, &hot); err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("  table %-22s %9d inserts %9d updates, %9d HOT", name, ins, upd, hot)
		t.Log(line)
		fmt.Println(line)
	}
	rows, err = pool.Query(ctx, `SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions ORDER BY total_time DESC`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var calls int64
		var total, self float64
		if err := rows.Scan(&name, &calls, &total, &self); err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("  function %-28s %7d calls, %8.1f ms total, %8.1f ms self", name, calls, total, self)
		t.Log(line)
		fmt.Println(line)
	}
}

// seedMillion writes, set-based, the open_card payments of day that the
// generated file names (and missing more that it does not), as
// TestSettleMillion's seedPayments does.
func seedMillion(t *testing.T, ctx context.Context, pool *pgxpool.Pool, n, missing int, day string) {
	t.Helper()
	const owners = `
WITH owners AS (
    SELECT g AS l, CASE WHEN g % 100 = 3 THEN '1010' ELSE '1012' END AS product
    FROM generate_series(1, $1::int) g
    WHERE NOT (g % 10000 = 6 OR g % 1000 = 5 OR g % 100 IN (1, 4))
    UNION ALL SELECT g, '1012' FROM generate_series($1::int + 1, $1::int + $2::int) g)`
	steps := []string{
		owners + `
INSERT INTO customers (mobile, id_number) SELECT '15' || lpad(l::text, 9, '0'), '11010519491231002X' FROM owners`,
		owners + `
INSERT INTO accounts (account_id, kind, customer_id, product_id, status)
SELECT o.product || '9' || lpad(o.l::text, 11, '0'), 'card', c.customer_id, o.product, 'pending'
FROM owners o JOIN customers c ON c.mobile = '15' || lpad(o.l::text, 9, '0')`,
		owners + `
INSERT INTO card_orders (order_id, customer_id, product_id, account_id, price, face_value, installments, paid,
    filling, status, business_date)
SELECT $3::text || lpad(o.l::text, 12, '0'), c.customer_id, o.product, o.product || '9' || lpad(o.l::text, 11, '0'),
       p.price, p.face_value, 1, p.price, false, 'pending', $3::date
FROM owners o JOIN customers c ON c.mobile = '15' || lpad(o.l::text, 9, '0') JOIN products p ON p.product_id = o.product`,
		owners + `
INSERT INTO card_payments (order_id, seller_id, store_id, terminal_id, batch_no, terminal_order_id, pay_sum, status,
    business_date)
SELECT $3::text || lpad(o.l::text, 12, '0'), 'SH01', 'ST01', 'POS01', 'B', lpad(x.line::text, 8, '0'),
       CASE WHEN o.product = '1010' THEN 225000 ELSE 150000 END, 'paid', $3::date
FROM owners o, LATERAL (SELECT o.l AS line UNION ALL SELECT o.l + 1 WHERE o.product = '1010') x`,
		`ANALYZE customers, accounts, card_orders, card_payments`,
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET statement_timeout = 0`); err != nil {
		t.Fatal(err)
	}
	for i, q := range steps {
		args := []any{n, missing, day}
		switch i {
		case 0, 1:
			args = args[:2]
		case len(steps) - 1:
			args = nil
		}
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("seed step %d: %v", i, err)
		}
	}
}

// writeMillionFile writes the POSP's file of n lines and returns the total
// of its records in fen.
func writeMillionFile(t *testing.T, path string, n int, day string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var total int64
	for i := 1; i <= n; i++ {
		trade, serial := fmt.Sprintf("T%09d", i), fmt.Sprintf("%08d", i)
		id, mobile, product, amount := "11010519491231002X", fmt.Sprintf("15%09d", i), "1012", int64(150000)
		switch {
		case i%10000 == 6:
			fmt.Fprintf(w, "%s|6225380083477614|45.001|%s|152412390951|SH01|POS01|B|%s|120000|%s|%s||%s\n",
				trade, serial, day, id, mobile, product)
			continue
		case i%1000 == 5:
			trade, serial, amount, product = fmt.Sprintf("T%09d", i-1), fmt.Sprintf("%08d", i-1), 225000, "1010"
		case i%100 == 1:
			id, mobile = gbID(fmt.Sprintf("110105199%08d", i)), fmt.Sprintf("16%09d", i)
		case i%100 == 2:
			amount = 149900
		case i%100 == 3, i%100 == 4:
			amount, product = 225000, "1010"
		}
		total += amount
		fmt.Fprintf(w, "%s|6225380083477614|%d.%02d|%s|152412390951|SH01|POS01|B|%s|120000|%s|%s||%s\n",
			trade, amount/100, amount%100, serial, day, id, mobile, product)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return total
}

// phase is a step of the server's settlement run, in wall-clock time.
type phase struct {
	name     string
	from, to time.Time
}

// runPhases reads the durations the server logs when a run settles and
// places them on the clock, the run ending at end (when the command got its
// report: the report's few milliseconds are counted in finish).
func runPhases(t *testing.T, logPath string, end time.Time) []phase {
	t.Helper()
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for l := range strings.SplitSeq(string(raw), "\n") {
		if strings.Contains(l, "settlement run settled") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no \"settlement run settled\" line in the server log")
	}
	t.Log(line)
	names := []string{"stage", "match", "activate", "finish"}
	durs := make([]time.Duration, len(names))
	for i, name := range names {
		// The server logs JSON, durations in nanoseconds; text logs show
		// them as "1.5s".
		m := regexp.MustCompile(`"?` + name + `"?[=:]"?([0-9.]+)([a-zµ]*)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no %s in %q", name, line)
		}
		if m[2] == "" {
			m[2] = "ns"
		}
		if durs[i], err = time.ParseDuration(m[1] + m[2]); err != nil {
			t.Fatal(err)
		}
	}
	out := make([]phase, len(names))
	to := end
	for i := len(names) - 1; i >= 0; i-- {
		out[i] = phase{name: names[i], from: to.Add(-durs[i]), to: to}
		to = out[i].from
	}
	return out
}

// cpuSamples are the cumulative CPU seconds of the database's backends and
// of the server process, over time.
type cpuSamples struct {
	at         []time.Time
	pg, server []float64
}

// between interpolates the CPU seconds spent from a to b.
func (s cpuSamples) between(a, b time.Time) (pg, server float64) {
	at := func(v []float64, x time.Time) float64 {
		if len(s.at) == 0 {
			return 0
		}
		for i := 1; i < len(s.at); i++ {
			if !s.at[i].Before(x) {
				span := s.at[i].Sub(s.at[i-1]).Seconds()
				if span <= 0 {
					return v[i]
				}
				f := x.Sub(s.at[i-1]).Seconds() / span
				f = min(max(f, 0), 1)
				return v[i-1] + f*(v[i]-v[i-1])
			}
		}
		return v[len(v)-1]
	}
	return at(s.pg, b) - at(s.pg, a), at(s.server, b) - at(s.server, a)
}

type cpuSampler struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	out   cpuSamples
}

// startCPUSampler samples, every 100 ms, the CPU time of the PostgreSQL
// backends serving pool's database (each backend's highest reading, so
// that one that exits keeps its share) and of the process serverPID.
func startCPUSampler(ctx context.Context, pool *pgxpool.Pool, serverPID int) *cpuSampler {
	s := &cpuSampler{stopc: make(chan struct{})}
	seen := map[int]float64{}
	sample := func() {
		rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
		if err == nil {
			pids, _ := pgx.CollectRows(rows, pgx.RowTo[int32])
			for _, pid := range pids {
				if c := procCPU(int(pid)); c > seen[int(pid)] {
					seen[int(pid)] = c
				}
			}
		}
		var pg float64
		for _, c := range seen {
			pg += c
		}
		s.out.at = append(s.out.at, time.Now())
		s.out.pg = append(s.out.pg, pg)
		s.out.server = append(s.out.server, procCPU(serverPID))
	}
	sample()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stopc:
				sample()
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return s
}

func (s *cpuSampler) stop() cpuSamples {
	close(s.stopc)
	s.wg.Wait()
	return s.out
}

// procCPU is the user + system CPU seconds of process pid, from /proc
// (0 when it is gone).
func procCPU(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(u+s) / 100 // USER_HZ
}

// procPeakRSS is process pid's peak resident memory in KiB (VmHWM).
func procPeakRSS(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// loadAvg is the machine's load average line.
func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
