package console_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"mapfront/server/internal/console"
	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
	"mapfront/server/internal/postgres"
	"mapfront/server/internal/secret"
)

// clock is the store's settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// system is a console on a fresh database with the demo data, three
// accounts (alice operator, bob supervisor, carol auditor; password
// "pw-"+name+"-123") and one queue item: a paid card sale missing from the
// settlement file of 20261126.
type system struct {
	url      string
	store    *postgres.Store
	admin    *mapfront.AdminService
	svc      *mapfront.Service
	clock    *clock
	item     mapfront.Exception
	mobile   string
	ctx      context.Context
	password func(name string) string
}

func newSystem(t *testing.T) *system {
	t.Helper()
	keys, err := secret.Parse(secret.Generate())
	if err != nil {
		t.Fatal(err)
	}
	zone, _ := time.LoadLocation("Asia/Shanghai")
	clk := &clock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, zone)}
	mclock := mapfront.Clock{Zone: zone, Now: clk.Now}
	policy := mapfront.DefaultPolicy()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	store, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.Options{Clock: mclock, Policy: policy,
		NewCustomerPassword: mapfront.InitialPasswordHasher(policy, keys), Log: log, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	admin := mapfront.NewAdminService(store, keys, policy)
	if err := admin.LoadDemo(ctx, "0123456789ABCDEFFEDCBA9876543210"); err != nil {
		t.Fatal(err)
	}
	pw := func(name string) string { return "pw-" + name + "-123" }
	for name, role := range map[string]string{"alice": "operator", "bob": "supervisor", "carol": "auditor"} {
		h, err := console.HashPassword(pw(name))
		if err != nil {
			t.Fatal(err)
		}
		if err := store.UpsertConsoleUser(ctx, name, role, h); err != nil {
			t.Fatal(err)
		}
	}

	// Two card sales of 1,500.00 yuan for product 1012 (face value 2,000.00);
	// the file confirms only the first.
	svc := mapfront.NewService(store, keys, mclock, policy, log)
	sale := func(mobile, id, termOrder string) {
		_, err := svc.OpenCard(ctx, &mapfront.OpenCardRequest{
			Origin:  mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op1"},
			BatchNo: "000001", TerminalOrderID: termOrder, IDNumber: id, Mobile: mobile, ProductID: "1012",
			PaySum: 150000, HasPaySum: true})
		if err != nil {
			t.Fatal(err)
		}
	}
	id1, id2 := checkDigit("11010519900101001"), checkDigit("11010519900101005")
	sale("13800000011", id1, "000001")
	sale("13800000015", id2, "000006")
	clk.set(time.Date(2026, 11, 27, 0, 30, 0, 0, zone))
	rec := mapfront.SettlementRecord{LineNo: 1, TradeID: "T1", CardNo: "6225380083477614", Amount: 150000,
		TerminalOrderID: "000001", ReferenceNo: "152412390951", SellerID: "SH01", TerminalID: "POS01",
		BatchNo: "000001", TradeDate: "20261126", TradeTime: "152412", IDNumber: id1, Mobile: "13800000011",
		Referrer: "R1", ProductID: "1012"}
	sent := false
	_, err = store.SubmitBatch(ctx, mapfront.BatchHeader{BusinessDate: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC),
		FileName: "20261126.txt", SHA256: strings.Repeat("ab", 32), RecordCount: 1, TotalFen: 150000},
		func() (*mapfront.BatchChunk, error) {
			if sent {
				return nil, io.EOF
			}
			sent = true
			return &mapfront.BatchChunk{Records: []mapfront.SettlementRecord{rec}}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	items, err := store.ListExceptions(ctx, mapfront.ExceptionFilter{State: "open"})
	if err != nil || len(items) != 1 || items[0].Type != mapfront.ExMissing {
		t.Fatalf("queue %v %+v", err, items)
	}
	return &system{store: store, admin: admin, svc: svc, clock: clk, item: items[0], mobile: "13800000015", ctx: ctx, password: pw,
		url: serveConsole(t, admin, store, clk, zone)}
}

func serveConsole(t *testing.T, admin *mapfront.AdminService, store *postgres.Store, clk *clock, zone *time.Location) string {
	h, err := console.New(console.Options{Admin: admin, Batches: store, Users: store, Zone: zone, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return httptestServer(t, h)
}

func httptestServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// chromium finds the browser; the test skips only when there is none.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium binary on this machine (CI installs Debian's chromium: .ci/run); browser test skipped")
	return ""
}

// browser is a fresh headless Chromium (its own user-data-dir).
func browser(t *testing.T) context.Context {
	t.Helper()
	// Not t.TempDir: Chromium's helper processes may still write to their
	// profile for a moment after the browser is gone, which would fail the
	// test in TempDir's cleanup.
	profile, err := os.MkdirTemp("", "mapfront-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 20 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel3)
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// shots is where screenshots go: MAPFRONT_CONSOLE_SCREENSHOTS (docs/console
// when refreshing the committed ones), else a temporary directory.
func shots(t *testing.T) string {
	if d := os.Getenv("MAPFRONT_CONSOLE_SCREENSHOTS"); d != "" {
		return d
	}
	return t.TempDir()
}

func screenshot(dir, name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var buf []byte
		if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil { // quality 100: PNG
			return err
		}
		return os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644)
	})
}

func signIn(base, user, password string) chromedp.Tasks {
	return chromedp.Tasks{
		chromedp.Navigate(base + "/login"),
		chromedp.WaitVisible("#user", chromedp.ByID),
		chromedp.SendKeys("#user", user, chromedp.ByID),
		chromedp.SendKeys("#password", password, chromedp.ByID),
		chromedp.Click("#signin", chromedp.ByID),
		chromedp.WaitVisible("#logout", chromedp.ByID),
	}
}

func signOut() chromedp.Tasks {
	return chromedp.Tasks{chromedp.Click("#logout", chromedp.ByID), chromedp.WaitVisible("#signin", chromedp.ByID)}
}

// post submits a form the page does not offer, with the session's CSRF
// token, and returns the HTTP status: what a user could forge by hand.
func post(path string, fields map[string]string, status *int) chromedp.Action {
	js := `(async () => {
  const body = new URLSearchParams(` + jsonObject(fields) + `);
  body.set("csrf", document.querySelector('input[name=csrf]').value);
  const r = await fetch(` + strconv.Quote(path) + `, {method: "POST", body, redirect: "manual"});
  return r.status;
})()`
	return chromedp.Evaluate(js, status, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) })
}

func jsonObject(m map[string]string) string {
	if m == nil {
		m = map[string]string{}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func text(sel string, out *string) chromedp.Action { return chromedp.Text(sel, out, chromedp.ByQuery) }

// The scenario: operator alice proposes activating the missing
// sale's card; she cannot approve it; supervisor bob approves; the card is
// active with its face value; the audit trail shows both; auditor carol sees
// it all and can change nothing.
func TestConsoleFourEyesInBrowser(t *testing.T) {
	ctx := browser(t)
	s := newSystem(t)
	dir := shots(t)
	id := strconv.FormatInt(s.item.ID, 10)
	var flash, state, queue string
	var status int

	// alice: the queue, the item, a proposal.
	err := chromedp.Run(ctx,
		signIn(s.url, "alice", s.password("alice")),
		chromedp.WaitVisible("#exceptions", chromedp.ByID),
		text("#exceptions", &queue),
		screenshot(dir, "exceptions"),
		chromedp.Navigate(s.url+"/exceptions/"+id),
		chromedp.WaitVisible("#resolve", chromedp.ByID),
		chromedp.SetValue("#action", "activate", chromedp.ByID),
		chromedp.SendKeys("#note", "POSP确认已收款", chromedp.ByID),
		chromedp.Click("#submit-resolve", chromedp.ByID),
		chromedp.WaitVisible("#flash", chromedp.ByID),
		text("#flash", &flash),
		text("#state", &state),
		screenshot(dir, "exception-proposed"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(queue, "文件中没有") || !strings.Contains(queue, "1500.00") {
		t.Errorf("queue page:\n%s", queue)
	}
	if !strings.Contains(flash, "复核提案") || state != "待处理" {
		t.Fatalf("after proposing: flash %q, state %q", flash, state)
	}
	s.card(t, "pending", 0)
	ps, err := s.store.ListProposals(s.ctx, mapfront.ProposalFilter{State: "pending"})
	if err != nil || len(ps) != 1 || ps[0].Proposer != "console/alice" {
		t.Fatalf("pending proposals %v %+v", err, ps)
	}
	pid := strconv.FormatInt(ps[0].ID, 10)

	// alice cannot approve: no button, and a forged POST is refused.
	var approveButtons int
	err = chromedp.Run(ctx,
		chromedp.Navigate(s.url+"/proposals"),
		chromedp.WaitVisible("#proposal-"+pid, chromedp.ByID),
		chromedp.Evaluate(`document.querySelectorAll("button.approve").length`, &approveButtons),
		post("/proposals/"+pid+"/approve", nil, &status),
	)
	if err != nil {
		t.Fatal(err)
	}
	if approveButtons != 0 || status != 403 {
		t.Errorf("alice: %d approve buttons, forged approval answered %d; want none and 403", approveButtons, status)
	}
	s.card(t, "pending", 0)
	if err := chromedp.Run(ctx, signOut()); err != nil {
		t.Fatal(err)
	}

	// bob approves.
	err = chromedp.Run(ctx,
		signIn(s.url, "bob", s.password("bob")),
		chromedp.Navigate(s.url+"/proposals"),
		chromedp.WaitVisible("#proposal-"+pid+" button.approve", chromedp.ByQuery),
		screenshot(dir, "proposals"),
		chromedp.Click("#proposal-"+pid+" button.approve", chromedp.ByQuery),
		chromedp.WaitVisible("#flash", chromedp.ByID),
		text("#flash", &flash),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(flash, "已批准并执行") {
		t.Fatalf("after approving: flash %q", flash)
	}
	s.card(t, "active", 200000)
	if err := chromedp.Run(ctx, signOut()); err != nil {
		t.Fatal(err)
	}

	// carol, auditor: sees the trail, the customer, the batch; changes nothing.
	var trail, customer, detail string
	var resolveForms, unlockButtons int
	err = chromedp.Run(ctx,
		signIn(s.url, "carol", s.password("carol")),
		chromedp.Navigate(s.url+"/audit?target=exception:"+id),
		chromedp.WaitVisible("#audit", chromedp.ByID),
		text("#audit", &trail),
		screenshot(dir, "audit"),
		chromedp.Navigate(s.url+"/exceptions/"+id),
		chromedp.WaitVisible("#exception", chromedp.ByID),
		text("#exception", &detail),
		chromedp.Evaluate(`document.querySelectorAll("#resolve").length`, &resolveForms),
		chromedp.Navigate(s.url+"/customers?mobile="+s.mobile),
		chromedp.WaitVisible("#accounts", chromedp.ByID),
		text("#accounts", &customer),
		chromedp.Evaluate(`document.querySelectorAll("#unlock").length`, &unlockButtons),
		screenshot(dir, "customer"),
		post("/customers/unlock", map[string]string{"mobile": s.mobile}, &status),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(trail, "console/alice") || !strings.Contains(trail, "console/bob") {
		t.Errorf("audit trail lacks an identity:\n%s", trail)
	}
	if !strings.Contains(detail, "已处理") || resolveForms != 0 || unlockButtons != 0 {
		t.Errorf("auditor: item %q, %d resolve forms, %d unlock buttons", detail, resolveForms, unlockButtons)
	}
	if !strings.Contains(customer, "2000.00") {
		t.Errorf("customer page:\n%s", customer)
	}
	if status != 403 {
		t.Errorf("auditor unlock: %d, want 403", status)
	}
	for _, path := range []string{"/proposals/" + pid + "/reject", "/exceptions/" + id + "/resolve", "/accounts/freeze"} {
		if err := chromedp.Run(ctx, post(path, map[string]string{"action": "ignore", "account": "x"}, &status)); err != nil || status != 403 {
			t.Errorf("auditor POST %s: %v %d, want 403", path, err, status)
		}
	}
	// The look-ups: a customer by the whole ID number typed in the form (the
	// page shows it masked only), the card sale's terminal key history.
	var byID, byIDHTML, history string
	err = chromedp.Run(ctx,
		chromedp.Navigate(s.url+"/customers"),
		chromedp.WaitVisible("#id_number", chromedp.ByID),
		chromedp.SendKeys("#id_number", checkDigit("11010519900101005"), chromedp.ByID),
		chromedp.Click("#by-id", chromedp.ByID),
		chromedp.WaitVisible("#customer", chromedp.ByID),
		text("#customer", &byID),
		chromedp.OuterHTML("html", &byIDHTML),
		screenshot(dir, "customer-by-id"),
		chromedp.Navigate(s.url+"/orders?terminal=POS01&batch=000001&seq=000006"),
		chromedp.WaitVisible("#history", chromedp.ByID),
		text("#history", &history),
		screenshot(dir, "order-history"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if whole := checkDigit("11010519900101005"); !strings.Contains(byID, s.mobile) || !strings.Contains(byID, mapfront.MaskIDNumber(whole)) || strings.Contains(byIDHTML, whole) {
		t.Errorf("customer by ID:\n%s", byID)
	}
	if !strings.Contains(history, "开卡付款") || !strings.Contains(history, "1500.00") {
		t.Errorf("terminal key history:\n%s", history)
	}
	var batchText string
	err = chromedp.Run(ctx,
		chromedp.Navigate(s.url+"/batches/20261126"),
		chromedp.WaitVisible("#batch", chromedp.ByID),
		text("#batch", &batchText),
		screenshot(dir, "batch"),
		chromedp.Navigate(s.url+"/ledger"),
		chromedp.WaitVisible("#ledger-ok", chromedp.ByID),
		screenshot(dir, "ledger"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(batchText, "已完成") {
		t.Errorf("batch page:\n%s", batchText)
	}
}

// card checks the missing sale's card.
func (s *system) card(t *testing.T, status string, balance int64) {
	t.Helper()
	c, err := s.store.GetCustomer(s.ctx, s.mobile)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Accounts {
		if a.Kind == "card" {
			if string(a.Status) != status || a.Balance != balance {
				t.Fatalf("card %s: %s %d, want %s %d", a.ID, a.Status, a.Balance, status, balance)
			}
			return
		}
	}
	t.Fatal("no card")
}

// checkDigit completes 17 digits with their GB 11643 check character.
func checkDigit(body string) string {
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := range 17 {
		sum += int(body[i]-'0') * weights[i]
	}
	return body + string("10X98765432"[sum%11])
}
