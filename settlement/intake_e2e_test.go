package main

// End-to-end tests of issues 15 (settlement intake) and 13 (settlement by
// the calendar): the real server binary on a fresh PostgreSQL database, the
// POSP's files on real FTP servers over TCP (with the fault modes of
// package ftptest), and the settlement command run whole through cli.Main.

import (
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/businessday"
	"mapfront/internal/enumtext"
	"mapfront/settlement/internal/calendar"
	"mapfront/settlement/internal/cli"
	"mapfront/settlement/internal/ftptest"
)

// quietFTP silences goftp.io's server, which logs through the standard
// logger.
func quietFTP(t testing.TB) {
	prev := log.Writer()
	log.SetOutput(io.Discard)
	t.Cleanup(func() { log.SetOutput(prev) })
}

// ftpVars is the command's environment for srv's gRPC address and ft.
func ftpVars(t *testing.T, srv *e2eServer, ft ftptest.Server) map[string]string {
	vars := map[string]string{
		"MAPFRONT_GRPC_ADDR":              srv.grpcAddr,
		"MAPFRONT_GRPC_TIMEOUT":           "10s",
		"MAPFRONT_SUBMIT_TIMEOUT":         "30s",
		"MAPFRONT_FTP_ADDR":               ft.Addr,
		"MAPFRONT_FTP_USER":               ft.User,
		"MAPFRONT_FTP_PASSWORD":           ft.Password,
		"MAPFRONT_FTP_DIR":                ft.Dir,
		"MAPFRONT_FTP_DIAL_TIMEOUT":       "5s",
		"MAPFRONT_FTP_TIMEOUT":            "5s",
		"MAPFRONT_SETTLE_WORKDIR":         t.TempDir(),
		"MAPFRONT_SETTLE_STABLE_INTERVAL": "300ms",
		"MAPFRONT_SETTLE_RETRY_INTERVAL":  "200ms",
	}
	maps.Copy(vars, srv.settlementTLS)
	return vars
}

// fileRec is a line of the POSP's file on terminal SH01/POS01, batch 000001.
func fileRec(trade, amount, serial, date, clock, id, mobile, product string) string {
	return strings.Join([]string{trade, "6225380083477614", amount, serial, "152412390951", "SH01", "POS01",
		"000001", date, clock, id, mobile, "", product}, "|")
}

// Issue 15, shows 1 to 4, over real FTP servers with faults.
func TestE2EIntake(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the server on PostgreSQL")
	}
	quietFTP(t)
	ctx := t.Context()
	sys := newE2ESystem(t)
	sys.run(t, "migrate")
	sys.run(t, "demo")
	srv := sys.serve(t, "sales", "-zone", "Etc/GMT+12", "-cutover", "11:59")
	idA, idB := gbID("11010519900307011"), gbID("11010519851122012")
	const mA, mB = "13800000011", "13800000012"
	orderA := srv.openCard(t, ctx, idA, mA, "1012", "000111", nil)
	srv.openCard(t, ctx, idB, mB, "1012", "000112", nil)
	o, err := srv.admin.GetOrder(ctx, &mapfrontv1.GetOrderRequest{OrderId: orderA.OrderId})
	if err != nil {
		t.Fatal(err)
	}
	date := o.GetOrder().GetPayments()[0].BusinessDate
	srv.stop(t)
	srv = sys.serve(t, "settlement")
	d, err := calendar.ParseDate(date)
	if err != nil {
		t.Fatal(err)
	}
	shanghai, _ := time.LoadLocation("Asia/Shanghai")

	// The day's file: two records, then a NUL byte, an invalid UTF-8
	// sequence and a Ctrl-Z at the end.
	good := []string{
		fileRec(date+"01", "1500.00", "000111", date, "101500", idA, mA, "1012"),
		fileRec(date+"02", "1500.00", "000112", date, "101600", idB, mB, "1012"),
		fileRec(date+"03", "1500.00", "000113", date, "101700", "1101\x0005", "13800000013", "1012"),
		fileRec(date+"04", "1500.00", "000114", date, "101800", idA, mA, "10\xff\xfe2"),
	}
	body := []byte(strings.Join(good, "\r\n") + "\r\n\x1a")

	// 1. A transfer cut with a false success by a server without SIZE, on
	// a catch-up run (the deadline long past): exit 1, not file-missing.
	cut := ftptest.StartFaulty(t, ftptest.Faults{NoSize: true, CutAfter: 100})
	cut.Upload(t, date+".txt", body)
	r := settleCmd(ctx, ftpVars(t, srv, cut), time.Now, "run", "--date", date)
	if r.code != cli.ExitFailed || strings.Contains(r.stderr, "FILE MISSING") || !strings.Contains(r.stderr, "cut short") {
		t.Fatalf("cut transfer: exit %d, want 1 and not missing\nstderr:\n%s", r.code, r.stderr)
	}
	if _, err := srv.settlement.GetBatch(ctx, &mapfrontv1.GetBatchRequest{BusinessDate: date}); status.Code(err) != codes.NotFound {
		t.Fatalf("after a cut transfer the batch exists: %v", err)
	}

	// 2. A permission refusal: exit 2 at once, naming the setting.
	denied := ftptest.StartFaulty(t, ftptest.Faults{Deny: date + ".txt"})
	denied.Upload(t, date+".txt", body)
	start := time.Now()
	r = settleCmd(ctx, ftpVars(t, srv, denied), time.Now, "run", "--date", date)
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "MAPFRONT_FTP_USER") || time.Since(start) > 5*time.Second {
		t.Fatalf("permission refusal: exit %d after %v, want 2 at once\nstderr:\n%s", r.code, time.Since(start), r.stderr)
	}

	// 3. A file written slowly is settled only complete. The command's
	// clock is set 20 s before the date's deadline, so that it waits.
	slow := ftptest.StartFaulty(t, ftptest.Faults{})
	giveUp := calendar.Calendar{Zone: shanghai, Offset: 30 * time.Minute, Deadline: 6 * time.Hour}.GiveUpTime(d)
	shift := time.Until(giveUp.Add(-20 * time.Second))
	written := slow.WriteSlowly(t, date+".txt", body, 6, 150*time.Millisecond)
	vars := ftpVars(t, srv, slow)
	// The two looks far apart compared with the writer's pauses, so that a
	// slow machine cannot make a pause look like the end.
	vars["MAPFRONT_SETTLE_STABLE_INTERVAL"] = "1s"
	r = settleCmd(ctx, vars, func() time.Time { return time.Now().Add(shift) }, "run", "--date", date)
	select {
	case <-written:
	default:
		t.Error("settled while the POSP was still writing")
	}
	if r.code != cli.ExitOK {
		t.Fatalf("slow file: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	b := srv.getBatch(t, ctx, date)
	if b.Records != 4 || b.BadLines != 2 || b.Matched != 2 || b.Activated != 2 || b.Status != mapfrontv1.BatchState_BATCH_STATE_SETTLED {
		t.Fatalf("batch %v", b)
	}
	list, err := srv.admin.ListExceptions(ctx, &mapfrontv1.ListExceptionsRequest{BusinessDate: date})
	if err != nil {
		t.Fatal(err)
	}
	var badAt []int64
	for _, e := range list.Exceptions {
		if e.Type == mapfrontv1.ExceptionType_EXCEPTION_TYPE_BAD_LINE {
			badAt = append(badAt, e.LineNo)
		}
	}
	if fmt.Sprint(badAt) != "[3 4]" && fmt.Sprint(badAt) != "[4 3]" {
		t.Errorf("bad lines at %v, want 3 and 4", badAt)
	}
	srv.card(t, ctx, mA, "1012", "active", 200000)

	// 4. A file of nothing but bad lines, for the day before: rejected,
	// exit 4, nothing applied; the good file then settles without --force.
	prev := d.AddDays(-1).String()
	idC := gbID("31010119700101013")
	local := t.TempDir()
	junk := filepath.Join(local, prev+".txt")
	if err := os.WriteFile(junk, []byte("garbage\x00\r\nmore|garbage\r\n\xff\xfe\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = settleCmd(ctx, vars, time.Now, "run", "--file", junk)
	if r.code != cli.ExitRejected || !strings.Contains(r.stderr, "ALERT") || !regexp.MustCompile(`Status\s+rejected`).MatchString(r.stdout) {
		t.Fatalf("junk file: exit %d, want 4\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if b := srv.getBatch(t, ctx, prev); b.Status != mapfrontv1.BatchState_BATCH_STATE_REJECTED || b.BadLines != 3 || b.Detail == "" {
		t.Fatalf("rejected batch %v", b)
	}
	if l, err := srv.admin.ListExceptions(ctx, &mapfrontv1.ListExceptionsRequest{BusinessDate: prev}); err != nil || len(l.Exceptions) != 0 {
		t.Fatalf("a rejected file filed items: %v %v", err, l)
	}
	fixed := filepath.Join(t.TempDir(), prev+".txt")
	if err := os.WriteFile(fixed, []byte(fileRec(prev+"01", "1500.00", "000211", prev, "120000", idC, "13800000013", "1012")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = settleCmd(ctx, vars, time.Now, "run", "--file", fixed)
	if r.code != cli.ExitOK {
		t.Fatalf("corrected file without --force: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if b := srv.getBatch(t, ctx, prev); b.Status != mapfrontv1.BatchState_BATCH_STATE_SETTLED || b.Opened != 1 || b.Activated != 1 {
		t.Fatalf("corrected batch %v", b)
	}

	// 5. A trailer that disagrees with the file is refused, naming both
	// figures; nothing reaches the server.
	older := d.AddDays(-2).String()
	withTrailer := filepath.Join(t.TempDir(), older+".txt")
	if err := os.WriteFile(withTrailer, []byte(fileRec(older+"01", "1500.00", "000311", older, "120000", idC, "13800000013", "1012")+
		"\n合计|2|3000.00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = settleCmd(ctx, vars, time.Now, "run", "--file", withTrailer)
	if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "says 2 records totalling 3000.00 yuan") ||
		!strings.Contains(r.stderr, "the file has 1 records totalling 1500.00 yuan") {
		t.Fatalf("wrong trailer: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	if _, err := srv.settlement.GetBatch(ctx, &mapfrontv1.GetBatchRequest{BusinessDate: older}); status.Code(err) != codes.NotFound {
		t.Fatalf("after a refused trailer the batch exists: %v", err)
	}
	srv.verifyLedger(t, ctx)
}

// Issue 13, shows 1 to 4: record dates against the business day, a
// payment of D-1 missing from D-1's file and present in D's, a file named
// for another date, and an overpaid order.
//
// The sales of D-1 are made under a calendar that lags (Etc/GMT+12, cutover
// 11:59: business date = UTC date of t − 23h59m), those of D under UTC
// (D = the UTC date); both dates have ended under the calendar the server
// and the command settle with, Etc/GMT-14 with a 12:00 cutover (business
// date = UTC date of t + 26h), whose day D runs from D-1 12:00 to D 12:00
// local time: the file's record times are written in that frame.
func TestE2ECalendar(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the server on PostgreSQL")
	}
	quietFTP(t)
	ctx := t.Context()
	sys := newE2ESystem(t)
	sys.run(t, "migrate")
	sys.run(t, "demo")

	paidOn := func(srv *e2eServer, orderID string) string {
		o, err := srv.admin.GetOrder(ctx, &mapfrontv1.GetOrderRequest{OrderId: orderID})
		if err != nil {
			t.Fatal(err)
		}
		ps := o.GetOrder().GetPayments()
		return ps[len(ps)-1].BusinessDate
	}
	id := func(n int) string { return gbID(fmt.Sprintf("110105199003%05d", n)) }
	mobile := func(n int) string { return fmt.Sprintf("138000002%02d", n) }

	srv := sys.serve(t, "d-1", "-zone", "Etc/GMT+12", "-cutover", "11:59")
	cross := srv.openCard(t, ctx, id(1), mobile(1), "1012", "000401", nil)
	prev := paidOn(srv, cross.OrderId)
	srv.stop(t)

	srv = sys.serve(t, "d", "-zone", "UTC")
	serials := []string{"000402", "000403", "000404", "000405", "000406"}
	for i, s := range serials {
		o := srv.openCard(t, ctx, id(2+i), mobile(2+i), "1012", s, nil)
		if p := paidOn(srv, o.OrderId); p == prev {
			t.Fatalf("sales of D and D-1 on the same business date %s; run again", p)
		}
	}
	split := srv.openCard(t, ctx, id(9), mobile(9), "1012", "000409", ptr(100000)) // 1000.00 of 1500.00
	date := paidOn(srv, split.OrderId)
	srv.stop(t)

	dd, _ := businessday.ParseDate(date)
	pd, _ := businessday.ParseDate(prev)
	if pd.AddDays(1) != dd {
		t.Fatalf("D-1 %s and D %s are not consecutive; run again", prev, date)
	}
	zone, err := time.LoadLocation("Etc/GMT-14")
	if err != nil {
		t.Fatal(err)
	}
	rule := businessday.Rule{Zone: zone, Cutover: 12 * time.Hour}
	srv = sys.serve(t, "settlement", "-zone", "Etc/GMT-14", "-cutover", "12:00")
	ft := ftptest.Start(t).Subdir(t)
	vars := ftpVars(t, srv, ft)
	vars["MAPFRONT_ZONE"], vars["MAPFRONT_CUTOVER"] = "Etc/GMT-14", "12:00"
	vars["MAPFRONT_SETTLE_STABLE_INTERVAL"] = "50ms"

	// D-1's file does not have the cross-day payment: it is missing.
	ft.Upload(t, prev+".txt", []byte(fileRec(prev+"99", "1500.00", "000499", prev, "000000", id(20), mobile(20), "9999")+"\n"))
	r := settleCmd(ctx, vars, time.Now, "run", "--date", prev)
	if r.code != cli.ExitOK {
		t.Fatalf("D-1: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if b := srv.getBatch(t, ctx, prev); !hasException(b, "missing_from_file", 1) {
		t.Fatalf("D-1 report %v, want one missing_from_file", b)
	}

	// D's file. Times in the settlement zone, at the day's edges.
	at := func(t0 time.Time) (string, string) { l := t0.In(zone); return l.Format("20060102"), l.Format("150405") }
	start, end := rule.Start(dd), rule.End(dd)
	type line struct {
		when   time.Time
		serial string
		n      int
		amount string
	}
	lines := []line{
		{start.Add(-30 * time.Second), "000401", 1, "1500.00"}, // 23:59:30 of D-1 on the POSP's clock: the cross-day record
		{start.Add(6 * time.Hour), "000402", 2, "1500.00"},     // inside the day
		{start.Add(-5 * time.Minute), "000403", 3, "1500.00"},  // a few minutes before the cutover that starts D
		{end.Add(5 * time.Minute), "000404", 4, "1500.00"},     // a few minutes past the cutover that ends D
		{start.Add(-24 * time.Hour), "000405", 5, "1500.00"},   // a day early
		{end.Add(48 * time.Hour), "000406", 6, "1500.00"},      // three days late
		{start.Add(time.Hour), "000409", 9, "1000.00"},         // the split order's first part
		{start.Add(2 * time.Hour), "000410", 9, "1000.00"},     // never opened: would take the order to 2000.00
	}
	var text []string
	for i, l := range lines {
		ds, ts := at(l.when)
		text = append(text, fileRec(fmt.Sprintf("%s%02d", date, i+1), l.amount, l.serial, ds, ts, id(l.n), mobile(l.n), "1012"))
	}
	ft.Upload(t, date+".txt", []byte(strings.Join(text, "\n")+"\n"))

	// 3. A file named for another date is refused without --force.
	misnamed := filepath.Join(t.TempDir(), prev+".txt")
	if err := os.WriteFile(misnamed, []byte(strings.Join(text, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = settleCmd(ctx, vars, time.Now, "run", "--file", misnamed, "--date", date)
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, prev) || !strings.Contains(r.stderr, date) {
		t.Fatalf("misnamed file: exit %d, want 2 naming both dates\nstderr:\n%s", r.code, r.stderr)
	}

	ledger := srv.verifyLedger(t, ctx)
	r = settleCmd(ctx, vars, time.Now, "run", "--date", date)
	if r.code != cli.ExitOK {
		t.Fatalf("D: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	b := srv.getBatch(t, ctx, date)
	if b.Matched != 5 || b.Activated != 4 || b.AutoResolved != 1 || !hasException(b, "date_mismatch", 2) ||
		!hasException(b, "overpaid", 1) || !hasException(b, "missing_from_file", 0) {
		t.Fatalf("D report %v", b)
	}
	for _, re := range []string{`Exception date_mismatch\s+2\s+3,000\.00`, `Exception overpaid\s+1\s+1,000\.00`, `Earlier items resolved\s+1\s`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("printed report lacks /%s/:\n%s", re, r.stdout)
		}
	}
	items, err := srv.admin.ListExceptions(ctx, &mapfrontv1.ListExceptionsRequest{BusinessDate: date})
	if err != nil {
		t.Fatal(err)
	}
	byLine := map[int64]*mapfrontv1.Exception{}
	for _, e := range items.Exceptions {
		byLine[e.LineNo] = e
	}
	for _, n := range []int64{5, 6} {
		if e := byLine[n]; e == nil || e.Type != mapfrontv1.ExceptionType_EXCEPTION_TYPE_DATE_MISMATCH {
			t.Errorf("line %d: %v, want date_mismatch", n, e)
		}
	}
	if e := byLine[8]; e == nil || e.Type != mapfrontv1.ExceptionType_EXCEPTION_TYPE_OVERPAID || e.OrderId != split.OrderId || e.Expected != 50000 || e.Amount != 100000 {
		t.Errorf("line 8: %v, want overpaid naming %s", e, split.OrderId)
	}
	if len(items.Exceptions) != 3 {
		t.Errorf("D's items: %v", items.Exceptions)
	}
	// 2. D-1's item is resolved by the system, naming D's batch; the card
	// is credited once.
	prevItems, err := srv.admin.ListExceptions(ctx, &mapfrontv1.ListExceptionsRequest{BusinessDate: prev})
	if err != nil || len(prevItems.Exceptions) != 2 {
		t.Fatalf("D-1 items %v %v", err, prevItems)
	}
	for _, e := range prevItems.Exceptions {
		if e.Type == mapfrontv1.ExceptionType_EXCEPTION_TYPE_MISSING_FROM_FILE && (e.State != mapfrontv1.ExceptionState_EXCEPTION_STATE_RESOLVED || e.Operator != "system" || e.ResolvedByBatch != date) {
			t.Errorf("D-1 missing item %v, want resolved by the system with batch %s", e, date)
		}
	}
	srv.card(t, ctx, mobile(1), "1012", "active", 200000)
	for _, n := range []int{2, 3, 4} {
		srv.card(t, ctx, mobile(n), "1012", "active", 200000)
	}
	for _, n := range []int{5, 6} {
		srv.card(t, ctx, mobile(n), "1012", "pending", 0)
	}
	srv.card(t, ctx, mobile(9), "1012", "pending", 0)
	after := srv.verifyLedger(t, ctx)
	if after.Transactions-ledger.Transactions != 4 {
		t.Errorf("%d ledger transactions for D, want 4 activations", after.Transactions-ledger.Transactions)
	}
	// The item is shown as resolved by the system.
	r = settleCmd(ctx, vars, time.Now, "exceptions", "list", "--date", prev, "--state", "resolved")
	if r.code != 0 || !strings.Contains(r.stdout, "missing_from_file") {
		t.Errorf("exceptions list: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// hasException reports whether the report counts n items of type typ.
func hasException(b *mapfrontv1.BatchReport, typ string, n int64) bool {
	for _, e := range b.GetExceptions() {
		if enumtext.Word(e.Type) == typ {
			return e.Count == n
		}
	}
	return n == 0
}
