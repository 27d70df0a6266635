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
	"io"
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

// readyTimeout bounds the health check behind /readyz, so that a probe never
// hangs on an unreachable server.
const readyTimeout = 2 * time.Second

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

// routes puts the operational endpoints (GET or HEAD on their exact paths)
// beside the legacy handler, which answers everything else with the
// envelope (404 for unknown paths). It is a plain switch, not an
// http.ServeMux: the mux would answer a path with "..", "//" or "." by a
// redirect of its own, without the envelope.
func routes(api http.Handler, health healthpb.HealthClient, log *slog.Logger, m *metrics) http.Handler {
	ops := map[string]http.Handler{}
	ops["/metrics"] = m.handler()
	// healthz: the process is alive and serving HTTP.
	ops["/healthz"] = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	// readyz: the gRPC server answers its health check, so requests can be
	// served; a load balancer should send no traffic before that.
	ops["/readyz"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			log.Debug("not ready", "error", fmt.Sprint(err), "health", resp.GetStatus().String())
			legacy.WriteEnvelope(w, http.StatusServiceUnavailable, 10018, "服务未就绪")
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ready\n")
	})
	ops["/openapi.json"] = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// The legacy paths as they are on the wire (envelope, Chinese
		// status words, amounts in fen), not the gRPC messages.
		_, _ = w.Write(legacyopenapi.Spec)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := ops[r.URL.Path]; ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			h.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
