package console

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"unicode"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/enumtext"
	"mapfront/server/internal/authz"
	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
	"mapfront/server/internal/postgres"
)

// Every value of every enum the console shows has a Chinese label: the
// API's enums (proto/mapfront/v1/states.proto), the roles, and the words the
// database's CHECK constraints allow in the columns the pages show. (A
// newcomer found date_mismatch shown as "（date_mismatch）" and English
// words all over the Chinese pages.)
func TestEveryEnumHasALabel(t *testing.T) {
	want := map[string][]string{ // label table: the words it must know
		"exception_type":  enumtext.Words[mapfrontv1.ExceptionType](),
		"exception_state": enumtext.Words[mapfrontv1.ExceptionState](),
		"action":          enumtext.Words[mapfrontv1.ExceptionAction](),
		"batch_state":     enumtext.Words[mapfrontv1.BatchState](),
		"account_status":  enumtext.Words[mapfrontv1.AccountStatus](),
		"order_status":    enumtext.Words[mapfrontv1.OrderStatus](),
		"payment_status":  enumtext.Words[mapfrontv1.CardPaymentStatus](),
		"order_kind":      {"card"}, // GetOrder's word for a card order; payment orders' kinds come from the database
		// ledger_txns.kind has no CHECK: the kinds the store posts
		// (postgres: post, queuePost, ledgerManyArgs; 0001_core.sql).
		"ledger_kind": {"activate", "release", "repeal", "pay", "cancel", "undo", "topup", "demo"},
		// The four-eyes path's methods (postgres: proposalOps, and the RPCs).
		"audit_method": {"ProposeResolution", "ProposeTopUp", "ResolveException", "TopUpCash", "ApproveProposal", "RejectProposal"},
	}
	for _, r := range authz.AllRoles {
		want["role"] = append(want["role"], string(r))
	}
	for _, e := range []string{mapfront.EventOpenCard, mapfront.EventPay, mapfront.EventCancel, mapfront.EventDecline,
		mapfront.EventTombstone, mapfront.EventReversal} {
		if eventNames[e] == "" {
			t.Errorf("history event %q has no label", e)
		}
	}

	// The words the database allows, from a freshly migrated database.
	ctx := context.Background()
	store, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.Options{Policy: mapfront.DefaultPolicy(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	checked := []struct{ table, column string }{
		{"accounts", "kind"}, {"accounts", "status"}, {"card_orders", "status"}, {"card_payments", "status"},
		{"pay_orders", "kind"}, {"pay_orders", "status"}, {"terminal_requests", "kind"}, {"terminal_requests", "state"},
		{"settlement_batches", "status"}, {"settlement_exceptions", "type"}, {"settlement_exceptions", "state"},
		{"settlement_exceptions", "action"}, {"proposals", "kind"}, {"proposals", "state"}, {"audit_log", "outcome"},
	}
	fields := map[string][]string{
		"accounts.kind": {"account_kind"}, "accounts.status": {"account_status"},
		"card_orders.status": {"order_status"}, "card_payments.status": {"payment_status", "history_status"},
		"pay_orders.kind": {"order_kind"}, "pay_orders.status": {"order_status", "history_status"},
		"terminal_requests.kind": {"key_kind"}, "terminal_requests.state": {"history_status"},
		"settlement_batches.status": {"batch_state"}, "settlement_exceptions.type": {"exception_type"},
		"settlement_exceptions.state": {"exception_state"}, "settlement_exceptions.action": {"action"},
		"proposals.kind": {"proposal_kind"}, "proposals.state": {"proposal_state"}, "audit_log.outcome": {"audit_outcome"},
	}
	anyOf := regexp.MustCompile(`\((\w+) = ANY \(ARRAY\[([^\]]*)\]\)\)`)
	quoted := regexp.MustCompile(`'([^']*)'`)
	for _, c := range checked {
		rows, err := store.Pool().Query(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = $1::regclass AND contype = 'c'`, c.table)
		if err != nil {
			t.Fatal(err)
		}
		var words []string
		for rows.Next() {
			var def string
			if err := rows.Scan(&def); err != nil {
				t.Fatal(err)
			}
			for _, m := range anyOf.FindAllStringSubmatch(def, -1) {
				if m[1] == c.column {
					for _, q := range quoted.FindAllStringSubmatch(m[2], -1) {
						words = append(words, q[1])
					}
				}
			}
		}
		rows.Close()
		if len(words) == 0 {
			t.Errorf("%s.%s: no CHECK (... IN (...)) found", c.table, c.column)
		}
		for _, f := range fields[c.table+"."+c.column] {
			want[f] = append(want[f], words...)
		}
	}

	for field, words := range want {
		for _, w := range words {
			l, err := labelText(field, w)
			if err != nil {
				t.Fatal(err)
			}
			if l == w || !strings.ContainsFunc(l, func(r rune) bool { return unicode.Is(unicode.Han, r) }) {
				t.Errorf("%s %q has no Chinese label (%q)", field, w, l)
			}
		}
	}
	if len(want) != len(labels) {
		for f := range labels {
			if want[f] == nil {
				t.Errorf("label table %s is not checked against its enum", f)
			}
		}
	}
}

// The labels the newcomer asked for: date_mismatch is 日期不符; a payment
// missing from the day's file is 文件中没有, while 文件缺失 stays the batch
// whose whole file never came (as the POSP guide uses the words).
func TestSettlementWords(t *testing.T) {
	for _, c := range []struct{ field, word, want string }{
		{"exception_type", "date_mismatch", "日期不符"},
		{"exception_type", "missing_from_file", "文件中没有"},
		{"batch_state", "file_missing", "文件缺失"},
	} {
		if l, _ := labelText(c.field, c.word); l != c.want {
			t.Errorf("%s %s: %q, want %q", c.field, c.word, l, c.want)
		}
	}
	if _, err := labelText("no_such_field", "x"); err == nil {
		t.Error("an unknown label table answered")
	}
	h, _ := label("batch_state", "settled")
	if string(h) != `<span title="settled">已完成</span>` {
		t.Errorf("label HTML %s", h)
	}
	if h, _ := label("batch_state", `<b>new</b>`); string(h) != "&lt;b&gt;new&lt;/b&gt;" {
		t.Errorf("an unknown word is shown escaped as it is: %s", h)
	}
}
