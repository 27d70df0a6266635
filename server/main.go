// Command server is mapfront's gRPC server on PostgreSQL. It only wires
// things together: configuration, keys, the store, the gRPC services, health
// and graceful shutdown. Subcommands:
//
//	server [serve]       run the gRPC server (default)
//	server migrate       apply the embedded migrations, seal the ID numbers and open_card fingerprints still in clear, and exit
//	server rotate-keys   re-seal ID numbers, PIN keys and open_card fingerprints under the current master key
//	                     (--check: only report what is left under other keys; exit 1 if any)
//	server demo          load the demo data of SPEC section 8 and exit
//	server verify-ledger ask a running server to prove the ledger (exit 1 if not)
//	server pinblock      build a paymentCodeDES for a PIN, consumerId and key
//	server keygen        print a new random master key
//	server certs         create a local CA and the demo's gRPC certificates
//	server console-user add NAME ROLE
//	                     create or reset an operations-console account; the
//	                     password is read from standard input
//
// Exit codes (exitCode): 0 done; 1 failed, or not done (rotate-keys: values
// are left under other keys; verify-ledger: the ledger does not prove);
// 2 usage or configuration (an unknown command or flag, no database URL, no
// master key, missing TLS files), before anything was done.
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
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/legacy"
	"mapfront/internal/legacyopenapi"
	"mapfront/internal/mtls"
	"mapfront/server/internal/authz"
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
	if len(os.Args) > 1 && isHelp(os.Args[1]) {
		usage(os.Stdout)
		return
	}
	cmd, args := "serve", os.Args[1:]
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve", "migrate", "demo", "rotate-keys", "console-user":
		err = runServer(cmd, args)
	case "verify-ledger":
		err = verifyLedger(args)
	case "pinblock":
		err = buildPINBlock(args)
	case "keygen":
		fmt.Println(secret.Generate())
	case "certs":
		err = makeCerts(args)
	default:
		err = configErr(fmt.Errorf("unknown command %q (%s)", cmd, commandNames()))
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(exitCode(err))
	}
}

// Exit codes of the server command (the package comment, `server help` and
// the README say what they mean).
const (
	exitFailed = 1 // failed, or not done: values left under other keys, a ledger that does not prove
	exitUsage  = 2 // usage or configuration: nothing was done
)

// usageError marks an error as the caller's: the command line or the
// environment is wrong or incomplete (exit 2). A script can tell it from
// exit 1, which rotate-keys --check gives while values are left under
// other keys.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// configErr marks err (if not nil) as a usage or configuration error.
func configErr(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// exitCode is the exit status of a command that returned err (not nil).
func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailed
}

func runServer(cmd string, args []string) error {
	check := false
	if cmd == "rotate-keys" && len(args) > 0 && (args[0] == "--check" || args[0] == "-check") {
		check, args = true, args[1:]
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	cfg, err := config.Load(fs, args)
	if err != nil {
		return configErr(err)
	}
	if cmd != "console-user" && cmd != "serve" && fs.NArg() > 0 {
		return configErr(fmt.Errorf("%s: unexpected arguments %q", cmd, fs.Args()))
	}
	if err := cfg.RequireDatabase(); err != nil {
		return configErr(err)
	}
	if cmd == "serve" { // before the database and the keys: the first thing an operator must fix
		if err := cfg.RequireTLS(); err != nil {
			return configErr(err)
		}
	}
	log := newLogger(cfg.LogLevel)
	keys, err := secret.FromEnv()
	if err != nil {
		return configErr(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{
		Clock:  mapfront.Clock{Zone: cfg.Zone, Cutover: cfg.Cutover, Now: time.Now},
		Policy: cfg.Policy, NewCustomerPassword: mapfront.InitialPasswordHasher(cfg.Policy, keys),
		SealID: mapfront.IDSealer(keys), Log: log,
		MaxConns: cfg.MaxConns, StatementTimeout: cfg.StatementTimeout,
	})
	if err != nil {
		return err
	}
	defer store.Close()
	if cmd == "rotate-keys" {
		return rotateKeys(ctx, store, keys, log, check, os.Stdout)
	}
	// Migration 0005 completed in Go: rows written before it get their ID
	// number sealed before anything is served (SPEC section 7).
	if n, err := mapfront.SealPendingIDs(ctx, store, keys, log); err != nil {
		return fmt.Errorf("seal ID numbers: %w", err)
	} else if n > 0 {
		log.Info("ID numbers in clear sealed", "rows", n)
	}
	// Migration 0017 completed in Go: open_card keys' fingerprints recorded
	// before it are sealed before anything is served (SPEC section 7).
	if n, err := mapfront.SealPendingFingerprints(ctx, store, keys, log); err != nil {
		return fmt.Errorf("seal open_card fingerprints: %w", err)
	} else if n > 0 {
		log.Info("open_card fingerprints in clear sealed", "rows", n)
	}
	switch cmd {
	case "migrate":
		log.Info("migrations applied")
		return nil
	case "demo":
		if err := mapfront.NewAdminService(store, keys, cfg.Policy).LoadDemo(ctx, demoTPK); err != nil {
			return err
		}
		log.Info("demo data loaded")
		return nil
	case "console-user":
		return consoleUser(ctx, store, fs.Args(), os.Stdin)
	}
	return serve(ctx, cfg, log, store, keys)
}

// defaultGCPercent is the garbage collector's target (GOGC) of the server
// and the gateway unless GOGC is set: their live heap is small (a few MiB)
// and every request allocates, so Go's default of 100 ran a collection
// every few hundred pays; at 400 the heap may grow to five times the live
// heap (tens of MiB) and the collector's share of the CPU per pay falls
// (BENCHMARKS.md, 2026-11-29 "CPU per pay"). GOGC, and GOMEMLIMIT for a
// hard cap, still apply as Go documents them.
const defaultGCPercent = 400

// tuneGC sets defaultGCPercent unless the environment sets GOGC.
func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(defaultGCPercent)
	}
}

func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, store *postgres.Store, keys mapfront.Keys) error {
	tuneGC()
	m := metrics.New(store.Pool())
	if err := cfg.RequireTLS(); err != nil {
		return err
	}
	creds, err := mtls.ServerCredentials(cfg.GRPCAddr, cfg.TLS, cfg.DevPlaintext)
	if err != nil {
		return err
	}
	roles, err := authz.LoadRoles(cfg.RolesFile)
	if err != nil {
		return err
	}
	az := authz.New(roles, authz.Options{DevPlaintext: cfg.DevPlaintext, Log: log, Refused: m.Refused})
	go reloadRolesOnHUP(ctx, cfg.RolesFile, az, log)
	srv := grpc.NewServer(append([]grpc.ServerOption{creds}, serverOptions(cfg, log, m, az, store)...)...)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	clock := mapfront.Clock{Zone: cfg.Zone, Cutover: cfg.Cutover, Now: now}
	svc := mapfront.NewService(store, keys, clock, cfg.Policy, log).WithPINBudget(cfg.PINBudget, m.ObserveSuspendedTerminal)
	svc.GroupPays(mapfront.GroupConfig{MaxBatch: cfg.PayBatchMax, MaxWait: cfg.PayBatchWait, Lanes: cfg.PayBatchLanes,
		Observe: m.PayBatch, Singly: m.PayBatchSingly})
	offline := &grpcapi.OfflineServer{Store: svc, Log: log}
	mapfrontv1.RegisterOfflineServiceServer(srv, offline)
	admin := mapfront.NewAdminService(store, keys, cfg.Policy)
	admin.SetApprovalPolicy(cfg.Approval)
	mapfrontv1.RegisterAdminServiceServer(srv, &grpcapi.AdminServer{Store: admin, Log: log})
	mapfrontv1.RegisterSettlementServiceServer(srv, &grpcapi.SettlementServer{Store: store, Log: log, CompletionWindow: cfg.CompletionWindow,
		OnBatch: func(status string) { m.Batches.WithLabelValues(status).Inc() }})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	// Reflection (v1 and v1alpha) for grpcurl and other tools: any identity
	// with a role may call it (server/internal/authz, authenticatedMethods).
	reflection.Register(srv)

	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return err
	}
	// pprof shows the program's internals (its heap, its goroutines'
	// stacks): served only when the operations listener is on loopback, as
	// the gateway's -pprof-addr. An -http-addr opened to load balancers for
	// /readyz keeps /healthz, /readyz and /metrics, without pprof.
	servePprof := mtls.IsLoopback(cfg.HTTPAddr)
	if !servePprof {
		log.Info("pprof not served: -http-addr is not a loopback address", "http", cfg.HTTPAddr)
	}
	httpSrv := &http.Server{Addr: cfg.HTTPAddr, Handler: opsHandler(store, m, servePprof), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	errc := make(chan error, 4)
	go func() { errc <- srv.Serve(lis) }()
	go func() {
		if err := httpSrv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	var legacySrv *http.Server
	if cfg.LegacyAddr != "" {
		// Single-binary mode: the legacy JSON paths served here, calling
		// the OfflineService implementation in this process through the
		// server's interceptor chain, as the identity of the legacy client
		// certificate (loaded and verified against the CA now), so that
		// metrics, authorization and recovery run as they do for the
		// gateway program's calls over mTLS.
		caller, err := authz.InProcessPeer(cfg.LegacyClientTLS(), cfg.DevPlaintext)
		if err != nil {
			return fmt.Errorf("single-binary mode's client certificate: %w", err)
		}
		client := newInProcessOffline(offline, unaryInterceptors(log, m, az, store), caller)
		api, err := legacy.NewHandler(client, legacy.Options{
			Logger: log, Observe: m.ObserveLegacy, Limits: cfg.LegacyEdge.Limits, Refused: m.ObserveRefusal,
			AccessLogEvery: cfg.LegacyEdge.AccessLogEvery})
		if err != nil {
			return err
		}
		// The same listener as the gateway's: TLS, client certificates,
		// source allowlist, and net/http's refusals in the envelope.
		ll, err := legacy.Listen(cfg.LegacyAddr, cfg.LegacyEdge)
		if err != nil {
			return err
		}
		// Beside the legacy paths, what the gateway serves on its listener
		// for a load balancer and the partner: /healthz, /readyz (here: the
		// database answers), /metrics and /openapi.json (legacy.Ops).
		ops := legacy.Ops{Ready: store.Ping, Metrics: m.Handler(), OpenAPI: legacyopenapi.Spec,
			NotReady: func(err error) { log.Debug("not ready", "error", err.Error()) }}
		legacySrv = legacy.NewServer(cfg.LegacyEdge, ops.Handler(api), legacy.ServerLimits{ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 20 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10},
			log, m.ObserveRefusal)
		go func() {
			if err := legacySrv.Serve(ll); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	if cfg.ConsoleAddr != "" {
		if err := startConsole(ctx, cfg, log, store, admin, errc); err != nil {
			return err
		}
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
		log.Info("server stopped")
	case <-sctx.Done():
		srv.Stop()
		log.Warn("server stopped: calls still running after the shutdown timeout were cut off",
			"shutdown_timeout", cfg.ShutdownTimeout)
	}
	return nil
}

// reloadRolesOnHUP re-reads the roles file on SIGHUP; a file that does not
// parse keeps the roles in force. (Certificates need no signal: they are
// re-read when their files change.)
func reloadRolesOnHUP(ctx context.Context, path string, az *authz.Authorizer, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			n, err := az.Reload(path)
			if err != nil {
				log.Error("roles file not reloaded; the previous roles stay in force", "error", err.Error())
				continue
			}
			log.Info("roles file reloaded", "identities", n)
		}
	}
}

// opsHandler serves /healthz (the process runs), /readyz (the database
// answers), /metrics (Prometheus) and, with servePprof (the listener is on
// loopback), /debug/pprof/ for profiling the pay path under load
// (BENCHMARKS.md, bench/compare.sh).
func opsHandler(store *postgres.Store, m *metrics.Metrics, servePprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	if servePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
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

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// verifyLedger calls AdminService.VerifyLedger on a running server.
func verifyLedger(args []string) error {
	fs := flag.NewFlagSet("verify-ledger", flag.ContinueOnError)
	addr := fs.String("grpc-addr", envOr("MAPFRONT_GRPC_ADDR", "127.0.0.1:9090"), "server gRPC address")
	files := mtls.FilesFromEnv(os.Getenv)
	files.Register(fs)
	if err := fs.Parse(args); err != nil {
		return configErr(err)
	}
	creds, err := mtls.DialCredentials(*addr, files, mtls.DevPlaintext(os.Getenv))
	if err != nil {
		return configErr(err)
	}
	conn, err := grpc.NewClient(*addr, creds)
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
		return configErr(err)
	}
	k, err := hexKey(*key)
	if err != nil {
		return configErr(err)
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

// rotateKeys re-seals what old master keys wrote under the current one
// (or, with check, only counts it) and reports what is left on out. It fails
// (exit 1) while anything is left, so that a runbook can loop on
// `server rotate-keys --check` before removing the old keys; a usage or
// configuration error is exit 2 (runServer).
func rotateKeys(ctx context.Context, store *postgres.Store, keys *secret.Keys, log *slog.Logger, check bool, out io.Writer) error {
	var left mapfront.KeyCounts
	var err error
	if check {
		left, err = store.CountKeys(ctx, keys.CurrentPrefix())
	} else {
		left, err = mapfront.RotateKeys(ctx, store, keys, log)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "current key %s: not yet under it: %d clear ID numbers, %d ID numbers, %d terminal PIN keys, %d open_card fingerprints, %d password hashes\n",
		keys.KeyID(), left.ClearIDs, left.IDs, left.TPKs, left.Fingerprints, left.Passwords)
	old := keys.OldKeys()
	if !left.Done() {
		var next []string
		if check {
			next = append(next, "run `server rotate-keys` to re-seal them")
		}
		if old > 0 {
			next = append(next, "keep "+secret.EnvOldMasterKeysFile)
		}
		next = append(next, "passwords move on the customer's next successful pay or query; a reset under the new key moves one at once")
		return fmt.Errorf("values remain under other keys (%s)", strings.Join(next, "; "))
	}
	if old == 0 {
		fmt.Fprintf(out, "nothing left under other keys; no old key is configured (%s is not set): nothing to remove\n", secret.EnvOldMasterKeysFile)
		return nil
	}
	fmt.Fprintf(out, "nothing left under other keys: the %d old key(s) of %s can be removed\n", old, secret.EnvOldMasterKeysFile)
	return nil
}
