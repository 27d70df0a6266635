// Package report shows settlement results to people: the batch report
// (SPEC section 6: records and total in the file, matched, opened, merged,
// activated, exceptions by type with amounts) as a table or as CSV, and the
// manual-handling queue. Amounts stay int64 fen until printed, and are
// printed in yuan by integer arithmetic.
package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/enumtext"
)

// Yuan formats fen as yuan with two decimals and thousands separators,
// e.g. 123456789 → "1,234,567.89".
func Yuan(fen int64) string {
	sign := ""
	u := uint64(fen)
	if fen < 0 {
		sign = "-"
		u = uint64(-(fen + 1)) + 1 // safe for math.MinInt64
	}
	whole := strconv.FormatUint(u/100, 10)
	var b strings.Builder
	b.WriteString(sign)
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	fmt.Fprintf(&b, ".%02d", u%100)
	return b.String()
}

// plainYuan is Yuan without separators, for CSV cells that a spreadsheet
// reads as numbers.
func plainYuan(fen int64) string {
	return strings.ReplaceAll(Yuan(fen), ",", "")
}

// Batch writes a batch report as a table.
func Batch(w io.Writer, r *mapfrontv1.BatchReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("Business date", r.GetBusinessDate())
	row("Status", enumtext.Word(r.GetStatus()))
	if r.GetFileName() != "" {
		row("File", r.GetFileName())
	}
	if r.GetSha256() != "" {
		row("SHA-256", r.GetSha256())
	}
	if r.GetSettledAt() != "" {
		row("Settled at", r.GetSettledAt())
	}
	if r.GetDetail() != "" {
		row("Detail", r.GetDetail())
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "%s\t%s\t%s\n", "", "COUNT", "AMOUNT (yuan)")
	fmt.Fprintf(tw, "%s\t%d\t%s\n", "Records in file", r.GetRecords(), Yuan(r.GetTotalFen()))
	for _, m := range metrics(r)[1:] {
		fmt.Fprintf(tw, "%s\t%d\t\n", m.label, m.count)
	}
	fmt.Fprintln(tw)
	if len(r.GetExceptions()) == 0 {
		fmt.Fprintf(tw, "%s\t%s\t\n", "Exceptions", "none")
	} else {
		var n, amount int64
		for _, e := range r.GetExceptions() {
			fmt.Fprintf(tw, "Exception %s\t%d\t%s\n", enumtext.Word(e.GetType()), e.GetCount(), Yuan(e.GetAmount()))
			n += e.GetCount()
			amount += e.GetAmount()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", "Exceptions in all", n, Yuan(amount))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.GetRepeatedSubmission() {
		_, err := fmt.Fprintln(w, "\nThe same file had been submitted before: this is the earlier report, and nothing changed.")
		return err
	}
	return nil
}

type metric struct {
	name, label string
	count       int64
}

func metrics(r *mapfrontv1.BatchReport) []metric {
	return []metric{
		{"records", "Records in file", r.GetRecords()},
		{"matched", "Matched", r.GetMatched()},
		{"opened", "Opened from records", r.GetOpened()},
		{"merged", "Merged", r.GetMerged()},
		{"activated", "Activated", r.GetActivated()},
		{"bad_lines", "Bad lines in file", r.GetBadLines()},
		{"auto_resolved", "Earlier items resolved", r.GetAutoResolved()},
	}
}

// BatchCSV writes a batch report as CSV: one row per metric and one per
// exception type, each with its count and amount (in fen, exact, and in
// yuan for people).
func BatchCSV(w io.Writer, r *mapfrontv1.BatchReport) error {
	cw := csv.NewWriter(w)
	date := r.GetBusinessDate()
	rows := [][]string{{"business_date", "kind", "name", "count", "amount_fen", "amount_yuan"}}
	for _, m := range metrics(r) {
		fen, yuan := "", ""
		if m.name == "records" {
			fen, yuan = strconv.FormatInt(r.GetTotalFen(), 10), plainYuan(r.GetTotalFen())
		}
		rows = append(rows, []string{date, "metric", m.name, strconv.FormatInt(m.count, 10), fen, yuan})
	}
	for _, e := range r.GetExceptions() {
		rows = append(rows, []string{date, "exception", enumtext.Word(e.GetType()), strconv.FormatInt(e.GetCount(), 10),
			strconv.FormatInt(e.GetAmount(), 10), plainYuan(e.GetAmount())})
	}
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("write CSV: %w", err)
	}
	return nil
}

// Exceptions writes the queue items as a table, one line each.
func Exceptions(w io.Writer, list []*mapfrontv1.Exception) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "No exceptions.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tDATE\tSTATE\tLINE\tTRADE ID\tORDER\tTERMINAL/BATCH/SERIAL\tAMOUNT\tEXPECTED\tDETAIL")
	for _, e := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			e.GetId(), enumtext.Word(e.GetType()), e.GetBusinessDate(), enumtext.Word(e.GetState()), lineNo(e.GetLineNo()),
			dash(e.GetTradeId()), dash(e.GetOrderId()), terminalKey(e), Yuan(e.GetAmount()), Yuan(e.GetExpected()),
			dash(shorten(e.GetDetail(), 40)))
	}
	return tw.Flush()
}

// Exception writes one queue item in full.
func Exception(w io.Writer, e *mapfrontv1.Exception) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("ID", strconv.FormatInt(e.GetId(), 10))
	row("Type", enumtext.Word(e.GetType()))
	row("Business date", e.GetBusinessDate())
	row("State", enumtext.Word(e.GetState()))
	row("Line", lineNo(e.GetLineNo()))
	row("Trade ID", e.GetTradeId())
	row("Order", e.GetOrderId())
	row("Terminal/batch/serial", terminalKey(e))
	row("Amount (file)", Yuan(e.GetAmount()))
	row("Expected", Yuan(e.GetExpected()))
	row("Detail", e.GetDetail())
	row("Created at", e.GetCreatedAt())
	row("Action", enumtext.Word(e.GetAction()))
	row("Operator", e.GetOperator())
	row("Note", e.GetNote())
	row("Linked order", e.GetLinkedOrderId())
	row("Resolved at", e.GetResolvedAt())
	row("Resolved by batch", e.GetResolvedByBatch())
	return tw.Flush()
}

func terminalKey(e *mapfrontv1.Exception) string {
	if e.GetTerminalId() == "" && e.GetBatchNo() == "" && e.GetTerminalOrderId() == "" {
		return "-"
	}
	return e.GetTerminalId() + "/" + e.GetBatchNo() + "/" + e.GetTerminalOrderId()
}

func lineNo(n int64) string {
	if n <= 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shorten keeps a table line readable; `exceptions show` has the rest.
// Tabs and newlines would break the table's columns.
func shorten(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}
