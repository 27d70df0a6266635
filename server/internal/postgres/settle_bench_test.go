package postgres

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
)

// TestSettleMillion settles a generated file of a million records (SPEC
// section 6: time proportional to the file, memory bounded by a chunk) and
// reports records per second and the peak Go heap. It takes minutes, so it
// runs only when asked:
//
//	MAPFRONT_BENCH_SETTLE=1 go test -run TestSettleMillion -timeout 60m -v ./server/internal/postgres/
//
// MAPFRONT_BENCH_SETTLE_N sets another size. Line i of the file is, by i:
// i%100 == 1 a card paid but never opened (opened from the file), == 2 an
// amount mismatch, == 3 and 4 the two halves of a split payment (merged),
// i%1000 == 5 line i-1 again (duplicate), i%10000 == 6 a bad line, any
// other a single full payment (matched and activated). A further n/1000
// payments of the day are not in the file (missing).
func TestSettleMillion(t *testing.T) {
	if os.Getenv("MAPFRONT_BENCH_SETTLE") != "1" {
		t.Skip("set MAPFRONT_BENCH_SETTLE=1 to settle a generated million-record file")
	}
	n := 1_000_000
	if v := os.Getenv("MAPFRONT_BENCH_SETTLE_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10000 {
			t.Fatalf("MAPFRONT_BENCH_SETTLE_N=%q: want an integer ≥ 10000", v)
		}
	}
	e := newEnv(t)
	// The run logs its phases' durations.
	e.store.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	const day = "20261126"
	d, _ := mapfront.ParseDate(day)
	missing := n / 1000

	start := time.Now()
	seedPayments(t, e, d, n, missing)
	t.Logf("seeded %d open_card payments in %s", n-n/100-n/1000-n/10000+missing, time.Since(start).Round(time.Millisecond))

	e.clock.now = time.Date(2026, 11, 27, 0, 30, 0, 0, e.clock.now.Location()) // the day is over

	kind := func(i int) string {
		switch {
		case i%10000 == 6:
			return "bad"
		case i%1000 == 5:
			return "dup"
		case i%100 == 1:
			return "open"
		case i%100 == 2:
			return "mismatch"
		case i%100 == 3, i%100 == 4:
			return "half"
		}
		return "single"
	}
	record := func(i int) mapfront.SettlementRecord {
		r := mapfront.SettlementRecord{LineNo: int64(i), TradeID: fmt.Sprintf("T%09d", i), CardNo: "6225380083477614",
			Amount: 150000, TerminalOrderID: fmt.Sprintf("%08d", i), ReferenceNo: "152412390951", SellerID: "SH01",
			TerminalID: "POS01", BatchNo: "B", TradeDate: day, TradeTime: "120000", IDNumber: "11010519491231002X",
			Mobile: fmt.Sprintf("15%09d", i), ProductID: "1012"}
		switch kind(i) {
		case "open":
			r.IDNumber, r.Mobile = stlID(fmt.Sprintf("110105199%08d", i)), fmt.Sprintf("16%09d", i)
		case "mismatch":
			r.Amount = 149900
		case "half":
			r.Amount, r.ProductID = 225000, "1010"
		case "dup":
			r.TradeID, r.TerminalOrderID = fmt.Sprintf("T%09d", i-1), fmt.Sprintf("%08d", i-1)
			r.Amount, r.ProductID = 225000, "1010"
		}
		return r
	}
	var total int64
	for i := 1; i <= n; i++ {
		if kind(i) != "bad" {
			total += record(i).Amount
		}
	}

	// The file is generated chunk by chunk as SubmitBatch asks, as the
	// settlement command streams it: nothing holds the whole file.
	line := 0
	next := func() (*mapfront.BatchChunk, error) {
		if line >= n {
			return nil, io.EOF
		}
		c := &mapfront.BatchChunk{}
		for k := 0; k < 1000 && line < n; k++ {
			line++
			if kind(line) == "bad" {
				c.BadLines = append(c.BadLines, mapfront.BadLine{LineNo: int64(line), Reason: "bad_amount: 1.001", Text: "…"})
				continue
			}
			c.Records = append(c.Records, record(line))
		}
		return c, nil
	}
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak {
				peak = m.HeapInuse
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	runtime.GC()
	start = time.Now()
	r, err := e.store.SubmitBatch(e.ctx, mapfront.BatchHeader{BusinessDate: d, FileName: day + ".txt",
		SHA256: stlSHA("million"), RecordCount: int64(n), TotalFen: total}, next)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	msg := fmt.Sprintf("settled %d records in %s: %.0f records/s, peak Go heap %.1f MiB",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), float64(peak)/(1<<20))
	t.Log(msg)
	fmt.Println("BenchmarkSettleMillion:", msg)

	opened, dups, bad := int64(n/100), int64(n/1000), int64(n/10000)
	halves := 2 * int64(n/100)
	singles := int64(n) - opened - int64(n/100) - halves - dups - bad
	want := mapfront.BatchReport{Records: int64(n), TotalFen: total, Matched: singles + halves, Opened: opened,
		Merged: halves / 2, Activated: singles + halves/2 + opened}
	if r.Records != want.Records || r.TotalFen != want.TotalFen || r.Matched != want.Matched || r.Opened != want.Opened ||
		r.Merged != want.Merged || r.Activated != want.Activated {
		t.Fatalf("report %+v\nwant %+v", r, want)
	}
	got := counts(r)
	if got[mapfront.ExAmountMismatch][0] != int64(n/100) || got[mapfront.ExDuplicate][0] != dups ||
		got[mapfront.ExBadLine][0] != bad || got[mapfront.ExMissing][0] != int64(missing) {
		t.Fatalf("exceptions %v", got)
	}
	start = time.Now()
	e.verify(t)
	t.Logf("ledger verified in %s", time.Since(start).Round(time.Millisecond))
}

// seedPayments writes, set-based, the open_card payments of day that the
// generated file names (and missing more that it does not), as if the POS
// had sent them: a customer, a pending card account and a fully paid order
// for each, two payments for the split ones.
func seedPayments(t *testing.T, e *env, day time.Time, n, missing int) {
	t.Helper()
	// owner lines: single (and the mismatch), the first half of a split
	// payment, and the missing ones past n.
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
SELECT '20261126' || lpad(o.l::text, 12, '0'), c.customer_id, o.product, o.product || '9' || lpad(o.l::text, 11, '0'),
       p.price, p.face_value, 1, p.price, false, 'pending', $3
FROM owners o JOIN customers c ON c.mobile = '15' || lpad(o.l::text, 9, '0') JOIN products p ON p.product_id = o.product`,
		owners + `
INSERT INTO card_payments (order_id, seller_id, store_id, terminal_id, batch_no, terminal_order_id, pay_sum, status,
    business_date)
SELECT '20261126' || lpad(o.l::text, 12, '0'), 'SH01', 'ST01', 'POS01', 'B', lpad(x.line::text, 8, '0'),
       CASE WHEN o.product = '1010' THEN 225000 ELSE 150000 END, 'paid', $3
FROM owners o, LATERAL (SELECT o.l AS line UNION ALL SELECT o.l + 1 WHERE o.product = '1010') x`,
		`ANALYZE customers, accounts, card_orders, card_payments`,
	}
	ctx := e.ctx
	conn, err := e.store.pool.Acquire(ctx)
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
		t0 := time.Now()
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("seed step %d: %v", i, err)
		}
		t.Logf("seed step %d: %s", i, time.Since(t0).Round(time.Millisecond))
	}
	if _, err := conn.Exec(ctx, `RESET statement_timeout`); err != nil {
		t.Fatal(err)
	}
}
