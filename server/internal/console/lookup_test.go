package console_test

import (
	"bytes"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"mapfront/server/internal/console"
	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pinblock"
)

// lockedBuffer is a log sink the console's handlers may write concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

const (
	demoMobile = "13912345678"
	demoID     = "11010519491231002X"
)

// A customer is found by the whole ID number, typed in a POST: the page
// shows the customer with the masked ID only, never the whole number (nor
// does the log); an unregistered ID finds nothing; a malformed one is a
// 10001 refusal. The auditor may search too.
func TestCustomerByID(t *testing.T) {
	s := newSystem(t)
	var logs lockedBuffer
	h, err := console.New(console.Options{Admin: s.admin, Batches: s.store, Users: s.store, Now: s.clock.Now,
		Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptestServer(t, h)
	masked := mapfront.MaskIDNumber(demoID)
	for _, user := range []string{"alice", "carol"} {
		c := newClient(t, srv)
		if code, _, _ := c.signIn(user, s.password(user)); code != http.StatusSeeOther {
			t.Fatalf("%s signs in: %d", user, code)
		}
		if code, _, body := c.do("GET", "/customers", nil); code != http.StatusOK || !strings.Contains(body, `action="/customers/by-id"`) {
			t.Fatalf("%s: customers page %d without the ID search", user, code)
		}
		// Lower-case x is the same ID number.
		for _, id := range []string{demoID, strings.ToLower(demoID)} {
			code, _, body := c.do("POST", "/customers/by-id", url.Values{"csrf": {c.csrf}, "id_number": {id}, "back": {"/customers"}})
			if code != http.StatusOK || !strings.Contains(body, demoMobile) || !strings.Contains(body, masked) || !strings.Contains(body, "1010123412341234") {
				t.Errorf("%s searches %s: %d, want the demo customer with %s:\n%s", user, id, code, masked, body)
			}
			if strings.Contains(strings.ToUpper(body), demoID) {
				t.Errorf("%s: the page holds the whole ID number", user)
			}
		}
		other := checkDigit("11010519800101001")
		code, _, body := c.do("POST", "/customers/by-id", url.Values{"csrf": {c.csrf}, "id_number": {other}})
		if code != http.StatusOK || !strings.Contains(body, `id="no-match"`) || strings.Contains(body, demoMobile) || strings.Contains(body, other) {
			t.Errorf("%s searches an unregistered ID: %d, want no customer:\n%s", user, code, body)
		}
		// A malformed number is refused with 10001 and returns to the page.
		code, loc, _ := c.do("POST", "/customers/by-id", url.Values{"csrf": {c.csrf}, "id_number": {"110105194912310021"}, "back": {"/customers"}})
		if code != http.StatusSeeOther || loc != "/customers" {
			t.Errorf("%s: a wrong check digit: %d %q, want back to /customers", user, code, loc)
		}
		if _, _, body := c.do("GET", "/customers", nil); !strings.Contains(body, "10001") || strings.Contains(body, "110105194912310021") {
			t.Errorf("%s: after a malformed ID, want the 10001 refusal without the number:\n%s", user, body)
		}
		// Without the session's CSRF token nothing is searched.
		if code, _, _ := c.do("POST", "/customers/by-id", url.Values{"id_number": {demoID}}); code != http.StatusForbidden {
			t.Errorf("%s: search without the CSRF token: %d, want 403", user, code)
		}
	}
	if l := logs.String(); strings.Contains(strings.ToUpper(l), demoID) {
		t.Errorf("the log holds the whole ID number:\n%s", l)
	}
}

// A terminal key's whole history: a pay and the cancel naming it, a
// declined pay with its errcode, a pay and its reversal, a reversal before
// any pay (tombstone); the auditor sees the same.
func TestOrdersByTerminalKey(t *testing.T) {
	s := newSystem(t)
	key, _ := hex.DecodeString("0123456789ABCDEFFEDCBA9876543210")
	pin, err := pinblock.Build("123456", demoMobile, key, pinblock.DoubleLength)
	if err != nil {
		t.Fatal(err)
	}
	origin := mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op1"}
	pay := func(seq string, sum int64) (*mapfront.PaymentAnswer, error) {
		return s.svc.Pay(s.ctx, &mapfront.PayRequest{Origin: origin, BatchNo: "000002", TerminalOrderID: seq,
			ConsumerID: demoMobile, PINBlock: pin, Sum: sum})
	}
	paid, err := pay("P1", 12345)
	if err != nil {
		t.Fatal(err)
	}
	cancel, err := s.svc.CancelPay(s.ctx, &mapfront.CancelPayRequest{Origin: origin, BatchNo: "000002", TerminalOrderID: "C1", OrderID: paid.OrderID})
	if err != nil {
		t.Fatal(err)
	}
	_, declined := pay("P2", 4_000_000)
	if mapfront.ErrorCode(declined) == mapfront.OK || !mapfront.ErrorCode(declined).Stored() {
		t.Fatalf("a pay beyond the balance: %v, want a stored decline", declined)
	}
	reversed, err := pay("P3", 5000)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []string{"P3", "P4"} {
		if _, err := s.svc.UndoPay(s.ctx, &mapfront.UndoPayRequest{Origin: origin, BatchNo: "000002", TerminalOrderID: seq}); err != nil {
			t.Fatalf("undo %s: %v", seq, err)
		}
	}

	for _, user := range []string{"alice", "carol"} {
		c := newClient(t, s.url)
		if code, _, _ := c.signIn(user, s.password(user)); code != http.StatusSeeOther {
			t.Fatalf("%s signs in: %d", user, code)
		}
		get := func(seq string) string {
			t.Helper()
			code, _, body := c.do("GET", "/orders?terminal=POS01&batch=000002&seq="+seq, nil)
			if code != http.StatusOK {
				t.Fatalf("%s: key %s: %d", user, seq, code)
			}
			return body
		}
		rows := func(body, event string) []string {
			var out []string
			for _, r := range strings.Split(body, "<tr")[1:] {
				if strings.Contains(r, `class="ev-`+event+`"`) {
					out = append(out, r)
				}
			}
			return out
		}
		p1 := get("P1")
		if r := rows(p1, "pay"); len(r) != 1 || !strings.Contains(r[0], paid.OrderID) || !strings.Contains(r[0], "123.45") || !strings.Contains(r[0], "cancelled") {
			t.Errorf("%s: P1's pay: %q", user, r)
		}
		if r := rows(p1, "cancel"); len(r) != 1 || !strings.Contains(r[0], cancel.OrderID) || !strings.Contains(r[0], paid.OrderID) || !strings.Contains(r[0], "C1") || !strings.Contains(r[0], "消费撤销") {
			t.Errorf("%s: P1's cancel: %q", user, r)
		}
		if r := rows(get("C1"), "cancel"); len(r) != 1 || !strings.Contains(r[0], cancel.OrderID) || !strings.Contains(r[0], "123.45") {
			t.Errorf("%s: C1 names its cancel: %q", user, r)
		}
		p2 := get("P2")
		if r := rows(p2, "decline"); len(r) != 1 || !strings.Contains(r[0], strconv.Itoa(int(mapfront.ErrorCode(declined)))) || len(rows(p2, "pay")) != 0 {
			t.Errorf("%s: P2's decline with errcode %d: %q", user, mapfront.ErrorCode(declined), r)
		}
		p3 := get("P3")
		if r := rows(p3, "pay"); len(r) != 1 || !strings.Contains(r[0], reversed.OrderID) || !strings.Contains(r[0], "50.00") || !strings.Contains(r[0], "reversed") {
			t.Errorf("%s: P3's pay: %q", user, r)
		}
		if r := rows(p3, "reversal"); len(r) != 1 || !strings.Contains(r[0], reversed.OrderID) || !strings.Contains(r[0], "50.00") || !strings.Contains(r[0], "冲正") {
			t.Errorf("%s: P3's reversal: %q", user, r)
		}
		p4 := get("P4")
		if r := rows(p4, "tombstone"); len(r) != 1 || len(rows(p4, "pay")) != 0 {
			t.Errorf("%s: P4's tombstone: %q", user, r)
		}
		if body := get("NOPE"); !strings.Contains(body, `id="no-history"`) {
			t.Errorf("%s: an unknown key shows a history", user)
		}
		// The orderId look-up still works beside it.
		if code, _, body := c.do("GET", "/orders?id="+paid.OrderID, nil); code != http.StatusOK || !strings.Contains(body, `id="order"`) {
			t.Errorf("%s: order by id: %d", user, code)
		}
	}
}
