package postgres

import (
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"mapfront/server/internal/mapfront"
)

// A run's records are staged with their ID numbers sealed, and its bad
// lines' text and reason masked by the server whatever the client sent: the
// table holds no ID or card number a reader of the database (or a copy of
// it) could see, and each sealed value opens only for its own row and
// mobile number.
func TestStagedIDNumbersSealed(t *testing.T) {
	e := newEnv(t)
	id1, id2 := stlID("11010519900101001"), stlID("11010519900101002")
	recs := []mapfront.SettlementRecord{
		stlRec(1, "T1", 150000, "000001", id1, "13800000011", "1012"),
		stlRec(2, "T2", 150000, "000002", id2, "13800000012", "1012"),
	}
	sent := false
	next := func() (*mapfront.BatchChunk, error) {
		if sent {
			return nil, io.EOF
		}
		sent = true
		// A bad line as a careless client might send it: unmasked.
		return &mapfront.BatchChunk{Records: recs, BadLines: []mapfront.BadLine{{LineNo: 3,
			Reason: "card 6225380083477614 refused", Text: "x|" + id1 + "|" + id2[:12]}}}, nil
	}
	r := &run{id: 4242}
	if lines, bad, _, err := e.store.stage(e.ctx, r, &mapfront.BatchHeader{}, next); err != nil || lines != 3 || bad != 1 {
		t.Fatalf("stage: %d lines, %d bad, %v", lines, bad, err)
	}
	var dump string
	if err := e.store.pool.QueryRow(e.ctx, `SELECT string_agg(s::text, '|') FROM settlement_staging s WHERE run_id = 4242`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{id1, id2, id1[:17], id2[6:14], id1[6:14]} {
		if strings.Contains(dump, id) {
			t.Fatalf("settlement_staging holds %q in clear: %s", id, dump)
		}
	}
	var reason, text string
	if err := e.store.pool.QueryRow(e.ctx, `SELECT reason, line_text FROM settlement_staging WHERE run_id = 4242 AND line_no = 3`).
		Scan(&reason, &text); err != nil {
		t.Fatal(err)
	}
	if reason != "card 622538******7614 refused" || text != "x|"+id1[:6]+"********"+id1[14:]+"|"+id2[:12] {
		t.Fatalf("bad line staged as %q, %q: want the card and ID numbers masked", reason, text)
	}
	aead, err := stagingAEAD()
	if err != nil {
		t.Fatal(err)
	}
	sealed := map[int64]string{}
	rows, err := e.store.pool.Query(e.ctx, `SELECT line_no, id_number FROM settlement_staging WHERE run_id = 4242 ORDER BY line_no`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n int64
		var s string
		if err := rows.Scan(&n, &s); err != nil {
			t.Fatal(err)
		}
		sealed[n] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := openStagedID(aead, 4242, 1, "13800000011", sealed[1]); err != nil || got != id1 {
		t.Fatalf("line 1 opens to %q, %v; want its ID number", got, err)
	}
	// Another row's, another mobile's, another run's, or a changed value: refused.
	for name, try := range map[string]func() (string, error){
		"line 2's value on line 1": func() (string, error) { return openStagedID(aead, 4242, 1, "13800000011", sealed[2]) },
		"another mobile":           func() (string, error) { return openStagedID(aead, 4242, 1, "13800000012", sealed[1]) },
		"another run":              func() (string, error) { return openStagedID(aead, 4243, 1, "13800000011", sealed[1]) },
		"changed":                  func() (string, error) { return openStagedID(aead, 4242, 1, "13800000011", flipFirst(sealed[1])) },
		"not base64":               func() (string, error) { return openStagedID(aead, 4242, 1, "13800000011", id1) },
	} {
		if got, err := try(); err == nil {
			t.Errorf("%s: opened to %q", name, got)
		}
	}
}

// No two seals under the process's key share a nonce, even of the same row
// and ID number (a stream that sends a line number twice seals it twice
// before the COPY refuses the second row, and both reach the table's pages).
func TestStagedIDNonceNeverRepeats(t *testing.T) {
	aead, err := stagingAEAD()
	if err != nil {
		t.Fatal(err)
	}
	id := stlID("11010519900101001")
	seen := map[string]bool{}
	for range 1000 {
		s := sealStagedID(aead, 7, 1, "13800000011", id)
		b, err := base64.RawStdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		nonce := string(b[:aead.NonceSize()])
		if seen[nonce] {
			t.Fatalf("nonce %x used twice", nonce)
		}
		seen[nonce] = true
		if got, err := openStagedID(aead, 7, 1, "13800000011", s); err != nil || got != id {
			t.Fatalf("opens to %q, %v", got, err)
		}
	}
}

// flipFirst changes the first character of a base64 text to another.
func flipFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}
