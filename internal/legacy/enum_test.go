package legacy

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// The enums of the answers go out as the partner's words of SPEC section 5
// and the partner document, byte for byte; the zero value as "".
func TestLegacyText(t *testing.T) {
	for _, c := range []struct {
		value protoreflect.Enum
		want  string
	}{
		{mapfrontv1.PaymentStatus_PAYMENT_STATUS_PAID, "支付成功"},
		{mapfrontv1.PaymentStatus_PAYMENT_STATUS_CANCELLED, "消费撤销成功"},
		{mapfrontv1.PaymentStatus_PAYMENT_STATUS_REVERSED, "支付失败，冲正成功"},
		{mapfrontv1.PaymentStatus_PAYMENT_STATUS_ORIGINAL_CANCELLED, "原交易已撤销，无需冲正"},
		{mapfrontv1.PaymentStatus_PAYMENT_STATUS_ORIGINAL_NOT_APPROVED, "原交易未成功，冲正成功"},
		{mapfrontv1.PaymentStatus_PAYMENT_STATUS_UNSPECIFIED, ""},
		{mapfrontv1.AccountStatus_ACCOUNT_STATUS_PENDING, "待生效"},
		{mapfrontv1.AccountStatus_ACCOUNT_STATUS_ACTIVE, "正常"},
		{mapfrontv1.AccountStatus_ACCOUNT_STATUS_FROZEN, "冻结"},
		{mapfrontv1.AccountStatus_ACCOUNT_STATUS_CLOSED, "已注销"},
	} {
		if got := LegacyText(c.value.Descriptor().Values().ByNumber(c.value.Number())); got != c.want {
			t.Errorf("%v goes out as %q, want %q", c.value, got, c.want)
		}
	}
	if got := LegacyText(nil); got != "" {
		t.Errorf("an unknown number goes out as %q", got)
	}
}

// The codec reads the words back (it is one mapping both ways) and refuses a
// word that names no value, such as the proto name.
func TestEnumDecode(t *testing.T) {
	var card mapfrontv1.Card
	if err := unmarshal([]byte(`{"status":"冻结"}`), &card); err != nil || card.Status != mapfrontv1.AccountStatus_ACCOUNT_STATUS_FROZEN {
		t.Errorf(`"冻结" decodes to %v, %v`, card.Status, err)
	}
	if out := string(appendMessage(nil, card.ProtoReflect())); out != `{"accountId":"","balance":0,"status":"冻结","remark":""}` {
		t.Errorf("encoded %s", out)
	}
	for _, bad := range []string{`{"status":"ACCOUNT_STATUS_FROZEN"}`, `{"status":3}`, `{"status":"frozen"}`} {
		if err := unmarshal([]byte(bad), &card); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}
