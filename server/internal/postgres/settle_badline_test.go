package postgres

import (
	"fmt"
	"testing"

	"mapfront/server/internal/mapfront"
)

// A forced re-run's bad lines (SPEC section 6: every bad line is an
// exception with its line number; a forced re-run settles the date with the
// new file). The parser's reasons are generic ("field_count: 12 fields…"),
// so two files' different lines at the same number often share a reason:
// the queue must still file the new file's line, the report must count only
// the current file's bad lines, and the same file sent again must change
// nothing.
//
// File A: bad lines 2 (customer A's text), 3 and 4. Forced file B: line 2
// another text with the same reason, line 3 the same as A's, no line 4.
// Then B again (unchanged), then A forced back.
func TestSettleForcedRerunBadLines(t *testing.T) {
	e := newEnv(t)
	// Four records, matched, so that three bad lines stay under the share
	// of bad lines that rejects a file.
	var recs []mapfront.SettlementRecord
	for i := range 4 {
		id := stlID(fmt.Sprintf("1101051990010119%d", i))
		mobile, serial := fmt.Sprintf("1380000019%d", i), fmt.Sprintf("00019%d", i)
		stlOpen(t, e, mobile, id, "1012", serial, 150000)
		recs = append(recs, stlRec(int64(10+i), "T19"+fmt.Sprint(i), 150000, serial, id, mobile, "1012"))
	}
	e.dayOver(t, "20261126")
	const reason = "field_count: 12 fields, want 14 (or 13 without 推荐人id)"
	line2A := mapfront.BadLine{LineNo: 2, Reason: reason, Text: "TA|AAA sale of customer A"}
	line2B := mapfront.BadLine{LineNo: 2, Reason: reason, Text: "TB|BBB sale of customer B"}
	line3 := mapfront.BadLine{LineNo: 3, Reason: reason, Text: "x|y"}
	line4 := mapfront.BadLine{LineNo: 4, Reason: "amount: not a number", Text: "T9|abc"}
	fileA := []mapfront.BadLine{line2A, line3, line4}
	fileB := []mapfront.BadLine{line2B, line3}

	// item finds the one bad-line item whose detail holds text.
	item := func(text string) mapfront.Exception {
		t.Helper()
		items, err := e.store.ListExceptions(e.ctx, mapfront.ExceptionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var found []mapfront.Exception
		for _, x := range items {
			if x.Type == mapfront.ExBadLine && containsAny(x.Detail, text) {
				found = append(found, x)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d bad-line items hold %q, want 1: %+v", len(found), text, found)
		}
		return found[0]
	}
	badCount := func(r *mapfront.BatchReport) int64 { return counts(r)[mapfront.ExBadLine][0] }
	superseded := func() int64 {
		return e.scalar(t, `SELECT count(*) FROM settlement_exceptions WHERE type = 'bad_line' AND superseded`)
	}

	rA, err := e.submit("20261126", "A", false, recs, fileA)
	if err != nil {
		t.Fatal(err)
	}
	if rA.BadLines != 3 || badCount(rA) != 3 {
		t.Fatalf("file A: bad_lines %d, bad_line items %d; want 3 and 3", rA.BadLines, badCount(rA))
	}
	// An operator deals with line 4 before the corrected file comes.
	if _, _, err := e.store.ResolveException(e.ctx, mapfront.Resolution{ID: item("T9|abc").ID,
		Action: mapfront.ActionIgnore, Operator: "ops1", Note: "known test line"}); err != nil {
		t.Fatal(err)
	}

	// Forced file B: its line 2 is filed although its reason is A's line
	// 2's; line 3, the same line, is not filed twice; A's lines 2 and 4 are
	// superseded, so the report counts B's two bad lines only.
	rB, err := e.submit("20261126", "B", true, recs, fileB)
	if err != nil {
		t.Fatal(err)
	}
	if rB.BadLines != 2 || badCount(rB) != 2 {
		t.Fatalf("file B: bad_lines %d, bad_line items %d; want 2 and 2 (%v)", rB.BadLines, badCount(rB), counts(rB))
	}
	if x := item("BBB"); x.LineNo != 2 || x.State != mapfront.ExceptionOpen {
		t.Errorf("file B's line 2: %+v", x)
	}
	if x := item("AAA"); x.State != mapfront.ExceptionResolved || x.Action != mapfront.ActionIgnore ||
		x.Operator != "settlement" || x.Note != badLineGoneNote {
		t.Errorf("file A's line 2 after B: %+v, want closed by the settlement", x)
	}
	if x := item("T9|abc"); x.State != mapfront.ExceptionResolved || x.Operator != "ops1" || x.Note != "known test line" {
		t.Errorf("line 4 resolved by ops1, after B: %+v, want ops1's resolution kept", x)
	}
	if x := item("x|y"); x.State != mapfront.ExceptionOpen {
		t.Errorf("line 3, in both files: %+v", x)
	}
	if n := e.scalar(t, `SELECT count(*) FROM settlement_exceptions WHERE type = 'bad_line'`); n != 4 {
		t.Errorf("%d bad-line items, want 4 (A's 2, 3, 4 and B's 2)", n)
	}
	if n := superseded(); n != 2 {
		t.Errorf("%d bad-line items superseded, want 2 (A's lines 2 and 4)", n)
	}

	// The same file B again: the earlier report, nothing changes.
	before := e.scalar(t, `SELECT count(*) FROM settlement_exceptions`)
	again, err := e.submit("20261126", "B", false, recs, fileB)
	if err != nil || !again.Repeated {
		t.Fatalf("B again: %v %+v", err, again)
	}
	again.Repeated = false
	if fmt.Sprintf("%+v", *again) != fmt.Sprintf("%+v", *rB) {
		t.Errorf("B again answered\n%+v\nwant\n%+v", *again, *rB)
	}
	if n := e.scalar(t, `SELECT count(*) FROM settlement_exceptions`); n != before || superseded() != 2 {
		t.Errorf("B again changed the queue: %d items (was %d), %d superseded", n, before, superseded())
	}

	// File A forced back: its items are current again (line 2 reopened,
	// line 4 with ops1's resolution), B's line 2 is superseded, and no item
	// is filed twice.
	rA2, err := e.submit("20261126", "A", true, recs, fileA)
	if err != nil {
		t.Fatal(err)
	}
	if rA2.BadLines != 3 || badCount(rA2) != 3 {
		t.Fatalf("file A again: bad_lines %d, bad_line items %d; want 3 and 3", rA2.BadLines, badCount(rA2))
	}
	if x := item("AAA"); x.State != mapfront.ExceptionOpen || x.Action != "" || x.Operator != "" || x.ResolvedAt != nil {
		t.Errorf("file A's line 2, back: %+v, want open", x)
	}
	if x := item("T9|abc"); x.State != mapfront.ExceptionResolved || x.Operator != "ops1" {
		t.Errorf("line 4, back: %+v, want ops1's resolution", x)
	}
	if x := item("BBB"); x.State != mapfront.ExceptionResolved || x.Operator != "settlement" {
		t.Errorf("file B's line 2 after A: %+v, want closed by the settlement", x)
	}
	if n := e.scalar(t, `SELECT count(*) FROM settlement_exceptions WHERE type = 'bad_line'`); n != 4 {
		t.Errorf("%d bad-line items, want 4", n)
	}
	if n := superseded(); n != 1 {
		t.Errorf("%d bad-line items superseded, want 1 (B's line 2)", n)
	}
	// The records were applied once, by A's first run.
	if n := e.scalar(t, `SELECT count(*) FROM settlement_trades`); n != 4 {
		t.Errorf("%d trades applied, want 4", n)
	}
	e.verify(t)
}
