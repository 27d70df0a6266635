package report

import (
	"bytes"
	"encoding/csv"
	"math"
	"strings"
	"testing"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

func TestYuan(t *testing.T) {
	cases := map[int64]string{
		0:             "0.00",
		1:             "0.01",
		10:            "0.10",
		1250:          "12.50",
		123456789:     "1,234,567.89",
		100000:        "1,000.00",
		99999:         "999.99",
		-1:            "-0.01",
		-123456789:    "-1,234,567.89",
		math.MaxInt64: "92,233,720,368,547,758.07",
		math.MinInt64: "-92,233,720,368,547,758.08",
	}
	for fen, want := range cases {
		if got := Yuan(fen); got != want {
			t.Errorf("Yuan(%d) = %q, want %q", fen, got, want)
		}
	}
}

func sampleReport() *mapfrontv1.BatchReport {
	return &mapfrontv1.BatchReport{
		BusinessDate: "20250307", Status: mapfrontv1.BatchState_BATCH_STATE_SETTLED, FileName: "20250307.txt", Sha256: strings.Repeat("ab", 32),
		Records: 120, TotalFen: 54000000, Matched: 100, Opened: 15, Merged: 4, Activated: 110, BadLines: 3, AutoResolved: 2,
		Exceptions: []*mapfrontv1.ExceptionCount{
			{Type: mapfrontv1.ExceptionType_EXCEPTION_TYPE_AMOUNT_MISMATCH, Count: 2, Amount: 900000},
			{Type: mapfrontv1.ExceptionType_EXCEPTION_TYPE_BAD_LINE, Count: 3, Amount: 0},
		},
		SettledAt: "2025-03-08 00:31:02",
	}
}

func TestBatchTable(t *testing.T) {
	var b bytes.Buffer
	if err := Batch(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	// Compared with the column padding squeezed out.
	out := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{"Business date 20250307", "Status settled", "Records in file 120 540,000.00", "Matched 100", "Opened from records 15",
		"Merged 4", "Activated 110", "Exception amount_mismatch 2 9,000.00", "Exception bad_line 3 0.00", "Exceptions in all 5 9,000.00"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	r := sampleReport()
	r.Exceptions, r.RepeatedSubmission = nil, true
	b.Reset()
	if err := Batch(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "none") || !strings.Contains(b.String(), "submitted before") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestBatchCSV(t *testing.T) {
	var b bytes.Buffer
	if err := BatchCSV(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"business_date", "kind", "name", "count", "amount_fen", "amount_yuan"},
		{"20250307", "metric", "records", "120", "54000000", "540000.00"},
		{"20250307", "metric", "matched", "100", "", ""},
		{"20250307", "metric", "opened", "15", "", ""},
		{"20250307", "metric", "merged", "4", "", ""},
		{"20250307", "metric", "activated", "110", "", ""},
		{"20250307", "metric", "bad_lines", "3", "", ""},
		{"20250307", "metric", "auto_resolved", "2", "", ""},
		{"20250307", "exception", "amount_mismatch", "2", "900000", "9000.00"},
		{"20250307", "exception", "bad_line", "3", "0", "0.00"},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %v", rows)
	}
	for i := range want {
		if strings.Join(rows[i], ",") != strings.Join(want[i], ",") {
			t.Errorf("row %d = %v, want %v", i, rows[i], want[i])
		}
	}
}

func TestExceptions(t *testing.T) {
	e := &mapfrontv1.Exception{
		Id: 42, Type: mapfrontv1.ExceptionType_EXCEPTION_TYPE_AMOUNT_MISMATCH, BusinessDate: "20250307", LineNo: 17, TradeId: "T1", OrderId: "20250307101010000001",
		TerminalId: "POS01", BatchNo: "000001", TerminalOrderId: "000539", Amount: 450000, Expected: 350000,
		Detail: "file says 4500.00,\tour order says 3500.00 and this detail goes on for a while", State: mapfrontv1.ExceptionState_EXCEPTION_STATE_OPEN,
		CreatedAt: "2025-03-08 00:31:02",
	}
	var b bytes.Buffer
	if err := Exceptions(&b, []*mapfrontv1.Exception{e}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"42", "amount_mismatch", "POS01/000001/000539", "4,500.00", "3,500.00", "…"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "\n") != 2 {
		t.Errorf("list is not one line per item:\n%s", out)
	}
	b.Reset()
	if err := Exception(&b, e); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "goes on for a while") || strings.Contains(b.String(), "Operator") {
		t.Errorf("show:\n%s", b.String())
	}
	b.Reset()
	if err := Exceptions(&b, nil); err != nil || !strings.Contains(b.String(), "No exceptions") {
		t.Errorf("empty list: %q", b.String())
	}
}
