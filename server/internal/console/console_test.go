package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/console"
	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/postgres"
)

// client is a browser without JavaScript: a cookie jar, no redirects
// followed, and the last CSRF token seen on a page.
type client struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

func newClient(t *testing.T, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (c *client) do(method, path string, form url.Values) (int, string, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

func (c *client) signIn(user, password string) (int, string, string) {
	c.do("GET", "/login", nil)
	return c.do("POST", "/login", url.Values{"csrf": {c.csrf}, "user": {user}, "password": {password}})
}

func TestPasswordHash(t *testing.T) {
	h, err := console.HashPassword("correct horse")
	if err != nil || !strings.HasPrefix(h, "$argon2id$v=19$m=") {
		t.Fatalf("hash %q %v", h, err)
	}
	h2, _ := console.HashPassword("correct horse")
	if h == h2 {
		t.Error("two hashes of one password are equal: no salt")
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct horsf": false, "": false} {
		if ok, err := console.VerifyPassword(h, pw); err != nil || ok != want {
			t.Errorf("verify %q: %v %v, want %v", pw, ok, err, want)
		}
	}
	if _, err := console.VerifyPassword("$2a$10$bcrypt", "x"); err == nil {
		t.Error("a non-argon2id hash verified")
	}
}

// Sign-in: a wrong password and an unknown name get the same answer; the
// fifth failure in a row locks the account, even against the right
// password; the sign-in form needs its CSRF token; a session ends when idle.
func TestSignInLockoutCSRFIdle(t *testing.T) {
	s := newSystem(t)
	c := newClient(t, s.url)
	if code, loc, _ := c.do("GET", "/exceptions", nil); code != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("signed out: %d %q, want a redirect to /login", code, loc)
	}
	// No token, or another one: refused before the password is looked at.
	if code, _, _ := c.do("POST", "/login", url.Values{"user": {"alice"}, "password": {s.password("alice")}}); code != http.StatusForbidden {
		t.Errorf("sign-in without the CSRF token: %d, want 403", code)
	}
	_, _, unknown := c.signIn("nobody", "whatever-pw")
	_, _, wrong := c.signIn("alice", "wrong-password")
	if !strings.Contains(unknown, "用户名或密码错误") || !strings.Contains(wrong, "用户名或密码错误") {
		t.Errorf("unknown name and wrong password must answer alike")
	}
	for range 3 {
		c.signIn("alice", "wrong-password")
	}
	if _, _, body := c.signIn("alice", "wrong-password"); !strings.Contains(body, "已锁定") {
		t.Errorf("fifth failure: no lock:\n%s", body)
	}
	if code, _, body := c.signIn("alice", s.password("alice")); code == http.StatusSeeOther || !strings.Contains(body, "已锁定") {
		t.Errorf("right password on a locked account: %d", code)
	}

	// bob signs in; a POST without the session's token is refused and
	// changes nothing; the idle timeout ends the session.
	if code, loc, _ := c.signIn("bob", s.password("bob")); code != http.StatusSeeOther || loc != "/" {
		t.Fatalf("bob signs in: %d %q", code, loc)
	}
	if code, _, _ := c.do("GET", "/proposals", nil); code != http.StatusOK {
		t.Fatalf("proposals: %d", code)
	}
	if code, _, _ := c.do("POST", "/proposals/1/reject", url.Values{"csrf": {"0000"}}); code != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d, want 403", code)
	}
	// A supervisor may not resolve (the table's ResolveException roles).
	if code, _, body := c.do("POST", "/exceptions/1/resolve", url.Values{"csrf": {c.csrf}, "action": {"ignore"}}); code != http.StatusForbidden || !strings.Contains(body, "ResolveException") {
		t.Errorf("supervisor resolves: %d, want 403", code)
	}
	if x, err := s.store.GetException(s.ctx, s.item.ID); err != nil || x.State != mapfront.ExceptionOpen {
		t.Errorf("item after refused POSTs: %v %+v", err, x)
	}
}

// An idle session ends.
func TestIdleSession(t *testing.T) {
	s := newSystem(t)
	h, err := console.New(console.Options{Admin: s.admin, Batches: s.store, Users: s.store, Idle: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptestServer(t, h)
	c := newClient(t, srv)
	if code, _, _ := c.signIn("carol", s.password("carol")); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	if code, _, _ := c.do("GET", "/audit", nil); code != http.StatusOK {
		t.Fatalf("auditor reads the audit trail: %d", code)
	}
	time.Sleep(400 * time.Millisecond)
	if code, loc, _ := c.do("GET", "/audit", nil); code != http.StatusSeeOther || loc != "/login" {
		t.Errorf("after the idle timeout: %d %q, want a redirect to /login", code, loc)
	}
}

// A session ends when its account is given another role or password
// (`server console-user add` again), at the next request: a demoted or
// reset account does not keep its old role until the session goes idle.
func TestSessionEndsWhenAccountChanges(t *testing.T) {
	s := newSystem(t)
	c := newClient(t, s.url)
	if code, _, _ := c.signIn("carol", s.password("carol")); code != http.StatusSeeOther {
		t.Fatalf("carol signs in: %d", code)
	}
	if code, _, _ := c.do("GET", "/audit", nil); code != http.StatusOK {
		t.Fatalf("auditor reads the audit trail: %d", code)
	}
	u, err := s.store.ConsoleUser(s.ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	// Another role, the same password: the session ends.
	if err := s.store.UpsertConsoleUser(s.ctx, "carol", "operator", u.PasswordHash); err != nil {
		t.Fatal(err)
	}
	if code, loc, _ := c.do("GET", "/audit", nil); code != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("after the role changed: %d %q, want a redirect to /login", code, loc)
	}
	// Signed in again, the new role rules.
	if code, _, _ := c.signIn("carol", s.password("carol")); code != http.StatusSeeOther {
		t.Fatalf("carol signs in again: %d", code)
	}
	if code, _, _ := c.do("GET", "/exceptions", nil); code != http.StatusOK {
		t.Fatalf("operator reads the queue: %d", code)
	}
	// A new password, the same role: the session ends.
	h, err := console.HashPassword("another long password")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.UpsertConsoleUser(s.ctx, "carol", "operator", h); err != nil {
		t.Fatal(err)
	}
	if code, loc, _ := c.do("GET", "/exceptions", nil); code != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("after the password was reset: %d %q, want a redirect to /login", code, loc)
	}
	// The old session's cookie does not come back to life.
	if code, loc, _ := c.do("GET", "/exceptions", nil); code != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("the ended session again: %d %q", code, loc)
	}
}

// busyUsers is the real store with the account read failing as a busy
// database does while busy is set (a fault injected for the test).
type busyUsers struct {
	*postgres.Store
	busy atomic.Bool
}

func (f *busyUsers) ConsoleUser(ctx context.Context, name string) (*postgres.ConsoleUser, error) {
	if f.busy.Load() {
		return nil, mapfront.ErrBusy
	}
	return f.Store.ConsoleUser(ctx, name)
}

// An account that cannot be read for a moment (a busy pool, a statement
// timeout) answers that request 503 and keeps the session: only a changed
// or missing account ends it. (Found by review: before, one busy request
// signed the operator out.)
func TestSessionSurvivesABusyAccountRead(t *testing.T) {
	s := newSystem(t)
	users := &busyUsers{Store: s.store}
	zone, _ := time.LoadLocation("Asia/Shanghai")
	h, err := console.New(console.Options{Admin: s.admin, Batches: s.store, Users: users, Zone: zone, Now: s.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, httptestServer(t, h))
	if code, _, _ := c.signIn("carol", s.password("carol")); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	users.busy.Store(true)
	if code, _, body := c.do("GET", "/audit", nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "参考号") {
		t.Errorf("while the account cannot be read: %d, want 503 with a reference", code)
	}
	users.busy.Store(false)
	if code, loc, _ := c.do("GET", "/audit", nil); code != http.StatusOK {
		t.Errorf("after one busy request the unchanged account's session is gone: %d %q", code, loc)
	}
}

// state=all, as the settlement command spells it, is every state on the
// queue and the proposals pages (it was refused with 10001).
func TestStateAll(t *testing.T) {
	s := newSystem(t)
	c := newClient(t, s.url)
	if code, _, _ := c.signIn("carol", s.password("carol")); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	if code, _, body := c.do("GET", "/exceptions?state=all", nil); code != http.StatusOK || !strings.Contains(body, `href="/exceptions/`+strconv.FormatInt(s.item.ID, 10)+`"`) {
		t.Errorf("/exceptions?state=all: %d\n%s", code, body)
	}
	if code, _, body := c.do("GET", "/proposals?state=all", nil); code != http.StatusOK || !strings.Contains(body, `id="proposals"`) {
		t.Errorf("/proposals?state=all: %d\n%s", code, body)
	}
}

// An approval whose action a rule refuses leaves the proposal pending; the
// message says so and suggests rejecting it.
func TestRefusedApprovalSuggestsRejecting(t *testing.T) {
	s := newSystem(t)
	ctx := audit.WithActor(s.ctx, audit.Actor{Identity: "admin", Role: "admin", Method: "/mapfront.v1.AdminService/TopUpCash"})
	_, _, p, err := s.admin.SubmitTopUp(ctx, "13912345678", 6_000_000, "till-big-1")
	if err != nil || p == nil {
		t.Fatalf("top-up proposal: %v %+v", err, p)
	}
	cust, err := s.admin.GetCustomer(s.ctx, "13912345678")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cust.Accounts {
		if a.Kind == "cash" {
			if err := s.admin.SetAccountFrozen(s.ctx, a.ID, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := newClient(t, s.url)
	if code, _, _ := c.signIn("bob", s.password("bob")); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	c.do("GET", "/proposals", nil)
	id := strconv.FormatInt(p.ID, 10)
	code, loc, _ := c.do("POST", "/proposals/"+id+"/approve", url.Values{"csrf": {c.csrf}, "back": {"/proposals"}})
	if code != http.StatusSeeOther || loc != "/proposals" {
		t.Fatalf("approve: %d %q", code, loc)
	}
	_, _, page := c.do("GET", "/proposals", nil)
	flash := regexp.MustCompile(`id="flash">([^<]*)<`).FindStringSubmatch(page)
	if flash == nil || !strings.Contains(flash[1], "10006") || !strings.Contains(flash[1], "仍待复核") || !strings.Contains(flash[1], "驳回") {
		t.Errorf("flash after a refused approval: %v", flash)
	}
	if ps, err := s.store.ListProposals(s.ctx, mapfront.ProposalFilter{State: mapfront.ProposalPending}); err != nil || len(ps) != 1 {
		t.Errorf("pending proposals: %v %d", err, len(ps))
	}
	c.do("POST", "/proposals/"+id+"/reject", url.Values{"csrf": {c.csrf}, "back": {"/proposals"}})
	if ps, err := s.store.ListProposals(s.ctx, mapfront.ProposalFilter{State: mapfront.ProposalRejected}); err != nil || len(ps) != 1 {
		t.Errorf("rejected proposals: %v %d", err, len(ps))
	}
}

// A missing_from_file item has no file line and no file amount: the queue
// and the item's page show "-" for its line (not 0) and for its file amount
// (not 0.00); the amount our records expect stands in its own column. Filing its activation is recorded as a
// proposal (ProposeResolution), not as "ResolveException 成功"; the
// supervisor's note on the proposals page reaches the decision.
func TestQueueAmountsProposalTrailAndNote(t *testing.T) {
	s := newSystem(t)
	if s.item.Type.FromFile() || s.item.LineNo != 0 || s.item.Expected == 0 {
		t.Fatalf("want a missing_from_file item: %+v", s.item)
	}
	id := strconv.FormatInt(s.item.ID, 10)
	expected := mapfront.FormatYuan(s.item.Expected)
	alice := newClient(t, s.url)
	if code, _, _ := alice.signIn("alice", s.password("alice")); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	_, _, page := alice.do("GET", "/exceptions", nil)
	row := regexp.MustCompile(`(?s)<tr><td><a href="/exceptions/` + id + `">.*?</tr>`).FindString(page)
	if !strings.Contains(row, `<td class="line">-</td>`) || !regexp.MustCompile(`<td class="num amount"><span[^>]*>-</span></td><td class="num">`+regexp.QuoteMeta(expected)+`</td>`).MatchString(row) {
		t.Errorf("queue row of a missing item: want line -, file amount - and expected %s:\n%s", expected, row)
	}
	_, _, page = alice.do("GET", "/exceptions/"+id, nil)
	if !strings.Contains(page, `<td id="line">-</td>`) || !strings.Contains(page, `<td id="file-amount">-（文件中没有记录）</td>`) {
		t.Errorf("item page: want line - and no file amount:\n%s", page)
	}
	// The card sale's order has no terminal of its own (its payments do):
	// no empty "商户/门店/终端 / /" row.
	if _, _, page := alice.do("GET", "/orders?id="+s.item.OrderID, nil); !strings.Contains(page, `id="order"`) ||
		strings.Contains(page, "<td> /  / </td>") || !strings.Contains(page, "见下方开卡付款") {
		t.Errorf("card order page:\n%s", page)
	}
	code, _, _ := alice.do("POST", "/exceptions/"+id+"/resolve", url.Values{"csrf": {alice.csrf}, "action": {"activate"}, "note": {"POSP确认已收款"}})
	if code != http.StatusSeeOther {
		t.Fatalf("resolve: %d", code)
	}
	ps, err := s.store.ListProposals(s.ctx, mapfront.ProposalFilter{State: mapfront.ProposalPending})
	if err != nil || len(ps) != 1 {
		t.Fatalf("pending proposals: %v %+v", err, ps)
	}
	trail, err := s.store.ListAudit(s.ctx, audit.Filter{Target: "exception:" + id})
	if err != nil || len(trail) != 1 || trail[0].Method != "/mapfront.v1.AdminService/ProposeResolution" || trail[0].Outcome != audit.OK {
		t.Fatalf("trail of the filing: %v %+v", err, trail)
	}
	carol := newClient(t, s.url)
	if code, _, _ := carol.signIn("carol", s.password("carol")); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	if _, _, page := carol.do("GET", "/audit?target=exception:"+id, nil); !strings.Contains(page, "提交处理提案") ||
		strings.Contains(page, "ResolveException") {
		t.Errorf("audit page of the filing:\n%s", page)
	}

	bob := newClient(t, s.url)
	if code, _, _ := bob.signIn("bob", s.password("bob")); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	pid := strconv.FormatInt(ps[0].ID, 10)
	_, _, page = bob.do("GET", "/proposals", nil)
	form := regexp.MustCompile(`(?s)<tr id="proposal-` + pid + `">.*?</tr>`).FindString(page)
	if !strings.Contains(form, `<textarea name="note"`) || !strings.Contains(form, `formaction="/proposals/`+pid+`/approve"`) ||
		!strings.Contains(form, `formaction="/proposals/`+pid+`/reject"`) {
		t.Fatalf("proposal row: want a note and both decisions:\n%s", form)
	}
	code, _, _ = bob.do("POST", "/proposals/"+pid+"/approve", url.Values{"csrf": {bob.csrf}, "back": {"/proposals"}, "note": {"已核对POSP回单"}})
	if code != http.StatusSeeOther {
		t.Fatalf("approve: %d", code)
	}
	p, err := s.store.GetProposal(s.ctx, ps[0].ID)
	if err != nil || p.State != mapfront.ProposalApproved || p.DecisionNote != "已核对POSP回单" {
		t.Fatalf("approved proposal: %v %+v", err, p)
	}
	if _, _, page := bob.do("GET", "/proposals?state=all", nil); !strings.Contains(page, "（已核对POSP回单）") {
		t.Errorf("proposals page lacks the decision's note")
	}
}
