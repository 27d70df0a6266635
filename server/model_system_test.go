package main

// The only place the model histories (model_test.go) depend on how the server
// is wired: starting it in-process (with an injected clock) or as a real
// process that the crash mode kills. Adapt these two when serve or the store
// constructor change.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"mapfront/gateway/legacy"
	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/server/internal/config"
	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
	"mapfront/server/internal/postgres"
	"mapfront/server/internal/secret"
)

// modelPolicy is the policy the model histories run under: SPEC's defaults
// with a low per-transaction limit, so that the limit meets the balances,
// and the activation policy given (immediate lets cards sold in a history
// pay in it; on_settlement, the default, needs a settlement file).
func modelPolicy(activation mapfront.ActivationPolicy) mapfront.Policy {
	p := mapfront.DefaultPolicy()
	p.Activation = activation
	p.PayLimit = modelPayLimit
	return p
}

// modelProducts are the products of the model's universe: cheap cards, so
// that their face values meet the pay amounts.
var modelProducts = []mapfront.Product{
	{ID: "2001", Name: "模型卡12", ShortName: "模型卡12", Price: 1000, FaceValue: 1200, OnSale: true},
	{ID: "2002", Name: "模型卡3", ShortName: "模型卡3", Price: 300, FaceValue: 300, OnSale: true},
}

// modelSystem is the real system a history runs against: base is the legacy
// JSON edge, store the same database for setting up a history's universe
// and reading its final balances.
type modelSystem struct {
	base      string
	store     *postgres.Store
	immediate bool // the activation policy is immediate
	// restart, in crash mode, kills the server process with SIGKILL and
	// starts it again; nil in-process.
	kill, start func()
}

func modelStore(t *testing.T, ctx context.Context, dsn string, keys *secret.Keys, clock mapfront.Clock, p mapfront.Policy) *postgres.Store {
	t.Helper()
	store, err := postgres.Open(ctx, dsn, postgres.Options{Clock: clock, Policy: p, Keys: keys,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range modelProducts {
		if _, err := store.UpsertProduct(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	return store
}

// startModelSystem starts the gRPC server in-process on a fresh database
// with the clock now, and the gateway's legacy handler in front of it over
// a real gRPC connection.
func startModelSystem(t *testing.T, now func() time.Time, activation mapfront.ActivationPolicy) *modelSystem {
	t.Helper()
	keys, err := secret.Parse(secret.Generate())
	if err != nil {
		t.Fatal(err)
	}
	zone, _ := time.LoadLocation("Asia/Shanghai")
	ctx, cancel := context.WithCancel(context.Background())
	policy := modelPolicy(activation)
	store := modelStore(t, ctx, pgtest.NewDatabase(t), keys, mapfront.Clock{Zone: zone, Now: now}, policy)
	cfg := &config.Config{GRPCAddr: freeAddr(t), HTTPAddr: freeAddr(t), Zone: zone, Policy: policy,
		MaxConns: 8, StatementTimeout: 5 * time.Second, MaxMessageBytes: 4 << 20, ShutdownTimeout: 5 * time.Second}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log, store) }()
	conn, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	api, err := legacy.NewHandler(mapfrontv1.NewOfflineServiceClient(conn), legacy.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	edge := httptest.NewServer(api)
	t.Cleanup(func() {
		edge.Close()
		conn.Close()
		cancel()
		<-done
		store.Close()
	})
	waitReady(t, "http://"+cfg.HTTPAddr+"/readyz")
	return &modelSystem{base: edge.URL, store: store, immediate: activation == mapfront.ActivateImmediate}
}

// startModelProcess builds the server binary and runs it as a process in
// single-binary mode (legacy paths served by the server itself) on a fresh
// database; kill and start let the crash mode SIGKILL and restart it. The
// clock is the real one: the cutover is put 12 hours from now so that no
// history crosses it.
func startModelProcess(t *testing.T) *modelSystem {
	t.Helper()
	master := secret.Generate()
	keys, err := secret.Parse(master)
	if err != nil {
		t.Fatal(err)
	}
	zone, _ := time.LoadLocation("Asia/Shanghai")
	cut := time.Now().In(zone).Add(12 * time.Hour)
	cutover := fmt.Sprintf("%02d:%02d", cut.Hour(), cut.Minute())
	co, _ := mapfront.ParseCutover(cutover)
	dsn := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	store := modelStore(t, ctx, dsn, keys, mapfront.Clock{Zone: zone, Cutover: co, Now: time.Now}, modelPolicy(mapfront.ActivateImmediate))

	bin := filepath.Join(t.TempDir(), "server")
	build := exec.Command("go", "build", "-o", bin, "mapfront/server")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build server: %v", err)
	}
	grpcAddr, httpAddr, legacyAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	var cmd *exec.Cmd
	s := &modelSystem{base: "http://" + legacyAddr, store: store, immediate: true}
	s.start = func() {
		cmd = exec.Command(bin, "serve", "-grpc-addr", grpcAddr, "-http-addr", httpAddr, "-legacy-addr", legacyAddr,
			"-activation", "immediate", "-pay-limit", fmt.Sprint(modelPayLimit), "-cutover", cutover, "-db-max-conns", "8",
			"-log-level", "error")
		cmd.Env = append(os.Environ(), "MAPFRONT_DATABASE_URL="+dsn, "MAPFRONT_MASTER_KEY="+master, "MAPFRONT_MASTER_KEY_FILE=")
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitReady(t, "http://"+httpAddr+"/readyz")
	}
	s.kill = func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	s.start()
	t.Cleanup(func() {
		s.kill()
		cancel()
		store.Close()
	})
	return s
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	for i := 0; ; i++ {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if i > 300 {
			t.Fatalf("server not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
