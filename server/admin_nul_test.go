package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/mtls/mtlstest"
	"mapfront/server/internal/config"
)

// An AdminService request holding U+0000 in a string field (valid proto3,
// refused by PostgreSQL text) is answered 10001 naming the field, whichever
// method; a refused change is in the audit trail (refused, 10001, the
// field), a refused read is not; nothing moves.
func TestAdminNULFieldsRefusedOverGRPC(t *testing.T) {
	var p *mtlstest.PKI
	cfg := startGRPC(t, func(c *config.Config) { p = withTestTLS(t, c) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := func(id string) mapfrontv1.AdminServiceClient {
		return mapfrontv1.NewAdminServiceClient(dialWith(t, cfg.GRPCAddr, p.Client(id), ""))
	}
	admin, operator, auditor := client("admin"), client("operator"), client("auditor")
	const mobile, card = "13912345678", "1010123412341234"
	balance := func() int64 {
		t.Helper()
		c, err := auditor.GetCustomer(ctx, &mapfrontv1.GetCustomerRequest{MobileNum: mobile})
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, a := range c.GetCustomer().GetAccounts() {
			sum += a.GetBalance()
		}
		return sum
	}
	before := balance()
	cases := []struct {
		who, method, field string
		audited            bool
		call               func() error
	}{
		{"admin", "TopUpCash", "reference", true, func() error {
			_, err := admin.TopUpCash(ctx, &mapfrontv1.TopUpCashRequest{MobileNum: mobile, Amount: 100, Reference: "ref\x00x"})
			return err
		}},
		{"operator", "GetCustomer", "mobileNum", false, func() error {
			_, err := operator.GetCustomer(ctx, &mapfrontv1.GetCustomerRequest{MobileNum: "139\x00"})
			return err
		}},
		{"operator", "FreezeAccount", "accountId", true, func() error {
			_, err := operator.FreezeAccount(ctx, &mapfrontv1.FreezeAccountRequest{AccountId: card + "\x00"})
			return err
		}},
		{"admin", "UpsertSeller", "name", true, func() error {
			_, err := admin.UpsertSeller(ctx, &mapfrontv1.UpsertSellerRequest{SellerId: "SHX", Name: "n\x00", Enabled: true})
			return err
		}},
		{"admin", "UpsertProduct", "product.remark", true, func() error {
			_, err := admin.UpsertProduct(ctx, &mapfrontv1.UpsertProductRequest{Product: &mapfrontv1.Product{ProductId: "2020",
				Name: "p", ShortName: "p", Price: 100, FaceValue: 100, OnSale: true, Remark: "r\x00"}})
			return err
		}},
		{"auditor", "ListAudit", "target", false, func() error {
			_, err := auditor.ListAudit(ctx, &mapfrontv1.ListAuditRequest{Target: "x\x00"})
			return err
		}},
	}
	for _, c := range cases {
		err := c.call()
		st := status.Convert(err)
		var d *mapfrontv1.ErrorDetail
		for _, x := range st.Details() {
			if x, ok := x.(*mapfrontv1.ErrorDetail); ok {
				d = x
			}
		}
		if st.Code() != codes.InvalidArgument || d == nil || d.Errcode != 10001 || !strings.Contains(d.Errmsg, "字段"+c.field+"格式错误") {
			t.Errorf("%s with a NUL in %s: %v %+v, want InvalidArgument 10001 naming %s", c.method, c.field, err, d, c.field)
		}
		trail, err := auditor.ListAudit(ctx, &mapfrontv1.ListAuditRequest{Identity: c.who, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		recorded := len(trail.Records) == 1 && trail.Records[0].Method == "/mapfront.v1.AdminService/"+c.method
		if recorded != c.audited {
			t.Errorf("%s: audited %v, want %v (%+v)", c.method, recorded, c.audited, trail.Records)
			continue
		}
		if r := trail.GetRecords(); recorded && (r[0].Outcome != "refused" || r[0].Errcode != 10001 ||
			r[0].ArgsJson != `{"field": "`+c.field+`"}`) {
			t.Errorf("%s: audit record %+v", c.method, r[0])
		}
	}
	if got := balance(); got != before {
		t.Fatalf("balance %d, want %d", got, before)
	}
}
