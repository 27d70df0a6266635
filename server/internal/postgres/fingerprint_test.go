package postgres

import (
	"bytes"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"testing"

	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/secret"
)

// fingerprintCase is an open_card key recorded by a first request, with
// what a repeat of that request gets (SPEC section 5).
type fingerprintCase struct {
	req    *mapfront.OpenCardRequest
	answer *mapfront.CardOrderAnswer // approved
	code   mapfront.Code             // else the stored decline
	msg    string
}

// openCardKeys records three open_card keys on env e: approved, declined
// (10015, over what is still due) and approved then repealed (10011).
func openCardKeys(t *testing.T, e *env, id string) []fingerprintCase {
	t.Helper()
	first, err := e.svc.OpenCard(e.ctx, openReq(newMobile, id, "f1", 200000))
	if err != nil {
		t.Fatal(err)
	}
	_, declined := e.svc.OpenCard(e.ctx, openReq(newMobile, id, "f2", 450001))
	wantCode(t, declined, mapfront.CodeAmount)
	if _, err := e.svc.OpenCard(e.ctx, openReq(newMobile, id, "f3", 100000)); err != nil {
		t.Fatal(err)
	}
	r := openReq(newMobile, id, "f3", 100000)
	if _, err := e.svc.RepealCard(e.ctx, &mapfront.RepealCardRequest{Origin: r.Origin, BatchNo: r.BatchNo, TerminalOrderID: "f3"}); err != nil {
		t.Fatal(err)
	}
	return []fingerprintCase{
		{req: openReq(newMobile, id, "f1", 200000), answer: first},
		{req: openReq(newMobile, id, "f2", 450001), code: mapfront.CodeAmount, msg: declined.Error()},
		{req: openReq(newMobile, id, "f3", 100000), code: mapfront.CodeAlreadyUndone},
	}
}

// wantReplays sends each case's request again and checks that it gets the
// stored answer and moves nothing, and that the same key with another ID
// number or another paySum is still 10003.
func wantReplays(t *testing.T, e *env, when string, cases []fingerprintCase, other string) {
	t.Helper()
	paid := e.scalar(t, `SELECT coalesce(sum(pay_sum), 0) FROM card_payments WHERE status = 'paid'`)
	for _, c := range cases {
		again := *c.req
		a, err := e.svc.OpenCard(e.ctx, &again)
		switch {
		case c.answer != nil && (err != nil || *a != *c.answer):
			t.Fatalf("%s: repeat of %s answered %+v, %v; want %+v", when, c.req.TerminalOrderID, a, err, c.answer)
		case c.answer == nil && (mapfront.ErrorCode(err) != c.code || (c.msg != "" && err.Error() != c.msg)):
			t.Fatalf("%s: repeat of %s: %v, want %d %s", when, c.req.TerminalOrderID, err, c.code, c.msg)
		}
		otherID := *c.req
		otherID.IDNumber = other
		if _, err := e.svc.OpenCard(e.ctx, &otherID); mapfront.ErrorCode(err) != mapfront.CodeKeyReused {
			t.Fatalf("%s: key %s with another ID number: %v, want 10003", when, c.req.TerminalOrderID, err)
		}
		otherSum := *c.req
		otherSum.PaySum++
		if _, err := e.svc.OpenCard(e.ctx, &otherSum); mapfront.ErrorCode(err) != mapfront.CodeKeyReused {
			t.Fatalf("%s: key %s with another paySum: %v, want 10003", when, c.req.TerminalOrderID, err)
		}
	}
	if now := e.scalar(t, `SELECT coalesce(sum(pay_sum), 0) FROM card_payments WHERE status = 'paid'`); now != paid {
		t.Fatalf("%s: repeats moved money: paid %d, was %d", when, now, paid)
	}
}

// wantSealedFingerprints checks that every open_card key's stored
// fingerprint is sealed under the key of prefix, and that neither the
// column nor any other in the database holds a case's unkeyed digest.
func wantSealedFingerprints(t *testing.T, e *env, prefix []byte, cases []fingerprintCase) {
	t.Helper()
	dump := strings.ToLower(dumpDatabase(t, e))
	for _, c := range cases {
		var stored []byte
		if err := e.store.pool.QueryRow(e.ctx, `SELECT fingerprint FROM terminal_requests
WHERE kind = 'open_card' AND terminal_id = 'POS01' AND batch_no = $1 AND terminal_order_id = $2`,
			c.req.BatchNo, c.req.TerminalOrderID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		digest := c.req.Fingerprint()
		if bytes.Equal(stored, digest) || !bytes.HasPrefix(stored, prefix) || len(stored) != len(digest)+secret.SealOverhead {
			t.Fatalf("key %s: stored fingerprint %x, want sealed under %x", c.req.TerminalOrderID, stored, prefix)
		}
		if strings.Contains(dump, hex.EncodeToString(digest)) {
			t.Fatalf("key %s: the database holds the unkeyed digest of its request", c.req.TerminalOrderID)
		}
	}
}

// The fix of the reverted f36a1c5: an open_card key's fingerprint (which
// digests the ID number) is stored sealed, not as the unkeyed digest that
// trying ID numbers would reverse; repeats answer exactly as stored under
// the key that sealed it, during a rotation, after rotate-keys and after
// the old key is dropped (where f36a1c5 answered 10003); another request
// on the same key is 10003 throughout.
func TestOpenCardFingerprintSealedAcrossRotation(t *testing.T) {
	url, clk, keysA, a := demoKeyedEnv(t)
	id, other := stlID("11010519900101091"), stlID("11010519900101092")
	cases := openCardKeys(t, a, id)
	wantSealedFingerprints(t, a, keysA.CurrentPrefix(), cases)
	wantReplays(t, a, "key A", cases, other)

	ring := testKeys(t, keyB, keyA)
	b := keyedEnv(t, url, ring, clk)
	if c, err := b.store.CountKeys(b.ctx, ring.CurrentPrefix()); err != nil || c.Fingerprints != 3 {
		t.Fatalf("before rotate-keys: %+v, %v; want 3 fingerprints under the old key", c, err)
	}
	wantReplays(t, b, "B current, A old", cases, other)
	left, err := mapfront.RotateKeys(b.ctx, b.store, ring, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || left.Fingerprints != 0 {
		t.Fatalf("after rotate-keys: %+v, %v", left, err)
	}
	wantSealedFingerprints(t, b, ring.CurrentPrefix(), cases)

	only := keyedEnv(t, url, testKeys(t, keyB), clk)
	wantReplays(t, only, "B only, A dropped", cases, other)
	// A key first recorded under B alone replays too.
	first, err := only.svc.OpenCard(only.ctx, openReq(newMobile, id, "f4", 1000))
	if err != nil {
		t.Fatal(err)
	}
	wantReplays(t, only, "B only, new key", []fingerprintCase{{req: openReq(newMobile, id, "f4", 1000), answer: first}}, other)
	only.verify(t)
}

// Migration 0017 and its Go step: open_card keys recorded before it (their
// fingerprint the unkeyed digest) are sealed at the next start, keep
// answering their repeats exactly, and the database refuses a fingerprint
// in clear from then on.
func TestMigration0017SealsOldFingerprints(t *testing.T) {
	url, clk, keys, e := demoKeyedEnv(t)
	id, other := stlID("11010519900101093"), stlID("11010519900101094")
	cases := openCardKeys(t, e, id)
	revert0017(t, e, cases)
	if dump := strings.ToLower(dumpDatabase(t, e)); !strings.Contains(dump, hex.EncodeToString(cases[0].req.Fingerprint())) {
		t.Fatal("the dump does not show the unkeyed digest: the check below would prove nothing")
	}

	m := keyedEnv(t, url, keys, clk) // applies 0017, then seals as serve does
	if n := m.scalar(t, `SELECT count(*) FROM terminal_requests WHERE `+clearFingerprint); n != 0 {
		t.Fatalf("%d open_card fingerprints in clear after start", n)
	}
	wantSealedFingerprints(t, m, keys.CurrentPrefix(), cases)
	wantReplays(t, m, "after 0017", cases, other)
	if c, err := m.store.CountKeys(m.ctx, keys.CurrentPrefix()); err != nil || !c.Done() {
		t.Fatalf("rotate-keys --check after 0017: %+v, %v", c, err)
	}
	if _, err := m.store.pool.Exec(m.ctx, `UPDATE terminal_requests SET fingerprint = $1
WHERE kind = 'open_card' AND terminal_order_id = 'f1'`, cases[0].req.Fingerprint()); err == nil {
		t.Fatal("the database accepted an open_card fingerprint in clear")
	}
	m.verify(t)
}

// revert0017 puts the database on e back to the schema of 0016 and the
// cases' keys back to what the code before 0017 wrote: each open_card key's
// fingerprint the unkeyed digest of its request.
func revert0017(t *testing.T, e *env, cases []fingerprintCase) {
	t.Helper()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := e.store.pool.Exec(e.ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`ALTER TABLE terminal_requests DROP CONSTRAINT terminal_requests_open_card_fingerprint_sealed`)
	exec(`DROP INDEX terminal_requests_clear_fingerprint`)
	exec(`DELETE FROM schema_migrations WHERE name = '0017_sealed_fingerprints.sql'`)
	for _, c := range cases {
		exec(`UPDATE terminal_requests SET fingerprint = $3 WHERE kind = 'open_card' AND batch_no = $1 AND terminal_order_id = $2`,
			c.req.BatchNo, c.req.TerminalOrderID, c.req.Fingerprint())
	}
}

// An open_card key whose fingerprint is still the 32-byte digest in clear
// (recorded before 0017 and not yet sealed by its Go step) replays on the
// new code exactly as on the code before 0017, which compared it directly:
// the stored answer, and 10003 for another ID number or paySum, where
// opening it as sealed failed (10000). The review of this branch found the
// new server erring on such a row.
func TestOpenCardReplaysClearFingerprint(t *testing.T) {
	url, clk, keys, e := demoKeyedEnv(t)
	id, other := stlID("11010519900101095"), stlID("11010519900101096")
	cases := openCardKeys(t, e, id)
	revert0017(t, e, cases) // e's service is the new code; the rows are clear
	if n := e.scalar(t, `SELECT count(*) FROM terminal_requests WHERE `+clearFingerprint); n != int64(len(cases)) {
		t.Fatalf("%d clear open_card fingerprints, want %d", n, len(cases))
	}
	wantReplays(t, e, "clear digest, not yet sealed", cases, other)
	m := keyedEnv(t, url, keys, clk) // 0017 and its Go step: sealed now
	wantSealedFingerprints(t, m, keys.CurrentPrefix(), cases)
	wantReplays(t, m, "sealed by the next start", cases, other)
	m.verify(t)
}
