// Command server is mapfront's gRPC server on PostgreSQL. It only wires
// things together: configuration, keys, the store, the gRPC services, health
// and graceful shutdown. Subcommands:
//
//	server [serve]       run the gRPC server (default)
//	server migrate       apply the embedded migrations and exit
//	server demo          load the demo data of SPEC section 8 and exit
//	server verify-ledger ask a running server to prove the ledger (exit 1 if not)
//	server pinblock      build a paymentCodeDES for a PIN, consumerId and key
//	server keygen        print a new random master key
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/legacy"
	"mapfront/server/internal/config"
	"mapfront/server/internal/grpcapi"
	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/metrics"
	"mapfront/server/internal/pinblock"
	"mapfront/server/internal/postgres"
	"mapfront/server/internal/secret"
)

// demoTPK is the demo terminals' PIN key of SPEC section 8: public test data,
// not a secret.
const demoTPK = "0123456789ABCDEFFEDCBA9876543210"

func main() {
	cmd, args := "serve", os.Args[1:]
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve", "migrate", "demo":
		err = runServer(cmd, args)
	case "verify-ledger":
		err = verifyLedger(args)
	case "pinblock":
		err = buildPINBlock(args)
	case "keygen":
		fmt.Println(secret.Generate())
	default:
		err = fmt.Errorf("unknown command %q (serve, migrate, demo, verify-ledger, pinblock, keygen)", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func runServer(cmd string, args []string) error {
	cfg, err := config.Load(flag.NewFlagSet(cmd, flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	if err := cfg.RequireDatabase(); err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	keys, err := secret.FromEnv()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{
		Clock:  mapfront.Clock{Zone: cfg.Zone, Cutover: cfg.Cutover, Now: time.Now},
		Policy: cfg.Policy, Keys: keys, Log: log,
		MaxConns: cfg.MaxConns, StatementTimeout: cfg.StatementTimeout,
	})
	if err != nil {
		return err
	}
	defer store.Close()
	switch cmd {
	case "migrate":
		log.Info("migrations applied")
		return nil
	case "demo":
		if err := store.LoadDemo(ctx, postgres.Demo{TPKHex: demoTPK, KCV: func(k []byte) string { return kcv(k, false) }}); err != nil {
			return err
		}
		log.Info("demo data loaded")
		return nil
	}
	return serve(ctx, cfg, log, store)
}

func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, store *postgres.Store) error {
	m := metrics.New(store.Pool())
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(m.Unary, grpcapi.Recover(log)),
		grpc.ChainStreamInterceptor(m.Stream),
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.ConnectionTimeout(10*time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute}),
	)
	offline := &grpcapi.OfflineServer{Store: store, Log: log}
	mapfrontv1.RegisterOfflineServiceServer(srv, offline)
	mapfrontv1.RegisterAdminServiceServer(srv, &grpcapi.AdminServer{Store: store, Log: log, KCV: kcv})
	mapfrontv1.RegisterSettlementServiceServer(srv, &grpcapi.SettlementServer{Store: store, Log: log, CompletionWindow: cfg.CompletionWindow,
		OnBatch: func(status string) { m.Batches.WithLabelValues(status).Inc() }})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)

	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Addr: cfg.HTTPAddr, Handler: opsHandler(store, m), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(lis) }()
	go func() {
		if err := httpSrv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	var legacySrv *http.Server
	if cfg.LegacyAddr != "" {
		// Single-binary mode: the legacy JSON paths served here, calling
		// OfflineService in-process (no gRPC hop); the gateway program does
		// the same over the network.
		api, err := legacy.NewHandler(grpcapi.LocalOfflineClient{Server: offline}, legacy.Options{
			Logger: log, Observe: m.ObserveLegacy, Limits: cfg.LegacyEdge.Limits, Refused: m.ObserveRefusal})
		if err != nil {
			return err
		}
		// The same listener as the gateway's: TLS, client certificates,
		// source allowlist, and net/http's refusals in the envelope.
		ll, err := legacy.Listen(cfg.LegacyAddr, cfg.LegacyEdge)
		if err != nil {
			return err
		}
		legacySrv = legacy.NewServer(cfg.LegacyEdge, api, legacy.ServerLimits{ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 20 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10},
			log, m.ObserveRefusal)
		go func() {
			if err := legacySrv.Serve(ll); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	log.Info("server listening", "grpc", cfg.GRPCAddr, "http", cfg.HTTPAddr, "legacy", cfg.LegacyAddr,
		"activation", cfg.Policy.Activation, "zone", cfg.Zone.String())

	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	log.Info("shutting down")
	hs.Shutdown()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if legacySrv != nil {
		_ = legacySrv.Shutdown(sctx)
	}
	_ = httpSrv.Shutdown(sctx)
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		srv.Stop()
	}
	return nil
}

// opsHandler serves /healthz (the process runs), /readyz (the database
// answers) and /metrics (Prometheus).
func opsHandler(store *postgres.Store, m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	// pprof on the operations listener (loopback by default), for profiling
	// the pay path under load (BENCHMARKS.md).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

func kcv(key []byte, legacy bool) string {
	keying := pinblock.DoubleLength
	if legacy {
		keying = pinblock.LegacySingle
	}
	v, err := pinblock.KCV(key, keying)
	if err != nil {
		return ""
	}
	return v
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// verifyLedger calls AdminService.VerifyLedger on a running server.
func verifyLedger(args []string) error {
	fs := flag.NewFlagSet("verify-ledger", flag.ContinueOnError)
	addr := fs.String("grpc-addr", envOr("MAPFRONT_GRPC_ADDR", "127.0.0.1:9090"), "server gRPC address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := mapfrontv1.NewAdminServiceClient(conn).VerifyLedger(ctx, &mapfrontv1.VerifyLedgerRequest{})
	if err != nil {
		return err
	}
	fmt.Printf("transactions %d, postings %d, customer accounts %d\n", r.Transactions, r.Postings, r.Accounts)
	for _, l := range [][]string{r.Unbalanced, r.Mismatched, r.Negative} {
		for _, row := range l {
			fmt.Println("  ", row)
		}
	}
	if !r.Ok {
		return errors.New("ledger does NOT prove")
	}
	fmt.Println("ledger proves: every transaction balances, every balance equals its postings, none negative")
	return nil
}

// buildPINBlock prints the paymentCodeDES a terminal would send.
func buildPINBlock(args []string) error {
	fs := flag.NewFlagSet("pinblock", flag.ContinueOnError)
	pin := fs.String("pin", "", "the payment password (PIN)")
	consumer := fs.String("consumer", "", "consumerId: mobile number or accountId (the PAN of the block)")
	key := fs.String("key", demoTPK, "the terminal's PIN key in hex (default: the demo TPK)")
	legacy := fs.Bool("legacy", false, "single-length DES key (legacy terminals only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	k, err := hexKey(*key)
	if err != nil {
		return err
	}
	keying := pinblock.DoubleLength
	if *legacy {
		keying = pinblock.LegacySingle
	}
	block, err := pinblock.Build(*pin, *consumer, k, keying)
	if err != nil {
		return err
	}
	fmt.Println(block)
	return nil
}
