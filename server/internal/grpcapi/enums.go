package grpcapi

import (
	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/enumtext"
	"mapfront/server/internal/mapfront"
)

// The typed contracts (proto/mapfront/v1/states.proto) at the gRPC edge. The
// domain and the database spell states as words ("settled", "refund_owed"),
// which are the enum names without their prefix (enumtext); a word the enum
// does not know becomes *_UNSPECIFIED rather than an error, because it can
// only come from a newer database than this build, and a read must not fail
// on it.

// paymentStatuses maps the domain's payment statuses, which are the
// partner's Chinese because stored answers hold them, to the enum; the legacy
// edge writes the enum's legacy_text, the same Chinese, back onto the wire.
var paymentStatuses = map[string]mapfrontv1.PaymentStatus{
	mapfront.StatusPaid:          mapfrontv1.PaymentStatus_PAYMENT_STATUS_PAID,
	mapfront.StatusCancelled:     mapfrontv1.PaymentStatus_PAYMENT_STATUS_CANCELLED,
	mapfront.StatusReversed:      mapfrontv1.PaymentStatus_PAYMENT_STATUS_REVERSED,
	mapfront.StatusWasCancelled:  mapfrontv1.PaymentStatus_PAYMENT_STATUS_ORIGINAL_CANCELLED,
	mapfront.StatusNothingToUndo: mapfrontv1.PaymentStatus_PAYMENT_STATUS_ORIGINAL_NOT_APPROVED,
}

func paymentStatus(s string) mapfrontv1.PaymentStatus { return paymentStatuses[s] }

func accountStatus(s mapfront.AccountStatus) mapfrontv1.AccountStatus {
	return word[mapfrontv1.AccountStatus](string(s))
}

func exceptionType(t mapfront.ExceptionType) mapfrontv1.ExceptionType {
	return word[mapfrontv1.ExceptionType](string(t))
}

// word is the enum value of a domain word, *_UNSPECIFIED if none.
func word[E enumtext.Enum](s string) E {
	e, _ := enumtext.Parse[E](s)
	return e
}
