package enumtext_test

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/enumtext"
)

// The words are the ones the database's CHECK constraints, the domain's
// constants and the settlement command's output already use.
func TestWord(t *testing.T) {
	for _, c := range []struct {
		value protoreflect.Enum
		want  string
	}{
		{mapfrontv1.BatchState_BATCH_STATE_SETTLED, "settled"},
		{mapfrontv1.BatchState_BATCH_STATE_FILE_MISSING, "file_missing"},
		{mapfrontv1.BatchState_BATCH_STATE_REJECTED, "rejected"},
		{mapfrontv1.ExceptionType_EXCEPTION_TYPE_INCOMPLETE_AFTER_WINDOW, "incomplete_after_window"},
		{mapfrontv1.ExceptionType_EXCEPTION_TYPE_DATE_MISMATCH, "date_mismatch"},
		{mapfrontv1.ExceptionAction_EXCEPTION_ACTION_REFUND_OWED, "refund_owed"},
		{mapfrontv1.ExceptionState_EXCEPTION_STATE_OPEN, "open"},
		{mapfrontv1.AccountStatus_ACCOUNT_STATUS_PENDING, "pending"},
		{mapfrontv1.OrderStatus_ORDER_STATUS_SUCCESS, "success"},
		{mapfrontv1.CardPaymentStatus_CARD_PAYMENT_STATUS_REPEALED, "repealed"},
		{mapfrontv1.PaymentStatus_PAYMENT_STATUS_ORIGINAL_NOT_APPROVED, "original_not_approved"},
		{mapfrontv1.BatchState_BATCH_STATE_UNSPECIFIED, ""},
		{mapfrontv1.BatchState(99), ""},
	} {
		if got := enumtext.Word(c.value); got != c.want {
			t.Errorf("Word(%v) = %q, want %q", c.value, got, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		word   string
		want   mapfrontv1.ExceptionAction
		wantOK bool
	}{
		{"activate", mapfrontv1.ExceptionAction_EXCEPTION_ACTION_ACTIVATE, true},
		{"refund_owed", mapfrontv1.ExceptionAction_EXCEPTION_ACTION_REFUND_OWED, true},
		{"link_order", mapfrontv1.ExceptionAction_EXCEPTION_ACTION_LINK_ORDER, true},
		{"", 0, false},
		{"unspecified", 0, false},
		{"IGNORE", 0, false},
		{"EXCEPTION_ACTION_IGNORE", 0, false},
		{"exception_action_ignore", 0, false},
		{"refund", 0, false},
	} {
		got, ok := enumtext.Parse[mapfrontv1.ExceptionAction](c.word)
		if got != c.want || ok != c.wantOK {
			t.Errorf("Parse(%q) = %v, %v; want %v, %v", c.word, got, ok, c.want, c.wantOK)
		}
	}
}

// Every value of every enum of states.proto round-trips through its word.
func TestEveryValueRoundTrips(t *testing.T) {
	roundTrip[mapfrontv1.PaymentStatus](t)
	roundTrip[mapfrontv1.AccountStatus](t)
	roundTrip[mapfrontv1.OrderStatus](t)
	roundTrip[mapfrontv1.CardPaymentStatus](t)
	roundTrip[mapfrontv1.BatchState](t)
	roundTrip[mapfrontv1.ExceptionType](t)
	roundTrip[mapfrontv1.ExceptionState](t)
	roundTrip[mapfrontv1.ExceptionAction](t)
}

func roundTrip[E enumtext.Enum](t *testing.T) {
	t.Helper()
	var zero E
	values := zero.Descriptor().Values()
	words := enumtext.Words[E]()
	if len(words) != values.Len()-1 {
		t.Errorf("%s: %d words for %d values", zero.Descriptor().Name(), len(words), values.Len())
	}
	for _, w := range words {
		e, ok := enumtext.Parse[E](w)
		if !ok || enumtext.Word(e) != w {
			t.Errorf("%s: word %q parses to %v, %v", zero.Descriptor().Name(), w, e, ok)
		}
	}
	if slices.Contains(words, "") {
		t.Errorf("%s: an empty word in %v", zero.Descriptor().Name(), words)
	}
}
