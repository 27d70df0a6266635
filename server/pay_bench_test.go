package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/legacy"
	"mapfront/internal/mtls"
	"mapfront/server/internal/config"
	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
	"mapfront/server/internal/pinblock"
	"mapfront/server/internal/postgres"
	"mapfront/server/internal/secret"
)

// benchCustomers and benchClients shape BenchmarkLegacyPay's load: pays
// spread over this many customers (few enough row-lock waits, many enough
// batches) from 16 concurrent HTTP clients, as bench/compare.sh sends.
const (
	benchCustomers  = 256
	benchClients    = 16
	benchPayTimeout = 30 * time.Second
)

// BenchmarkLegacyPay drives real pays end to end: HTTP POST of the partner's
// JSON over keep-alive connections, the legacy edge, the gRPC service with
// its interceptors, the PIN block, the password and PostgreSQL (a fresh
// database, group commit on as the benchmarks run it). Sub-benchmarks:
// "single" is the server's own legacy listener (single-binary mode);
// "gateway" is the gateway program's handler in this process, calling the
// server over real mutual-TLS gRPC on loopback.
//
// Besides ns/op it reports cpu-µs/pay: this process's user+system CPU time
// (getrusage) per pay. The process holds the HTTP clients too; a CPU profile
// tells them apart by the pprof label side=client, so
//
//	go test -run '^$' -bench LegacyPay -benchtime 4000x -cpuprofile cpu.out ./server
//	go tool pprof -tagignore side=client -top cpu.out
//
// shows the server side alone. PostgreSQL's own CPU is not in the figure.
func BenchmarkLegacyPay(b *testing.B) {
	if testing.Short() {
		b.Skip("needs PostgreSQL")
	}
	keys, err := secret.Parse(secret.Generate())
	if err != nil {
		b.Fatal(err)
	}
	zone, _ := time.LoadLocation("Asia/Shanghai")
	cfg := &config.Config{GRPCAddr: freeAddr(b), HTTPAddr: freeAddr(b), LegacyAddr: freeAddr(b), Zone: zone,
		Policy: mapfront.DefaultPolicy(), MaxConns: 8, StatementTimeout: 5 * time.Second, MaxMessageBytes: 4 << 20,
		ShutdownTimeout: 5 * time.Second, PayBatchMax: 16, PayBatchLanes: 4}
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	store, err := postgres.Open(ctx, pgtest.NewDatabase(b), postgres.Options{
		Clock: mapfront.Clock{Zone: zone, Now: time.Now}, Policy: cfg.Policy,
		NewCustomerPassword: mapfront.InitialPasswordHasher(cfg.Policy, keys), SealID: mapfront.IDSealer(keys), Log: log, MaxConns: 8})
	if err != nil {
		b.Fatal(err)
	}
	admin := mapfront.NewAdminService(store, keys, cfg.Policy)
	if err := admin.LoadDemo(ctx, demoTPK); err != nil {
		b.Fatal(err)
	}
	tpk, err := hex.DecodeString(demoTPK)
	if err != nil {
		b.Fatal(err)
	}
	customers := make([]benchCustomer, benchCustomers)
	for i := range customers {
		mobile := fmt.Sprintf("150%08d", i)
		body := fmt.Sprintf("110105196001%02d%03d", 1+i/1000, i%1000)
		if _, err := admin.CreateCustomer(ctx, mobile, body+string(idCheckChar(body))); err != nil {
			b.Fatal(err)
		}
		if err := admin.SetPaymentPassword(ctx, mobile, "123456"); err != nil {
			b.Fatal(err)
		}
		if _, _, err := admin.TopUpCash(ctx, mobile, 1_000_000, "bench-"+mobile); err != nil {
			b.Fatal(err)
		}
		pb, err := pinblock.Build("123456", mobile, tpk, pinblock.DoubleLength)
		if err != nil {
			b.Fatal(err)
		}
		customers[i] = benchCustomer{mobile: mobile, block: pb}
	}
	pki := withTestTLS(b, cfg)
	gw := pki.Client("gateway")
	cfg.LegacyCert, cfg.LegacyKey = gw.Cert, gw.Key
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log, store, keys) }()
	b.Cleanup(func() {
		cancel()
		<-done
		store.Close()
	})
	waitReady(b, "http://"+cfg.HTTPAddr+"/readyz")

	// The gateway program's handler, as gateway/main.go builds it, and
	// variants of its gRPC connection (issue 11: is the hop cheaper so?).
	gwFiles := mtls.Files{CA: pki.CAFile(), Cert: gw.Cert, Key: gw.Key}
	gatewayBase := startBenchGateway(b, cfg.GRPCAddr, gwFiles, log, 1)
	pool4 := startBenchGateway(b, cfg.GRPCAddr, gwFiles, log, 4)
	sharedBuf := startBenchGateway(b, cfg.GRPCAddr, gwFiles, log, 1, grpc.WithSharedWriteBuffer(true))
	smallBuf := startBenchGateway(b, cfg.GRPCAddr, gwFiles, log, 1, grpc.WithReadBufferSize(8<<10), grpc.WithWriteBufferSize(8<<10))

	var seq atomic.Int64
	run := func(b *testing.B, base string) {
		client := &http.Client{Timeout: benchPayTimeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: benchClients * 2, DisableCompression: true}}
		defer client.CloseIdleConnections()
		b.SetParallelism((benchClients + 1) / 2) // ×GOMAXPROCS (2 here) goroutines
		b.ReportAllocs()
		before := cpuTime()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			pprof.Do(context.Background(), pprof.Labels("side", "client"), func(context.Context) {
				for pb.Next() {
					n := seq.Add(1)
					c := customers[n%int64(len(customers))]
					doc := `{"order":{"consumerId":"` + c.mobile + `","paymentCodeDES":"` + c.block +
						`","sum":1,"sellerId":"SH12345","storeId":"ST12345","terminalId":"ZJ000001","operatorId":"bench",` +
						`"batchNo":"000001","terminalOrderId":"` + fmt.Sprint(n) + `","productName":"0号柴油","productPrice":500,"productQuantity":"1.55","remark":""}}`
					resp, err := client.Post(base+"/front/offline/pay", "application/json", strings.NewReader(doc))
					if err != nil {
						b.Error(err)
						return
					}
					raw, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || !strings.HasPrefix(string(raw), `{"errcode":0,`) {
						b.Errorf("pay: %v %s", err, raw)
						return
					}
				}
			})
		})
		b.StopTimer()
		b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(b.N), "cpu-µs/pay")
	}
	b.Run("single", func(b *testing.B) { run(b, "http://"+cfg.LegacyAddr) })
	b.Run("gateway", func(b *testing.B) { run(b, gatewayBase) })
	b.Run("gateway-4conns", func(b *testing.B) { run(b, pool4) })
	b.Run("gateway-sharedwritebuf", func(b *testing.B) { run(b, sharedBuf) })
	b.Run("gateway-8kbufs", func(b *testing.B) { run(b, smallBuf) })
}

type benchCustomer struct{ mobile, block string }

// startBenchGateway serves the gateway program's legacy handler on loopback,
// calling the server at grpcAddr over mutual TLS as the gateway identity,
// over conns connections (pays taken in turn) dialled with opts.
func startBenchGateway(b *testing.B, grpcAddr string, files mtls.Files, log *slog.Logger, conns int, opts ...grpc.DialOption) string {
	b.Helper()
	tc, err := mtls.ClientConfig(files)
	if err != nil {
		b.Fatal(err)
	}
	pool := &payPool{}
	for range conns {
		conn, err := grpc.NewClient(grpcAddr, append(append(legacy.ClientOptions(), grpc.WithTransportCredentials(credentials.NewTLS(tc))), opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		pool.clients = append(pool.clients, mapfrontv1.NewOfflineServiceClient(conn))
	}
	pool.OfflineServiceClient = pool.clients[0]
	api, err := legacy.NewHandler(pool, legacy.Options{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// payPool sends each Pay on the next of its clients.
type payPool struct {
	mapfrontv1.OfflineServiceClient
	clients []mapfrontv1.OfflineServiceClient
	next    atomic.Uint64
}

func (p *payPool) Pay(ctx context.Context, in *mapfrontv1.PayRequest, opts ...grpc.CallOption) (*mapfrontv1.PayResponse, error) {
	return p.clients[p.next.Add(1)%uint64(len(p.clients))].Pay(ctx, in, opts...)
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// idCheckChar is the GB 11643 check character of a 17-digit ID body.
func idCheckChar(body string) byte {
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := range 17 {
		sum += int(body[i]-'0') * weights[i]
	}
	return "10X98765432"[sum%11]
}
