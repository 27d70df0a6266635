package main

// The end-to-end test of the nightly settlement (issue "Settlement", shows
// 1, 3 and 4): the real server binary on a fresh PostgreSQL database, card
// sales through the gRPC OfflineService, the POSP's file on a real FTP
// server over TCP, and the settlement command run whole through cli.Main.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/enumtext"
	"mapfront/internal/mtls"
	"mapfront/internal/mtls/mtlstest"
	"mapfront/settlement/internal/calendar"
	"mapfront/settlement/internal/cli"
	"mapfront/settlement/internal/fetch"
	"mapfront/settlement/internal/ftptest"
)

// TestE2ESettlement settles one business date that has every outcome of
// SPEC section 6, then checks what the customers and the queue see.
//
// The server refuses to settle a business date that has not ended (and the
// command refuses to try), so the day's sales cannot simply be settled the
// same day. The sales are therefore made while the server runs with a
// calendar that lags the real one (zone Etc/GMT+12, cutover 11:59: business
// date = UTC date of t − 23h59m), and the server is
// then restarted with the defaults (Asia/Shanghai, 00:00), under which that
// business date has always ended. Nothing else about the sales depends on
// the calendar.
func TestE2ESettlement(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the server on PostgreSQL")
	}
	began := time.Now()
	defer func() { t.Logf("end-to-end settlement took %v", time.Since(began).Round(time.Millisecond)) }()
	// goftp.io's server logs some replies through the standard logger.
	prevLog := log.Writer()
	log.SetOutput(io.Discard)
	t.Cleanup(func() { log.SetOutput(prevLog) })
	ctx := t.Context()

	sys := newE2ESystem(t)
	sys.run(t, "migrate")
	sys.run(t, "demo")

	// Phase 1: the card sales on terminal SH01/ST01/POS01.
	srv := sys.serve(t, "sales", "-zone", "Etc/GMT+12", "-cutover", "11:59")
	var (
		idA, idB, idC = gbID("11010519900307001"), gbID("11010519851122002"), gbID("31010119700101003")
		idD, idE      = gbID("44030419991231004"), gbID("33010219880808005")
		// idBad fails the GB 11643 check digit.
		idBad = gbID("11010519900101006")[:17] + wrongCheck(gbID("11010519900101006")[17:])
	)
	const (
		mA, mB, mC, mD, mE, mBad = "13800000001", "13800000002", "13800000003", "13800000004", "13800000005", "13800000006"
	)
	orderA := srv.openCard(t, ctx, idA, mA, "1010", "000101", nil)          // full price, no paySum
	orderB1 := srv.openCard(t, ctx, idB, mB, "1010", "000102", ptr(200000)) // split payment, part 1
	orderB2 := srv.openCard(t, ctx, idB, mB, "1010", "000103", ptr(250000)) // split payment, part 2
	orderC := srv.openCard(t, ctx, idC, mC, "1011", "000104", ptr(350000))  // the file shows 3499.00
	orderD := srv.openCard(t, ctx, idD, mD, "1012", "000105", ptr(150000))  // not in the file
	if orderB1.OrderId != orderB2.OrderId {
		t.Fatalf("the two partial payments are in orders %s and %s, want one", orderB1.OrderId, orderB2.OrderId)
	}
	// Every payment is on the same business date D.
	var date string
	for _, id := range []string{orderA.OrderId, orderB1.OrderId, orderC.OrderId, orderD.OrderId} {
		o, err := srv.admin.GetOrder(ctx, &mapfrontv1.GetOrderRequest{OrderId: id})
		if err != nil {
			t.Fatalf("GetOrder %s: %v", id, err)
		}
		for _, p := range o.GetOrder().GetPayments() {
			if p.Settled || enumtext.Word(p.Status) != "paid" {
				t.Errorf("payment %s before settlement: status %s settled %v", p.TerminalOrderId, p.Status, p.Settled)
			}
			if date == "" {
				date = p.BusinessDate
			} else if p.BusinessDate != date {
				t.Fatalf("payments on business dates %s and %s: the sales crossed a cutover; run again", date, p.BusinessDate)
			}
		}
	}
	srv.stop(t)

	// Phase 2: the server with the default calendar, under which D has ended.
	srv = sys.serve(t, "settlement")
	d, err := calendar.ParseDate(date)
	if err != nil {
		t.Fatal(err)
	}
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	if cal := (calendar.Calendar{Zone: shanghai}); !cal.Ended(d, time.Now()) {
		t.Fatalf("business date %s has not ended in Asia/Shanghai", date)
	}

	// The POSP's file: every outcome. Line 1 is the header.
	rec := func(trade, amount, serial, id, mobile, referrer, product string) string {
		return strings.Join([]string{trade, "6225380083477614", amount, serial, "152412390951", "SH01", "POS01",
			"000001", date, "101500", id, mobile, referrer, product}, "|")
	}
	tradeA := date + "0000000001"
	lines := []string{
		"交易id|卡号|金额|流水号|参考号|商户号|终端号|批次号|交易日期|交易时间|身份证号|手机号|推荐人id|产品编号",
		rec(tradeA, "4500.00", "000101", idA, mA, "R01", "1010"),            // 2: matched, activated
		rec(date+"0000000002", "2000.00", "000102", idB, mB, "", "1010"),    // 3: matched, merged …
		rec(date+"0000000003", "2500.00", "000103", idB, mB, "", "1010"),    // 4: … and activated
		rec(date+"0000000004", "3499.00", "000104", idC, mC, "R01", "1011"), // 5: amount mismatch
		rec(date+"0000000005", "1500.00", "000201", idE, mE, "R02", "1012"), // 6: opened from the file
		rec(tradeA, "4500.00", "000101", idA, mA, "R01", "1010"),            // 7: duplicate 交易id
		rec(date+"0000000007", "45.001", "000202", idE, mE, "", "1012"),     // 8: bad line (3 decimals)
		// 9: the document's sample line, 13 fields, dated 20141211: outside
		// the business day, date_mismatch.
		"2020030744015541000101023952001524000539|6225380083477614|0.01|000539|152412390951|307440155410001|01023952|001524|20141211|152412|123456789123456788|15017513750|1234",
		// 10: an ID failing its check digit on a real terminal and product: not openable.
		rec(date+"0000000009", "1500.00", "000203", idBad, mBad, "", "1012"),
	}
	file := []byte(strings.Join(lines, "\r\n") + "\r\n")
	const (
		wantRecords = 9 // data lines: records and the bad line
		wantTotal   = 450000 + 200000 + 250000 + 349900 + 150000 + 450000 + 1 + 150000
	)
	ft := ftptest.Start(t).Subdir(t)
	t.Logf("FTP server %s, directory %s", ft.Addr, ft.Dir)
	ft.Upload(t, date+".txt", file)

	vars := map[string]string{
		"MAPFRONT_GRPC_ADDR":        srv.grpcAddr,
		"MAPFRONT_GRPC_TIMEOUT":     "10s",
		"MAPFRONT_SUBMIT_TIMEOUT":   "30s",
		"MAPFRONT_FTP_ADDR":         ft.Addr,
		"MAPFRONT_FTP_USER":         ft.User,
		"MAPFRONT_FTP_PASSWORD":     ft.Password,
		"MAPFRONT_FTP_DIR":          ft.Dir,
		"MAPFRONT_FTP_DIAL_TIMEOUT": "5s",
		"MAPFRONT_FTP_TIMEOUT":      "10s",
		"MAPFRONT_SETTLE_WORKDIR":   t.TempDir(),
		// The stability check's two looks, short for the test.
		"MAPFRONT_SETTLE_STABLE_INTERVAL": "200ms",
	}
	maps.Copy(vars, mtlstest.Env(sys.pki.Client("settlement")))

	// Settle D.
	r := settleCmd(ctx, vars, time.Now, "run", "--date", date)
	if r.code != cli.ExitOK {
		srv.dumpLog(t)
		t.Fatalf("run --date %s: exit %d\nstdout:\n%s\nstderr:\n%s", date, r.code, r.stdout, r.stderr)
	}
	sum := sha256.Sum256(file)
	wantExceptions := map[string][2]int64{ // type → count, amount
		"amount_mismatch":   {1, 349900},
		"not_openable":      {1, 150000},
		"date_mismatch":     {1, 1},
		"duplicate":         {1, 450000},
		"missing_from_file": {1, 150000},
		"bad_line":          {1, 0},
	}
	batch := srv.getBatch(t, ctx, date)
	checkReport(t, batch, date, hex.EncodeToString(sum[:]), wantRecords, wantTotal, wantExceptions)
	if batch.RepeatedSubmission {
		t.Error("first submission reported as repeated")
	}
	for _, re := range []string{
		`Business date\s+` + date, `Status\s+settled`, `File\s+` + date + `\.txt`,
		`Records in file\s+9\s+19,999\.01`, `Matched\s+3\s`, `Opened from records\s+1\s`, `Merged\s+1\s`, `Activated\s+3\s`,
		`Exception amount_mismatch\s+1\s+3,499\.00`, `Exception not_openable\s+1\s+1,500\.00`, `Exception date_mismatch\s+1\s+0\.01`,
		`Exception duplicate\s+1\s+4,500\.00`, `Exception missing_from_file\s+1\s+1,500\.00`,
		`Exception overpaid\s+0\s+0\.00`, `Exception bad_line\s+1\s+0\.00`, `Exceptions in all\s+6\s+10,999\.01`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("printed report lacks /%s/:\n%s", re, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "submitted before") {
		t.Errorf("first run says repeated:\n%s", r.stdout)
	}
	printed := r.stdout
	if rp := settleCmd(ctx, vars, time.Now, "report", "--date", date); rp.code != 0 || rp.stdout != r.stdout {
		t.Errorf("report --date %s: exit %d, differs from run's report:\n%s\nstderr %s", date, rp.code, rp.stdout, rp.stderr)
	}

	// The cards: the three activated hold their face value and can pay; the
	// mismatched and the missing one stay pending.
	cardA := srv.card(t, ctx, mA, "1010", "active", 500000)
	cardB := srv.card(t, ctx, mB, "1010", "active", 500000)
	cardE := srv.card(t, ctx, mE, "1012", "active", 200000)
	cardC := srv.card(t, ctx, mC, "1011", "pending", 0)
	srv.card(t, ctx, mD, "1012", "pending", 0)
	for i, p := range []struct {
		account, id string
		sum, face   int64
		mobile      string
		product     string
	}{
		{cardA, idA, 12345, 500000, mA, "1010"},
		{cardB, idB, 499999, 500000, mB, "1010"},
		{cardE, idE, 200000, 200000, mE, "1012"},
	} {
		serial := fmt.Sprintf("%06d", 301+i)
		order, err := srv.pay(t, ctx, sys.pinBlock(t, lastSix(p.id), p.account), p.account, serial, p.sum)
		if code := errcode(err); code != 0 {
			t.Errorf("pay %d from %s: errcode %d (%v)", p.sum, p.account, code, err)
			continue
		}
		if order.Status != mapfrontv1.PaymentStatus_PAYMENT_STATUS_PAID || order.GetAccountId() != p.account || order.GetBalance() != p.face-p.sum {
			t.Errorf("pay %d from %s: status %v account %s balance %d, want PAYMENT_STATUS_PAID, %s, %d",
				p.sum, p.account, order.Status, order.GetAccountId(), order.GetBalance(), p.account, p.face-p.sum)
		}
		srv.card(t, ctx, p.mobile, p.product, "active", p.face-p.sum)
	}
	// A card the file did not confirm cannot pay.
	if _, err := srv.pay(t, ctx, sys.pinBlock(t, lastSix(idC), cardC), cardC, "000309", 100); errcode(err) != 10006 {
		t.Errorf("pay from the pending card %s: errcode %d (%v), want 10006", cardC, errcode(err), err)
	}

	// The queue holds the exceptions, each with its references.
	list, err := srv.admin.ListExceptions(ctx, &mapfrontv1.ListExceptionsRequest{BusinessDate: date, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	byType := map[string][]*mapfrontv1.Exception{}
	for _, e := range list.Exceptions {
		byType[enumtext.Word(e.Type)] = append(byType[enumtext.Word(e.Type)], e)
		if e.State != mapfrontv1.ExceptionState_EXCEPTION_STATE_OPEN || e.BusinessDate != date {
			t.Errorf("exception %d: state %s date %s", e.Id, e.State, e.BusinessDate)
		}
	}
	for typ, want := range wantExceptions {
		if int64(len(byType[typ])) != want[0] {
			t.Errorf("queue holds %d %s, want %d", len(byType[typ]), typ, want[0])
		}
	}
	if len(list.Exceptions) != 6 {
		t.Errorf("queue holds %d items, want 6", len(list.Exceptions))
	}
	mismatch := first(byType["amount_mismatch"])
	if mismatch == nil || mismatch.LineNo != 5 || mismatch.Amount != 349900 || mismatch.Expected != 350000 ||
		mismatch.TerminalOrderId != "000104" || mismatch.OrderId != orderC.OrderId {
		t.Errorf("amount mismatch item %v", mismatch)
	}
	if e := first(byType["missing_from_file"]); e == nil || e.TerminalOrderId != "000105" || e.Expected != 150000 ||
		e.OrderId != orderD.OrderId {
		t.Errorf("missing item %v", e)
	}
	if e := first(byType["duplicate"]); e == nil || e.LineNo != 7 || e.TradeId != tradeA {
		t.Errorf("duplicate item %v", e)
	}
	if e := first(byType["bad_line"]); e == nil || e.LineNo != 8 {
		t.Errorf("bad line item %v", e)
	}
	notOpenable := map[int64]*mapfrontv1.Exception{}
	for _, e := range byType["not_openable"] {
		notOpenable[e.LineNo] = e
	}
	// The sample line is dated 20141211: applied to nothing.
	if e := first(byType["date_mismatch"]); e == nil || e.LineNo != 9 || e.Amount != 1 || e.TerminalId != "01023952" ||
		!strings.Contains(e.Detail, "20141211") {
		t.Errorf("sample line item %v", e)
	}
	if e := notOpenable[10]; e == nil || e.Amount != 150000 || !strings.Contains(e.Detail, "校验位") {
		t.Errorf("bad ID item %v", e)
	}
	if strings.Contains(fmt.Sprint(list.Exceptions), idBad) || strings.Contains(fmt.Sprint(list.Exceptions), "123456789123456788") {
		t.Error("the queue holds a whole ID number")
	}
	// … and the command lists them.
	r = settleCmd(ctx, vars, time.Now, "exceptions", "list", "--date", date)
	if r.code != 0 {
		t.Fatalf("exceptions list: exit %d: %s", r.code, r.stderr)
	}
	for _, e := range list.Exceptions {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^%d\s+%s\s+%s\s+open\s`, e.Id, enumtext.Word(e.Type), date)).MatchString(r.stdout) {
			t.Errorf("exceptions list lacks item %d (%s):\n%s", e.Id, e.Type, r.stdout)
		}
	}

	// Resolving twice is once.
	id := fmt.Sprint(mismatch.GetId())
	r = settleCmd(ctx, vars, time.Now, "exceptions", "resolve", id, "--action", "ignore", "--operator", "t", "--note", "first")
	if r.code != 0 || !strings.Contains(r.stdout, "Exception "+id+" resolved.") {
		t.Fatalf("resolve: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	resolved := srv.getException(t, ctx, mismatch.GetId())
	if resolved.State != mapfrontv1.ExceptionState_EXCEPTION_STATE_RESOLVED || resolved.Action != mapfrontv1.ExceptionAction_EXCEPTION_ACTION_IGNORE || resolved.Operator != "settlement (t)" || resolved.Note != "first" ||
		resolved.ResolvedAt == "" {
		t.Errorf("after resolve: %v", resolved)
	}
	r = settleCmd(ctx, vars, time.Now, "exceptions", "resolve", id, "--action", "activate", "--operator", "u", "--note", "second")
	if r.code != 0 || !strings.Contains(r.stdout, "had already been resolved; nothing changed") {
		t.Errorf("second resolve: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if again := srv.getException(t, ctx, mismatch.GetId()); !proto.Equal(again, resolved) {
		t.Errorf("second resolve changed the item:\n%v\nwas\n%v", again, resolved)
	}
	// The queue records the certificate's identity; --operator is only a
	// display name after it. The resolution is in the audit trail, which
	// the auditor reads with `settlement audit`; the second call changed
	// nothing and is answered read-only (a money-moving action on a
	// resolved item never reaches the store's resolution), so it is not.
	asAuditor := maps.Clone(vars)
	maps.Copy(asAuditor, mtlstest.Env(sys.pki.Client("auditor")))
	r = settleCmd(ctx, asAuditor, time.Now, "audit", "--target", "exception:"+id)
	if r.code != 0 || strings.Count(r.stdout, "/mapfront.v1.AdminService/ResolveException") != 1 ||
		!regexp.MustCompile(`(?m)\ssettlement\s+settlement\s+/mapfront.v1.AdminService/ResolveException\s+exception:`+id+`\s+ok\s+\{.*"operator": "settlement \(t\)"`).MatchString(r.stdout) {
		t.Errorf("settlement audit --target exception:%s: exit %d\n%s\n%s", id, r.code, r.stdout, r.stderr)
	}
	if r = settleCmd(ctx, vars, time.Now, "audit"); r.code != 1 || !strings.Contains(r.stderr, "PermissionDenied") {
		t.Errorf("settlement audit as the settlement identity: exit %d, want a refusal\n%s", r.code, r.stderr)
	}
	srv.card(t, ctx, mC, "1011", "pending", 0)
	if open, err := srv.admin.ListExceptions(ctx, &mapfrontv1.ListExceptionsRequest{State: mapfrontv1.ExceptionState_EXCEPTION_STATE_OPEN, BusinessDate: date}); err != nil || len(open.Exceptions) != 5 {
		t.Errorf("open items after resolving one: %d, %v", len(open.GetExceptions()), err)
	}

	// Four eyes (SPEC section 7): activating the missing sale's card is a
	// proposal; the settlement identity that filed it cannot approve it; a
	// supervisor does, and the card holds its face value.
	missingID := fmt.Sprint(first(byType["missing_from_file"]).GetId())
	r = settleCmd(ctx, vars, time.Now, "exceptions", "resolve", missingID, "--action", "activate", "--note", "POSP确认")
	m := regexp.MustCompile(`needs a supervisor's approval; proposal (\d+) filed by settlement`).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || !strings.Contains(r.stdout, "Nothing has moved yet") {
		t.Fatalf("resolve --action activate: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	srv.card(t, ctx, mD, "1012", "pending", 0)
	if r = settleCmd(ctx, vars, time.Now, "proposals", "approve", m[1]); r.code != 1 || !strings.Contains(r.stderr, "PermissionDenied") {
		t.Errorf("approve as the proposer's identity: exit %d, want a refusal\n%s", r.code, r.stderr)
	}
	asSupervisor := maps.Clone(vars)
	maps.Copy(asSupervisor, mtlstest.Env(sys.pki.Client("supervisor")))
	if r = settleCmd(ctx, asSupervisor, time.Now, "proposals", "list"); r.code != 0 ||
		!regexp.MustCompile(`(?m)^`+m[1]+`\s+pending\s+resolve_exception\s+exception:`+missingID+`\s+settlement\s`).MatchString(r.stdout) {
		t.Errorf("proposals list: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r = settleCmd(ctx, asSupervisor, time.Now, "proposals", "approve", m[1], "--note", "核对"); r.code != 0 ||
		!strings.Contains(r.stdout, "Proposal "+m[1]+" approved by supervisor (proposed by settlement)") {
		t.Errorf("approve as supervisor: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r = settleCmd(ctx, asSupervisor, time.Now, "proposals", "approve", m[1]); r.code != 0 || !strings.Contains(r.stdout, "already been approved") {
		t.Errorf("approve again: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	srv.card(t, ctx, mD, "1012", "active", 200000)

	// The same file again changes nothing and answers the same report.
	ledger := srv.verifyLedger(t, ctx)
	r = settleCmd(ctx, vars, time.Now, "run", "--date", date)
	if r.code != cli.ExitOK || !strings.HasPrefix(r.stdout, printed) ||
		!strings.Contains(r.stdout[len(printed):], "The same file had been submitted before") {
		t.Errorf("second run: exit %d, want 0 and the first report with the repeated note\nstdout:\n%s\nstderr:\n%s",
			r.code, r.stdout, r.stderr)
	}
	if again := srv.getBatch(t, ctx, date); !proto.Equal(again, batch) {
		t.Errorf("batch after the same file again:\n%v\nwas\n%v", again, batch)
	}
	if after := srv.verifyLedger(t, ctx); after.Transactions != ledger.Transactions || after.Postings != ledger.Postings {
		t.Errorf("the same file again moved money: %d transactions, %d postings; were %d, %d",
			after.Transactions, after.Postings, ledger.Transactions, ledger.Postings)
	}
	if all, err := srv.admin.ListExceptions(ctx, &mapfrontv1.ListExceptionsRequest{BusinessDate: date}); err != nil || len(all.Exceptions) != 6 {
		t.Errorf("items after the same file again: %d, %v", len(all.GetExceptions()), err)
	}
	srv.card(t, ctx, mA, "1010", "active", 500000-12345)

	// A date whose file never comes: the job waits until its deadline, then
	// records the batch as file-missing and exits 3. The deadline of a past
	// date is its end plus MAPFRONT_SETTLE_DEADLINE, long gone on the real
	// clock, so the command's clock starts 4 s before it (room for three
	// retries 400 ms apart even on a loaded machine).
	missing := d.AddDays(-1)
	vars["MAPFRONT_SETTLE_DEADLINE"] = "1h"
	vars["MAPFRONT_SETTLE_RETRY_INTERVAL"] = "400ms"
	giveUp := calendar.Calendar{Zone: shanghai, Offset: 30 * time.Minute, Deadline: time.Hour}.GiveUpTime(missing)
	shift := time.Until(giveUp.Add(-4 * time.Second))
	waitStart := time.Now()
	r = settleCmd(ctx, vars, func() time.Time { return time.Now().Add(shift) }, "run", "--date", missing.String())
	waited := time.Since(waitStart)
	if r.code != cli.ExitFileMissing || !strings.Contains(r.stderr, "FILE MISSING") {
		t.Errorf("run --date %s without a file: exit %d, want 3\nstdout:\n%s\nstderr:\n%s", missing, r.code, r.stdout, r.stderr)
	}
	if tries := strings.Count(r.stderr, "will try again"); tries < 3 || waited < 3500*time.Millisecond || waited > 20*time.Second {
		t.Errorf("gave up after %v and %d retries, want about 4s and at least 3", waited, tries)
	}
	if b := srv.getBatch(t, ctx, missing.String()); b.Status != mapfrontv1.BatchState_BATCH_STATE_FILE_MISSING {
		t.Errorf("batch of %s: status %s, want file_missing", missing, b.Status)
	}
	if !regexp.MustCompile(`Status\s+file_missing`).MatchString(r.stdout) {
		t.Errorf("file-missing report not printed:\n%s", r.stdout)
	}
	if b := srv.getBatch(t, ctx, date); !proto.Equal(b, batch) {
		t.Errorf("batch of %s changed: %v", date, b)
	}

	if v := srv.verifyLedger(t, ctx); !v.Ok {
		t.Errorf("ledger does not prove: %v", v)
	}
}

// checkReport compares a batch report with what the file must give.
func checkReport(t *testing.T, b *mapfrontv1.BatchReport, date, sha string, records, total int64, exceptions map[string][2]int64) {
	t.Helper()
	if b.BusinessDate != date || b.Status != mapfrontv1.BatchState_BATCH_STATE_SETTLED || b.FileName != date+".txt" || b.Sha256 != sha ||
		b.Records != records || b.TotalFen != total || b.Matched != 3 || b.Opened != 1 || b.Merged != 1 ||
		b.Activated != 3 || b.SettledAt == "" {
		t.Errorf("report %v\nwant date %s settled file %s.txt sha %s records %d total %d matched 3 opened 1 merged 1 activated 3",
			b, date, date, sha, records, total)
	}
	got := map[string][2]int64{}
	for _, e := range b.Exceptions {
		if e.Count != 0 || e.Amount != 0 {
			got[enumtext.Word(e.Type)] = [2]int64{e.Count, e.Amount}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(exceptions) {
		t.Errorf("exceptions %v, want %v", got, exceptions)
	}
	if len(b.Exceptions) != 8 {
		t.Errorf("report lists %d exception types, want all 8", len(b.Exceptions))
	}
}

func first(es []*mapfrontv1.Exception) *mapfrontv1.Exception {
	if len(es) == 0 {
		return nil
	}
	return es[0]
}

func ptr(n int64) *int64 { return &n }

// gbID completes 17 digits with their GB 11643 check character.
func gbID(body string) string {
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := range 17 {
		sum += int(body[i]-'0') * weights[i]
	}
	return body + string("10X98765432"[sum%11])
}

// wrongCheck returns a check character other than c.
func wrongCheck(c string) string {
	if c == "1" {
		return "2"
	}
	return "1"
}

// lastSix is the initial password of policy id-last6: X read as 0.
func lastSix(id string) string { return strings.ReplaceAll(id[len(id)-6:], "X", "0") }

// errcode is the partner errcode of a gRPC call's error: 0 for success.
func errcode(err error) int32 {
	if err == nil {
		return 0
	}
	for _, d := range status.Convert(err).Details() {
		if e, ok := d.(*mapfrontv1.ErrorDetail); ok {
			return e.Errcode
		}
	}
	return -1
}

// cmdResult is one run of the settlement command.
type cmdResult struct {
	code           int
	stdout, stderr string
}

// settleCmd runs the settlement command whole, with vars as its
// environment and now as its clock; it sleeps for real.
func settleCmd(ctx context.Context, vars map[string]string, now func() time.Time, args ...string) cmdResult {
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, args, cli.Env{
		Stdout: &stdout,
		Stderr: &stderr,
		Getenv: func(k string) string { return vars[k] },
		Now:    now,
		Sleep:  fetch.Sleep,
	})
	return cmdResult{code, stdout.String(), stderr.String()}
}

// e2eSystem is the server binary with its database and master key.
type e2eSystem struct {
	bin, dir string
	env      []string
	pki      *mtlstest.PKI
}

// e2eRoles: the test's own client holds every role; the settlement command
// runs as "settlement".
const e2eRoles = "e2e=posp,settlement,operator,admin,auditor\nsettlement=settlement\nauditor=auditor\nsupervisor=supervisor\n"

func newE2ESystem(t testing.TB) *e2eSystem {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	build := exec.Command("go", "build", "-o", bin, "mapfront/server")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the server: %v\n%s", err, out)
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		t.Fatal(err)
	}
	// The server's configuration is what this test says: nothing inherited.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAPFRONT_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			env = append(env, kv)
		}
	}
	p := mtlstest.New(t)
	roles := filepath.Join(dir, "roles")
	if err := os.WriteFile(roles, []byte(e2eRoles), 0o600); err != nil {
		t.Fatal(err)
	}
	env = append(env, "MAPFRONT_DATABASE_URL="+newE2EDatabase(t), "MAPFRONT_MASTER_KEY="+hex.EncodeToString(key[:]),
		"MAPFRONT_LOG_LEVEL=info", "MAPFRONT_ROLES_FILE="+roles)
	for k, v := range mtlstest.Env(p.Server()) {
		env = append(env, k+"="+v)
	}
	return &e2eSystem{bin: bin, dir: dir, env: env, pki: p}
}

// newE2EDatabase creates an empty database for t and returns its URL (as
// server/internal/pgtest does; that package is internal to server/).
func newE2EDatabase(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("MAPFRONT_TEST_DATABASE_URL")
	if admin == "" {
		admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to PostgreSQL (set MAPFRONT_TEST_DATABASE_URL): %v", err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "mapfront_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0 ENCODING 'UTF8'`); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// run runs a subcommand of the server binary to completion.
func (s *e2eSystem) run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("server %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// pinBlock is the paymentCodeDES a terminal with the demo TPK sends.
func (s *e2eSystem) pinBlock(t testing.TB, pin, consumer string) string {
	t.Helper()
	return strings.TrimSpace(s.run(t, "pinblock", "-pin", pin, "-consumer", consumer))
}

// e2eServer is a running `server serve` and its clients.
type e2eServer struct {
	grpcAddr string
	// settlementTLS is the settlement command's certificate environment
	// (identity settlement), for the command's runs against this server.
	settlementTLS map[string]string
	cmd           *exec.Cmd
	logPath       string
	done          chan struct{}
	stopOnce      sync.Once
	conn          *grpc.ClientConn
	offline       mapfrontv1.OfflineServiceClient
	admin         mapfrontv1.AdminServiceClient
	settlement    mapfrontv1.SettlementServiceClient
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serve starts `server serve` on free loopback ports and waits until
// /readyz answers; the process is stopped when the test ends.
func (s *e2eSystem) serve(t testing.TB, name string, args ...string) *e2eServer {
	t.Helper()
	grpcAddr, httpAddr := freePort(t), freePort(t)
	logPath := filepath.Join(s.dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(s.bin, append([]string{"serve", "-grpc-addr", grpcAddr, "-http-addr", httpAddr}, args...)...)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	srv := &e2eServer{grpcAddr: grpcAddr, settlementTLS: mtlstest.Env(s.pki.Client("settlement")), cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(srv.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			srv.dumpLog(t)
		}
		srv.stop(t)
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-srv.done:
			srv.dumpLog(t)
			t.Fatalf("server %s exited before it was ready", name)
		default:
		}
		if time.Now().After(deadline) {
			srv.dumpLog(t)
			t.Fatalf("server %s not ready: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	creds, err := mtls.DialCredentials(grpcAddr, s.pki.Client("e2e"), false)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(grpcAddr, creds)
	if err != nil {
		t.Fatal(err)
	}
	srv.conn = conn
	srv.offline = mapfrontv1.NewOfflineServiceClient(conn)
	srv.admin = mapfrontv1.NewAdminServiceClient(conn)
	srv.settlement = mapfrontv1.NewSettlementServiceClient(conn)
	return srv
}

// stop ends the server gracefully (SIGTERM), killing it if it lingers.
func (s *e2eServer) stop(t testing.TB) {
	s.stopOnce.Do(func() {
		if s.conn != nil {
			s.conn.Close()
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Errorf("server did not stop on SIGTERM; killing it")
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
}

func (s *e2eServer) dumpLog(t testing.TB) {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 20000 {
		b = b[len(b)-20000:]
	}
	t.Logf("server log %s:\n%s", filepath.Base(s.logPath), b)
}

// openCard sells a card on SH01/ST01/POS01, batch 000001; paySum nil is
// the full price.
func (s *e2eServer) openCard(t testing.TB, ctx context.Context, id, mobile, product, serial string, paySum *int64) *mapfrontv1.CardOrder {
	t.Helper()
	resp, err := s.offline.OpenCard(ctx, &mapfrontv1.OpenCardRequest{
		IdNumber: id, MobileNum: mobile, Referrer: "R01", SellerId: "SH01", StoreId: "ST01", TerminalId: "POS01",
		BatchNo: "000001", OperatorId: "op1", TerminalOrderId: serial, ProductId: product, PaySum: paySum,
	})
	if err != nil {
		s.dumpLog(t)
		t.Fatalf("open_card %s: errcode %d: %v", serial, errcode(err), err)
	}
	return resp.Order
}

// pay spends sum from an account on SH01/ST01/POS01, batch 000002.
func (s *e2eServer) pay(t testing.TB, ctx context.Context, block, account, serial string, sum int64) (*mapfrontv1.PaymentOrder, error) {
	t.Helper()
	resp, err := s.offline.Pay(ctx, &mapfrontv1.PayRequest{Order: &mapfrontv1.PayOrderInput{
		ConsumerId: account, PaymentCodeDes: block, Sum: &sum, SellerId: "SH01", StoreId: "ST01", TerminalId: "POS01",
		OperatorId: "op1", BatchNo: "000002", TerminalOrderId: serial,
	}})
	return resp.GetOrder(), err
}

// card checks the customer's card of product and returns its account id.
func (s *e2eServer) card(t testing.TB, ctx context.Context, mobile, product, wantStatus string, wantBalance int64) string {
	t.Helper()
	resp, err := s.admin.GetCustomer(ctx, &mapfrontv1.GetCustomerRequest{MobileNum: mobile})
	if err != nil {
		t.Fatalf("GetCustomer %s: %v", mobile, err)
	}
	for _, a := range resp.GetCustomer().GetAccounts() {
		if a.Kind == "card" && a.ProductId == product {
			if enumtext.Word(a.Status) != wantStatus || a.Balance != wantBalance {
				t.Errorf("card %s of %s: %s, balance %d; want %s, %d", a.AccountId, mobile, a.Status, a.Balance, wantStatus, wantBalance)
			}
			return a.AccountId
		}
	}
	t.Fatalf("customer %s has no card of %s: %v", mobile, product, resp.GetCustomer())
	return ""
}

func (s *e2eServer) getBatch(t testing.TB, ctx context.Context, date string) *mapfrontv1.BatchReport {
	t.Helper()
	resp, err := s.settlement.GetBatch(ctx, &mapfrontv1.GetBatchRequest{BusinessDate: date})
	if err != nil {
		t.Fatalf("GetBatch %s: %v", date, err)
	}
	return resp.Report
}

func (s *e2eServer) getException(t testing.TB, ctx context.Context, id int64) *mapfrontv1.Exception {
	t.Helper()
	resp, err := s.admin.GetException(ctx, &mapfrontv1.GetExceptionRequest{Id: id})
	if err != nil {
		t.Fatalf("GetException %d: %v", id, err)
	}
	return resp.Exception
}

func (s *e2eServer) verifyLedger(t testing.TB, ctx context.Context) *mapfrontv1.VerifyLedgerResponse {
	t.Helper()
	v, err := s.admin.VerifyLedger(ctx, &mapfrontv1.VerifyLedgerRequest{})
	if err != nil {
		t.Fatalf("VerifyLedger: %v", err)
	}
	if !v.Ok {
		t.Errorf("ledger does not prove: %v", v)
	}
	return v
}
