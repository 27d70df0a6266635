package grpcapi

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	mapfrontv1 "mapfront/gen/mapfront/v1"
)

// nulField finds U+0000 in any string: top level, nested messages,
// repeated fields, map keys and values; it names the field by its JSON name.
func TestNulField(t *testing.T) {
	nested, _ := structpb.NewStruct(map[string]any{"ok": "a", "k": []any{"b", map[string]any{"deep": "c\x00"}}})
	cases := []struct {
		m    proto.Message
		want string
	}{
		{&mapfrontv1.TopUpCashRequest{MobileNum: "13912345678", Reference: "r"}, ""},
		{&mapfrontv1.TopUpCashRequest{MobileNum: "13912345678", Reference: "r\x00"}, "reference"},
		{&mapfrontv1.ListStatementRequest{AccountId: "\x00"}, "accountId"},
		{&mapfrontv1.UpsertProductRequest{Product: &mapfrontv1.Product{Name: "n", Remark: "x\x00y"}}, "product.remark"},
		{&mapfrontv1.VerifyLedgerResponse{Unbalanced: []string{"a", "b\x00"}}, "unbalanced[1]"},
		{nested, "fields[k].listValue.values[1].structValue.fields[deep].stringValue"},
		{&structpb.Struct{Fields: map[string]*structpb.Value{"a\x00": structpb.NewNullValue()}}, "fields"},
	}
	for _, c := range cases {
		if got := nulField(c.m.ProtoReflect(), ""); got != c.want {
			t.Errorf("%T %v: %q, want %q", c.m, c.m, got, c.want)
		}
	}
}
