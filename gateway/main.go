// Command gateway serves the partner's legacy JSON paths (POST
// /front/offline/*) to the POSP and transcodes them to the gRPC
// OfflineService of the mapfront server (SPEC sections 1 and 2). It also
// serves /healthz, /readyz and /openapi.json for operations.
//
// Configuration is by flags or environment variables; run with -h for the
// list. Logs are JSON lines on stderr and never hold a request body.
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
	"runtime/debug"
	"syscall"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/legacy"
	"mapfront/internal/legacyopenapi"
	"mapfront/internal/mtls"
)

// defaultGCPercent is the garbage collector's target (GOGC) unless GOGC is
// set: see the server's (server/main.go).
const defaultGCPercent = 400

func main() {
	cfg, err := loadConfig(os.Args[1:], os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway: configuration:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// As the server (server/main.go, defaultGCPercent): a small live heap
	// and an allocation per request; GOGC set in the environment wins.
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(defaultGCPercent)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, stop, cfg, log); err != nil {
		log.Error("gateway stopped", "error", err.Error())
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down gracefully: in-flight
// requests (which may be moving money) get ShutdownTimeout to finish.
// stopSignals is called once shutdown starts, so that a second signal kills.
func run(ctx context.Context, stopSignals func(), cfg config, log *slog.Logger) error {
	// The link to the server is mutual TLS: the server knows the gateway by
	// its certificate and lets it call OfflineService only (SPEC section 7).
	// legacy.ClientOptions bound the reconnection (a restarted server is
	// used within a second) and let the handler tell a call never sent
	// (10018) from one whose outcome is unknown (10000).
	creds, err := mtls.DialCredentials(cfg.GRPCAddr, cfg.TLS, cfg.DevPlaintext)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(cfg.GRPCAddr, append(legacy.ClientOptions(), creds,
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(cfg.GRPCMaxMsgBytes),
			grpc.MaxCallSendMsgSize(cfg.GRPCMaxMsgBytes),
		),
	)...)
	if err != nil {
		return fmt.Errorf("gRPC client for %s: %w", cfg.GRPCAddr, err)
	}
	defer conn.Close()

	m := newMetrics()
	api, err := legacy.NewHandler(mapfrontv1.NewOfflineServiceClient(conn), legacy.Options{
		MaxBodyBytes:   cfg.MaxBodyBytes,
		CallTimeout:    cfg.CallTimeout,
		Logger:         log,
		Observe:        m.observe,
		Limits:         cfg.Edge.Limits,
		AccessLogEvery: cfg.Edge.AccessLogEvery,
		Refused:        m.refused,
	})
	if err != nil {
		return err
	}
	srv := legacy.NewServer(cfg.Edge, routes(api, healthpb.NewHealthClient(conn), log, m), legacy.ServerLimits{
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
	}, log, m.refused)
	// Listening before serving makes a busy or bad address, or unreadable
	// key material, fail start-up.
	ln, err := legacy.Listen(cfg.Addr, cfg.Edge)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	log.Info("gateway listening", "addr", ln.Addr().String(), "grpc_addr", cfg.GRPCAddr,
		"tls", cfg.Edge.CertFile != "", "client_cert", cfg.Edge.ClientCAFile != "", "allow", cfg.Edge.Allow.String())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if cfg.PprofAddr != "" {
		// Profiling, loopback only (validate): off unless asked for.
		pl, err := net.Listen("tcp", cfg.PprofAddr)
		if err != nil {
			return fmt.Errorf("listen on -pprof-addr %s: %w", cfg.PprofAddr, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		ps := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		defer ps.Close()
		go func() { _ = ps.Serve(pl) }()
		log.Info("pprof listening", "addr", pl.Addr().String())
	}
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stopSignals()
	log.Info("gateway shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("gateway stopped")
	return nil
}

// routes serves the legacy paths with the operational endpoints beside them
// (legacy.Ops): /readyz is ready when the server's gRPC health check says
// SERVING, so that a load balancer sends no traffic before that.
func routes(api http.Handler, health healthpb.HealthClient, log *slog.Logger, m *metrics) http.Handler {
	return legacy.Ops{
		Ready: func(ctx context.Context) error {
			resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
			if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				err = fmt.Errorf("health %s", resp.GetStatus())
			}
			return err
		},
		Metrics:  m.handler(),
		OpenAPI:  legacyopenapi.Spec,
		NotReady: func(err error) { log.Debug("not ready", "error", err.Error()) },
	}.Handler(api)
}
