package console_test

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"mapfront/server/internal/audit"
	"mapfront/server/internal/console"
)

// U+0000 in any field of a console request is the operator's mistake: a
// 10001 refusal naming the field, as the gRPC AdminService answers it
// (grpcapi.RefuseNUL), never the "其它错误" of a database error; nothing
// changes.
func TestNULNamesTheField(t *testing.T) {
	s := newSystem(t)
	var logs lockedBuffer
	h, err := console.New(console.Options{Admin: s.admin, Batches: s.store, Users: s.store, Refusals: s.store,
		Now: s.clock.Now, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptestServer(t, h)
	c := newClient(t, srv)
	if code, _, _ := c.signIn("alice", s.password("alice")); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	c.do("GET", "/customers", nil)
	// A POST goes back to its page with the refusal.
	code, loc, _ := c.do("POST", "/accounts/freeze", url.Values{"csrf": {c.csrf}, "account": {"1010123412341234\x00"},
		"back": {"/customers?mobile=" + demoMobile}})
	if code != http.StatusSeeOther {
		t.Fatalf("freeze with NUL: %d, want a redirect back", code)
	}
	_, _, body := c.do("GET", loc, nil)
	if !strings.Contains(body, "10001") || !strings.Contains(body, "字段account格式错误") {
		t.Errorf("freeze with NUL: want 10001 naming the field account:\n%s", body)
	}
	cv, err := s.store.GetCustomer(s.ctx, demoMobile)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cv.Accounts {
		if a.ID == "1010123412341234" && a.Status != "active" {
			t.Errorf("account %s is %s after a refused freeze, want active", a.ID, a.Status)
		}
	}
	// The refused change is in the audit trail, refused with 10001, the
	// field in its args; the refused reads below are not.
	entries, err := s.store.ListAudit(s.ctx, audit.Filter{Identity: console.IdentityPrefix + "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Method, "/FreezeAccount") || entries[0].Outcome != "refused" ||
		entries[0].Errcode != 10001 || entries[0].Args != `{"field": "account"}` || entries[0].Target != "" {
		t.Errorf("audit trail: %+v, want one refused FreezeAccount, 10001, field account, no target", entries)
	}
	// A GET answers the refusal on its error page.
	code, _, body = c.do("GET", "/orders?terminal=POS01%00&batch=000001&seq=000001", nil)
	if !strings.Contains(body, "10001") || !strings.Contains(body, "字段terminal格式错误") {
		t.Errorf("order lookup with NUL: %d, want 10001 naming the field terminal:\n%s", code, body)
	}
	// A query that does not parse is refused, on a POST as on a GET.
	code, _, _ = c.do("POST", "/accounts/freeze?x=%zz", url.Values{"csrf": {c.csrf}, "account": {"1010123412341234"},
		"back": {"/customers?mobile=" + demoMobile}})
	if _, _, body := c.do("GET", "/customers?mobile="+demoMobile, nil); code != http.StatusSeeOther || !strings.Contains(body, "10001 请求的参数无法解析") {
		t.Errorf("freeze with a bad query: %d, want back with 10001:\n%s", code, body)
	}
	// Invalid UTF-8 is refused the same way.
	code, _, body = c.do("GET", "/orders?id=ud%FF", nil)
	if !strings.Contains(body, "10001") || !strings.Contains(body, "字段id格式错误：不是合法的UTF-8") {
		t.Errorf("order lookup with invalid UTF-8: %d, want 10001 naming the field id:\n%s", code, body)
	}
	// Two refused changes in all (the NUL and the bad query: no field);
	// the refused reads are not recorded.
	if entries, err := s.store.ListAudit(s.ctx, audit.Filter{Identity: console.IdentityPrefix + "alice"}); err != nil ||
		len(entries) != 2 || entries[0].Outcome != "refused" || entries[0].Args != "{}" {
		t.Errorf("audit trail after the refused reads: %+v (%v), want two refused changes, the newest without a field", entries, err)
	}
	// A read the auditor may make is answered only, POST or not.
	a := newClient(t, srv)
	if code, _, _ := a.signIn("carol", s.password("carol")); code != http.StatusSeeOther {
		t.Fatalf("carol signs in: %d", code)
	}
	a.do("GET", "/customers", nil)
	if code, _, _ := a.do("POST", "/customers/by-id", url.Values{"csrf": {a.csrf}, "id_number": {"\x00"}}); code != http.StatusSeeOther {
		t.Errorf("ID search with NUL: %d, want a redirect back with the refusal", code)
	}
	if entries, err := s.store.ListAudit(s.ctx, audit.Filter{Identity: console.IdentityPrefix + "carol"}); err != nil || len(entries) != 0 {
		t.Errorf("a refused read was recorded: %+v (%v)", entries, err)
	}
	// A user name holding NUL is an unknown name, answered without an
	// error in the log.
	if _, _, body := newClient(t, srv).signIn("ali\x00ce", s.password("alice")); !strings.Contains(body, "用户名或密码错误") {
		t.Errorf("sign-in with NUL in the name: want the wrong-password answer:\n%s", body)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("an error was logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "console internal error") {
		t.Errorf("a NUL was logged as an internal error:\n%s", logs.String())
	}
}
