package postgres

import (
	"io"
	"strings"
	"testing"

	"mapfront/server/internal/mapfront"
)

// The server masks a bad line's text whatever the client sent: an ID
// number (ending in a digit) fused with the mobile number after it (a lost
// '|') is masked as one 29-digit run, never kept whole in
// settlement_staging.line_text and the bad_line queue item made from it.
func TestStagedBadLineFusedIDMasked(t *testing.T) {
	e := newEnv(t)
	id := stlID("11010519900101001")
	if id[17] == 'X' {
		t.Skip("need an ID ending in a digit")
	}
	sent := false
	next := func() (*mapfront.BatchChunk, error) {
		if sent {
			return nil, io.EOF
		}
		sent = true
		return &mapfront.BatchChunk{BadLines: []mapfront.BadLine{{LineNo: 1,
			Reason: "field_count: 12 fields, want 14 (or 13 without 推荐人id)",
			Text:   "T1|6225380083477614|12.5|000540|152412390952|SH01|POS01|000001|20250101|235959|" + id + "13912345678|1010"}}}, nil
	}
	if _, _, _, err := e.store.stage(e.ctx, &run{id: 77}, &mapfront.BatchHeader{}, next); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := e.store.pool.QueryRow(e.ctx, `SELECT line_text FROM settlement_staging WHERE run_id = 77 AND line_no = 1`).Scan(&text); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, id) {
		t.Errorf("staged bad line holds the whole ID number %s: %q", id, text)
	}
}
