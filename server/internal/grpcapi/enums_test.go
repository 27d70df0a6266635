package grpcapi

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/enumtext"
	"mapfront/internal/legacy"
	"mapfront/server/internal/mapfront"
)

// Every payment status the domain answers with becomes an enum value whose
// legacy text is the same Chinese, byte for byte: what the terminal read
// before the enums is what it reads now (SPEC section 5).
func TestPaymentStatusKeepsTheWire(t *testing.T) {
	for _, s := range []string{mapfront.StatusPaid, mapfront.StatusCancelled, mapfront.StatusReversed,
		mapfront.StatusWasCancelled, mapfront.StatusNothingToUndo} {
		e := paymentStatus(s)
		if e == mapfrontv1.PaymentStatus_PAYMENT_STATUS_UNSPECIFIED {
			t.Errorf("payment status %q has no enum value", s)
		}
		if got := legacy.LegacyText(e.Descriptor().Values().ByNumber(e.Number())); got != s {
			t.Errorf("payment status %q goes out as %q", s, got)
		}
	}
	if len(paymentStatuses) != len(mapfrontv1.PaymentStatus_name)-1 {
		t.Errorf("%d domain payment statuses for %d enum values", len(paymentStatuses), len(mapfrontv1.PaymentStatus_name)-1)
	}
}

// The card's status keeps the partner's Chinese on the wire (待生效, 正常,
// 冻结, 已注销), and AdminService's account status is the same enum.
func TestAccountStatusKeepsTheWire(t *testing.T) {
	for _, s := range []mapfront.AccountStatus{mapfront.Pending, mapfront.Active, mapfront.Frozen, mapfront.Closed} {
		e := accountStatus(s)
		if got := legacy.LegacyText(e.Descriptor().Values().ByNumber(e.Number())); got != s.Chinese() || got == "" {
			t.Errorf("account status %q goes out as %q, want %q", s, got, s.Chinese())
		}
	}
}

// Every state word of the domain and the database has its enum value, and
// back: nothing reads as *_UNSPECIFIED. date_mismatch and rejected are
// spelled out because their domain constants come with the settlement work
// that produces them.
func TestDomainWordsHaveEnumValues(t *testing.T) {
	check := func(what, word string, e protoreflect.Enum) {
		t.Helper()
		if e.Number() == 0 || enumtext.Word(e) != word {
			t.Errorf("%s %q becomes %v (word %q)", what, word, e, enumtext.Word(e))
		}
	}
	for _, ty := range append(mapfront.ExceptionTypes(), "date_mismatch") {
		check("exception type", string(ty), exceptionType(ty))
	}
	for _, a := range []mapfront.ResolveAction{mapfront.ActionActivate, mapfront.ActionRefundOwed, mapfront.ActionIgnore, mapfront.ActionLinkOrder} {
		check("action", string(a), word[mapfrontv1.ExceptionAction](string(a)))
	}
	for _, s := range []string{mapfront.ExceptionOpen, mapfront.ExceptionResolved} {
		check("exception state", s, word[mapfrontv1.ExceptionState](s))
	}
	for _, s := range []string{mapfront.BatchRunning, mapfront.BatchSettled, mapfront.BatchFileMissing, mapfront.BatchFailed, "rejected"} {
		check("batch state", s, word[mapfrontv1.BatchState](s))
	}
	// The CHECK constraints of card_orders, pay_orders and card_payments.
	for _, s := range []string{"pending", "active", "closed", "success", "cancelled", "reversed"} {
		check("order status", s, word[mapfrontv1.OrderStatus](s))
	}
	for _, s := range []string{"paid", "repealed"} {
		check("card payment status", s, word[mapfrontv1.CardPaymentStatus](s))
	}
	if e := word[mapfrontv1.BatchState]("no_such_state"); e != mapfrontv1.BatchState_BATCH_STATE_UNSPECIFIED {
		t.Errorf("an unknown word became %v", e)
	}
}

// A state number this build does not know is refused (10001), not read as
// "every state"; the store is never reached.
func TestListExceptionsRefusesUnknownState(t *testing.T) {
	s := &AdminServer{Log: slog.New(slog.DiscardHandler)}
	_, err := s.ListExceptions(context.Background(), &mapfrontv1.ListExceptionsRequest{State: 99})
	var code int32
	for _, d := range status.Convert(err).Details() {
		if ed, ok := d.(*mapfrontv1.ErrorDetail); ok {
			code = ed.Errcode
		}
	}
	if code != 10001 {
		t.Errorf("ListExceptions with state 99: %v (errcode %d), want 10001", err, code)
	}
}
