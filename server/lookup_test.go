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

// The console's look-ups over gRPC, as the auditor: the demo customer by
// the whole ID number (the answer holds only the masked form), nothing for
// another number, 10001 for a malformed one; a terminal key with no
// history answers an empty list.
func TestLookupsOverGRPC(t *testing.T) {
	var p *mtlstest.PKI
	cfg := startGRPC(t, func(c *config.Config) { p = withTestTLS(t, c) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	auditor := mapfrontv1.NewAdminServiceClient(dialWith(t, cfg.GRPCAddr, p.Client("auditor"), ""))
	const id = "11010519491231002X"
	r, err := auditor.FindCustomerByID(ctx, &mapfrontv1.FindCustomerByIDRequest{IdNumber: strings.ToLower(id)})
	if err != nil || len(r.Customers) != 1 || r.Customers[0].MobileNum != "13912345678" || r.Customers[0].IdNumberMasked != "110105********002X" {
		t.Fatalf("FindCustomerByID: %v %v", r, err)
	}
	if strings.Contains(r.String(), id) {
		t.Errorf("the answer holds the whole ID number: %v", r)
	}
	if r, err := auditor.FindCustomerByID(ctx, &mapfrontv1.FindCustomerByIDRequest{IdNumber: "110105198001010016"}); err != nil || len(r.Customers) != 0 {
		t.Errorf("another ID number: %v %v, want none", r, err)
	}
	_, err = auditor.FindCustomerByID(ctx, &mapfrontv1.FindCustomerByIDRequest{IdNumber: "110105194912310021"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "身份证号") {
		t.Errorf("a wrong check digit: %v, want InvalidArgument (10001)", err)
	}
	h, err := auditor.GetTerminalKeyHistory(ctx, &mapfrontv1.GetTerminalKeyHistoryRequest{TerminalId: "POS01", BatchNo: "1", TerminalOrderId: "none"})
	if err != nil || len(h.Events) != 0 {
		t.Errorf("an unused key: %v %v, want no events", h, err)
	}
}
