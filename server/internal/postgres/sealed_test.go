package postgres

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
	"mapfront/server/internal/secret"
)

// keyedEnv opens a store on the database at url with the given keys, as
// the server does at start (migrations, then the ID numbers and open_card
// fingerprints still in clear sealed), sharing the test clock clk.
func keyedEnv(t *testing.T, url string, keys *secret.Keys, clk *testClock) *env {
	t.Helper()
	ctx := context.Background()
	clock := mapfront.Clock{Zone: clk.now.Location(), Now: clk.Now}
	policy := mapfront.DefaultPolicy()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(ctx, url, Options{Clock: clock, Policy: policy, NewCustomerPassword: mapfront.InitialPasswordHasher(policy, keys),
		SealID: mapfront.IDSealer(keys), Log: log, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := mapfront.SealPendingIDs(ctx, s, keys, log); err != nil {
		t.Fatal(err)
	}
	if _, err := mapfront.SealPendingFingerprints(ctx, s, keys, log); err != nil {
		t.Fatal(err)
	}
	return &env{store: s, svc: mapfront.NewService(s, keys, clock, policy, log), admin: mapfront.NewAdminService(s, keys, policy),
		clock: clk, ctx: ctx}
}

// demoKeyedEnv is a fresh database with the demo registry (LoadDemo), served
// under keyA at 2026-11-26 10:00 in Asia/Shanghai: its URL (for a second
// server on it), the clock, the keys and the env.
func demoKeyedEnv(t *testing.T) (string, *testClock, *secret.Keys, *env) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	zone, _ := time.LoadLocation("Asia/Shanghai")
	clk := &testClock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, zone)}
	keys := testKeys(t, keyA)
	e := keyedEnv(t, url, keys, clk)
	if err := e.admin.LoadDemo(e.ctx, testTPK); err != nil {
		t.Fatal(err)
	}
	return url, clk, keys, e
}

func testKeys(t *testing.T, hexKeys ...string) *secret.Keys {
	t.Helper()
	k, err := secret.Parse(hexKeys[0], hexKeys[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	keyA = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	keyB = "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100"
)

// dumpDatabase returns every row of every table of the public schema as
// JSON text: bytea columns appear there as hex.
func dumpDatabase(t *testing.T, e *env) string {
	t.Helper()
	rows, err := e.store.pool.Query(e.ctx, `SELECT quote_ident(table_name) FROM information_schema.tables
WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	if rows.Err() != nil || len(tables) < 10 {
		t.Fatalf("tables %v: %v", tables, rows.Err())
	}
	var b strings.Builder
	for _, table := range tables {
		rows, err := e.store.pool.Query(e.ctx, `SELECT row_to_json(t)::text FROM `+table+` t`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			b.WriteString(s)
			b.WriteByte('\n')
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
	}
	return b.String()
}

// wantNoClearIDs fails if the dump holds any of ids in clear, as text or as
// the hex of a bytea.
func wantNoClearIDs(t *testing.T, dump string, ids ...string) {
	t.Helper()
	low := strings.ToLower(dump)
	for _, id := range ids {
		if strings.Contains(dump, id) || strings.Contains(low, hex.EncodeToString([]byte(id))) {
			t.Errorf("the database holds ID number %s in clear", mapfront.MaskIDNumber(id))
		}
	}
}

func openCard(e *env, mobile, id, product, termOrder string, paySum int64) error {
	_, err := e.svc.OpenCard(e.ctx, &mapfront.OpenCardRequest{
		Origin:  mapfront.Origin{SellerID: "SH01", StoreID: "ST01", TerminalID: "POS01", OperatorID: "op1"},
		BatchNo: "000001", TerminalOrderID: termOrder, IDNumber: id, Mobile: mobile, ProductID: product,
		PaySum: paySum, HasPaySum: true,
	})
	return err
}

// Issue 9, show 4: after the demo data, open_cards, a customer written
// before migration 0005 and a settlement batch that opens a card from the
// file, no ID number is in the database in clear; the 10016 rule and the
// settlement's opening still work on sealed rows.
func TestNoClearIDNumberInDatabase(t *testing.T) {
	url := pgtest.NewDatabase(t)
	zone, _ := time.LoadLocation("Asia/Shanghai")
	clk := &testClock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, zone)}
	e := keyedEnv(t, url, testKeys(t, keyA), clk)
	if err := e.admin.LoadDemo(e.ctx, testTPK); err != nil {
		t.Fatal(err)
	}
	const demoID = "11010519491231002X"
	id1, id2, id3, legacyID := stlID("11010519900101071"), stlID("11010519900101072"), stlID("11010519900101073"), stlID("11010519800101074")

	// A row as it was before 0005: in clear, sealed by the next start.
	if _, err := e.store.pool.Exec(e.ctx, `INSERT INTO customers (mobile, id_number) VALUES ('13800000074', $1)`, legacyID); err != nil {
		t.Fatal(err)
	}
	if dump := dumpDatabase(t, e); !strings.Contains(dump, legacyID) {
		t.Fatal("the dump does not show an ID number in clear: the check below would prove nothing")
	}
	e = keyedEnv(t, url, testKeys(t, keyA), clk)
	if n := e.scalar(t, `SELECT count(*) FROM customers WHERE id_number IS NOT NULL OR id_sealed IS NULL`); n != 0 {
		t.Fatalf("%d customers not sealed after start", n)
	}
	if _, err := e.store.pool.Exec(e.ctx, `UPDATE customers SET id_number = $1 WHERE mobile = '13800000074'`, legacyID); err == nil {
		t.Fatal("a row both sealed and in clear was accepted")
	}

	if err := openCard(e, "13800000071", id1, "1012", "000001", 150000); err != nil {
		t.Fatal(err)
	}
	// 10016: an existing mobile (sealed by open_card, by the admin, or
	// sealed from clear at start) with another ID number.
	wantCode(t, openCard(e, "13800000071", id2, "1012", "000002", 100), mapfront.CodeIdentity)
	wantCode(t, openCard(e, demoMobile, id2, "1012", "000003", 100), mapfront.CodeIdentity)
	wantCode(t, openCard(e, "13800000074", id2, "1012", "000004", 100), mapfront.CodeIdentity)
	if err := openCard(e, "13800000074", legacyID, "1012", "000005", 100); err != nil {
		t.Fatalf("the legacy customer with their own ID: %v", err)
	}
	if err := openCard(e, demoMobile, strings.ToLower(demoID), "1012", "000006", 100); err != nil {
		t.Fatalf("the demo customer with their ID (lower-case x): %v", err)
	}
	if _, err := e.admin.CreateCustomer(e.ctx, "13800000072", id2); err != nil {
		t.Fatal(err)
	}
	v, err := e.admin.GetCustomer(e.ctx, "13800000074")
	if err != nil || v.IDNumberMasked != mapfront.MaskIDNumber(legacyID) {
		t.Fatalf("masked ID of the legacy customer: %+v, %v", v, err)
	}
	// The reset needs the clear ID (initial password = its last 6): the
	// service opens it.
	if err := e.admin.ResetPaymentPassword(e.ctx, "13800000074"); err != nil {
		t.Fatal(err)
	}
	var hash []byte
	if err := e.store.pool.QueryRow(e.ctx, `SELECT pw_hash FROM customers WHERE mobile = '13800000074'`).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if ok, err := testKeys(t, keyA).VerifyPassword(hash, mapfront.DefaultPolicy().InitialPassword(legacyID)); !ok || err != nil {
		t.Fatalf("initial password after reset: %v, %v", ok, err)
	}

	// Settlement: one record confirms the open_card, one opens a card from
	// the file for a new customer, one names an existing mobile with
	// another ID (not openable: 10016's rule).
	e.dayOver(t, "20261126")
	r, err := e.submit("20261126", "seal", false, []mapfront.SettlementRecord{
		stlRec(1, "T1", 150000, "000001", id1, "13800000071", "1012"),
		stlRec(2, "T2", 150000, "000010", id3, "13800000073", "1012"),
		stlRec(3, "T3", 150000, "000011", id3, "13800000072", "1012"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Matched != 1 || r.Opened != 1 || counts(r)[mapfront.ExNotOpenable][0] != 1 {
		t.Fatalf("report %+v exceptions %v", r, counts(r))
	}
	if a := e.cardOf(t, "13800000073", "1012"); a.Status != "active" {
		t.Fatalf("card opened from the file: %+v", a)
	}
	wantNoClearIDs(t, dumpDatabase(t, e), demoID, id1, id2, id3, legacyID)
	e.verify(t)
}

// Issue 9, show 4: after rotate-keys to a new master key, PIN blocks open,
// passwords verify (and move to the new key), ID matching keeps working,
// and once rotate-keys --check reports nothing left the old key can go.
func TestRotateKeys(t *testing.T) {
	url := pgtest.NewDatabase(t)
	zone, _ := time.LoadLocation("Asia/Shanghai")
	clk := &testClock{now: time.Date(2026, 11, 26, 10, 0, 0, 0, zone)}
	a := keyedEnv(t, url, testKeys(t, keyA), clk)
	if err := a.admin.LoadDemo(a.ctx, testTPK); err != nil {
		t.Fatal(err)
	}
	id1, id2, id3 := stlID("11010519900101081"), stlID("11010519900101082"), stlID("11010519900101083")
	if err := openCard(a, "13800000081", id1, "1012", "000001", 150000); err != nil {
		t.Fatal(err)
	}

	ring := testKeys(t, keyB, keyA)
	b := keyedEnv(t, url, ring, clk)
	before, err := b.store.CountKeys(b.ctx, ring.CurrentPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if before.IDs != 2 || before.TPKs == 0 || before.Passwords != 2 || before.ClearIDs != 0 {
		t.Fatalf("before rotation %+v", before)
	}
	// During the rotation window old values still serve.
	wantCode(t, openCard(b, "13800000081", id2, "1012", "000002", 100), mapfront.CodeIdentity)
	if _, err := b.svc.Pay(b.ctx, payReq(t, demoMobile, "123456", "r1", 100)); err != nil {
		t.Fatalf("pay under the old key, new key current: %v", err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	left, err := mapfront.RotateKeys(b.ctx, b.store, ring, log)
	if err != nil {
		t.Fatal(err)
	}
	// The demo customer's password moved with the pay above; the other
	// customer's moves on their next verification.
	if left.IDs != 0 || left.TPKs != 0 || left.ClearIDs != 0 || left.Passwords != 1 {
		t.Fatalf("after rotate-keys %+v", left)
	}
	var hash []byte
	if err := b.store.pool.QueryRow(b.ctx, `SELECT pw_hash FROM customers WHERE mobile = $1`, demoMobile).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(hash, ring.CurrentPrefix()) {
		t.Fatal("the demo password hash did not move to the new key on a successful pay")
	}
	if _, err := b.svc.GetAccountInfo(b.ctx, queryReq(t, "13800000081", mapfront.DefaultPolicy().InitialPassword(id1))); err != nil {
		t.Fatal(err)
	}
	if left, err = b.store.CountKeys(b.ctx, ring.CurrentPrefix()); err != nil || !left.Done() {
		t.Fatalf("rotate-keys --check: %+v, %v", left, err)
	}

	// The old key removed: everything still works.
	only := keyedEnv(t, url, testKeys(t, keyB), clk)
	if _, err := only.svc.Pay(only.ctx, payReq(t, demoMobile, "123456", "r2", 100)); err != nil {
		t.Fatalf("pay with the new key only: %v", err)
	}
	if _, err := only.svc.GetAccountInfo(only.ctx, queryReq(t, "13800000081", mapfront.DefaultPolicy().InitialPassword(id1))); err != nil {
		t.Fatalf("query with the new key only: %v", err)
	}
	wantCode(t, openCard(only, "13800000081", id2, "1012", "000003", 100), mapfront.CodeIdentity)
	if err := openCard(only, "13800000081", id1, "1012", "000004", 100); err != nil {
		t.Fatalf("open_card with the customer's ID, new key only: %v", err)
	}
	if err := only.admin.ResetPaymentPassword(only.ctx, "13800000081"); err != nil {
		t.Fatal(err)
	}
	only.dayOver(t, "20261126")
	r, err := only.submit("20261126", "rot", false, []mapfront.SettlementRecord{
		stlRec(1, "T1", 150000, "000001", id1, "13800000081", "1012"),
		stlRec(2, "T2", 150000, "000010", id3, "13800000083", "1012"),
		stlRec(3, "T3", 150000, "000011", id3, "13800000081", "1012"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Matched != 1 || r.Opened != 1 || counts(r)[mapfront.ExNotOpenable][0] != 1 {
		t.Fatalf("settlement with the new key only: %+v exceptions %v", r, counts(r))
	}
	only.verify(t)
}
