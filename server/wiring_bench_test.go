package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/legacy"
	"mapfront/internal/mtls"
	"mapfront/server/internal/authz"
	"mapfront/server/internal/config"
	"mapfront/server/internal/metrics"
)

// payEcho answers every Pay at once, without a database: what is left to
// measure is the legacy edge and the path to the service.
type payEcho struct {
	mapfrontv1.UnimplementedOfflineServiceServer
}

func (payEcho) Pay(_ context.Context, in *mapfrontv1.PayRequest) (*mapfrontv1.PayResponse, error) {
	o := in.GetOrder()
	balance := int64(295000)
	return &mapfrontv1.PayResponse{Order: &mapfrontv1.PaymentOrder{
		OrderId: "ud20261126181354000003", ConsumerId: o.ConsumerId, Sum: o.GetSum(), PayTime: "2026-11-26 18:13:54",
		SellerId: o.SellerId, StoreId: o.StoreId, TerminalId: o.TerminalId, OperatorId: o.OperatorId,
		BatchNo: o.BatchNo, TerminalOrderId: o.TerminalOrderId, Status: mapfrontv1.PaymentStatus_PAYMENT_STATUS_PAID,
		AccountId: &o.ConsumerId, Balance: &balance,
	}}, nil
}

// directPay calls the service as a function, skipping gRPC and its
// interceptors: the former single-binary path, kept here as the baseline.
type directPay struct {
	mapfrontv1.OfflineServiceClient
	srv mapfrontv1.OfflineServiceServer
}

func (c directPay) Pay(ctx context.Context, in *mapfrontv1.PayRequest, _ ...grpc.CallOption) (*mapfrontv1.PayResponse, error) {
	return c.srv.Pay(ctx, in)
}

// BenchmarkSingleBinaryPay measures what reaching the service costs one
// legacy pay in single-binary mode, without the database: "direct" calls
// the service as a function (no interceptors), "chain" is the path the
// server takes (inProcessOffline: the interceptor chain, in-process), and
// "bufconn" the former path, a gRPC connection over an in-memory pipe
// (protobuf encoding both ways, HTTP/2 framing; plaintext here, where the
// server used TLS), kept as the baseline of issue 11.
func BenchmarkSingleBinaryPay(b *testing.B) {
	body := `{"order":{"consumerId":"13912345678","paymentCodeDES":"B5BA8AF886E80014","sum":5000,"sellerId":"SH12345","storeId":"ST12345","terminalId":"ZJ000001","operatorId":"op01","batchNo":"000001","terminalOrderId":"000001","productName":"0号柴油","productPrice":500,"productQuantity":"10"}}`
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	run := func(b *testing.B, client mapfrontv1.OfflineServiceClient) {
		h, err := legacy.NewHandler(client, legacy.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("POST", "/front/offline/pay", strings.NewReader(body)))
			if !strings.Contains(rec.Body.String(), `"status":"支付成功"`) {
				b.Fatalf("answer %s", rec.Body)
			}
		}
	}
	cfg := &config.Config{MaxMessageBytes: 4 << 20}
	// The development plaintext mode's identity with the posp role: the
	// authorization interceptor runs as it does in production.
	az := authz.New(authz.Roles{authz.DevIdentity: {authz.POSP}}, authz.Options{DevPlaintext: true})
	m := metrics.New(nil)
	b.Run("direct", func(b *testing.B) { run(b, directPay{srv: payEcho{}}) })
	b.Run("chain", func(b *testing.B) {
		caller, err := authz.InProcessPeer(mtls.Files{}, true)
		if err != nil {
			b.Fatal(err)
		}
		run(b, newInProcessOffline(payEcho{}, unaryInterceptors(log, m, az, nil), caller))
	})
	b.Run("bufconn", func(b *testing.B) {
		srv := grpc.NewServer(serverOptions(cfg, log, m, az, nil)...)
		mapfrontv1.RegisterOfflineServiceServer(srv, payEcho{})
		lis := bufconn.Listen(1 << 20)
		go func() { _ = srv.Serve(lis) }()
		defer srv.Stop()
		conn, err := grpc.NewClient("passthrough:///in-process",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		run(b, mapfrontv1.NewOfflineServiceClient(conn))
	})
}
