package main

// The only place the model histories (model_test.go) depend on how the server
// is wired and on the store's Go API: starting it in-process (with an
// injected clock) or as a real process that the crash mode kills, setting up
// a history's universe, submitting a settlement file, and reading the final
// balances and the ledger proof. Adapt this file when serve, the store
// constructor or these store methods change.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"pgregory.net/rapid"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/legacy"
	"mapfront/internal/mtls"
	"mapfront/internal/mtls/mtlstest"
	"mapfront/server/internal/config"
	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
	"mapfront/server/internal/postgres"
	"mapfront/server/internal/refmodel"
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
	admin     *mapfront.AdminService
	immediate bool // the activation policy is immediate
	// restart, in crash mode, kills the server process with SIGKILL and
	// starts it again; nil in-process.
	kill, start func()
}

func modelStore(t *testing.T, ctx context.Context, dsn string, keys *secret.Keys, clock mapfront.Clock, p mapfront.Policy) (*postgres.Store, *mapfront.AdminService) {
	t.Helper()
	store, err := postgres.Open(ctx, dsn, postgres.Options{Clock: clock, Policy: p,
		NewCustomerPassword: mapfront.InitialPasswordHasher(p, keys), SealID: mapfront.IDSealer(keys),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	admin := mapfront.NewAdminService(store, keys, p)
	for _, p := range modelProducts {
		if _, err := admin.UpsertProduct(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	return store, admin
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
	store, admin := modelStore(t, ctx, pgtest.NewDatabase(t), keys, mapfront.Clock{Zone: zone, Now: now}, policy)
	cfg := &config.Config{GRPCAddr: freeAddr(t), HTTPAddr: freeAddr(t), Zone: zone, Policy: policy,
		MaxConns: 8, StatementTimeout: 5 * time.Second, MaxMessageBytes: 4 << 20, ShutdownTimeout: 5 * time.Second, Now: now,
		// Group commit on, so that the concurrent histories check its
		// batches against the model too (a sequential history's pays are
		// batches of one).
		PayBatchMax: 64, PayBatchLanes: 2}
	pki := withTestTLS(t, cfg)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log, store, keys) }()
	creds, err := mtls.DialCredentials(cfg.GRPCAddr, pki.Client("gateway"), false)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(cfg.GRPCAddr, append(legacy.ClientOptions(), creds)...)
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
	return &modelSystem{base: edge.URL, store: store, admin: admin, immediate: activation == mapfront.ActivateImmediate}
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
	store, admin := modelStore(t, ctx, dsn, keys, mapfront.Clock{Zone: zone, Cutover: co, Now: time.Now}, modelPolicy(mapfront.ActivateImmediate))
	var tlsCfg config.Config
	pki := withTestTLS(t, &tlsCfg)
	gw := pki.Client("gateway")

	bin := filepath.Join(t.TempDir(), "server")
	build := exec.Command("go", "build", "-o", bin, "mapfront/server")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build server: %v", err)
	}
	grpcAddr, httpAddr, legacyAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	var cmd *exec.Cmd
	s := &modelSystem{base: "http://" + legacyAddr, store: store, admin: admin, immediate: true}
	s.start = func() {
		cmd = exec.Command(bin, "serve", "-grpc-addr", grpcAddr, "-http-addr", httpAddr, "-legacy-addr", legacyAddr,
			"-activation", "immediate", "-pay-limit", fmt.Sprint(modelPayLimit), "-cutover", cutover, "-db-max-conns", "8",
			"-log-level", "error", "-roles-file", tlsCfg.RolesFile,
			"-legacy-client-cert-file", gw.Cert, "-legacy-client-key-file", gw.Key,
			// The POS resends after a crash; the edge's rate limits are
			// not what this test is about.
			"-legacy-terminal-limit", "off", "-legacy-open-card-limit", "off", "-legacy-source-limit", "off")
		cmd.Args = append(cmd.Args, mtlstest.Args(tlsCfg.TLS)...)
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

func waitReady(t testing.TB, url string) {
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

var modelTPK, _ = hex.DecodeString(demoTPK)

// newWorld registers history n's universe (see world) and returns the model's
// view of it.
func newWorld(t *testing.T, sys *modelSystem, n int64) (*world, error) {
	ctx := context.Background()
	tag := fmt.Sprintf("%06d", n)
	w := &world{sellers: [2]string{"SA" + tag, "SB" + tag}}
	store := "ST" + tag
	w.terms = [3][3]string{{w.sellers[0], store, "TA1" + tag}, {w.sellers[0], store, "TA2" + tag}, {w.sellers[1], store, "TB1" + tag}}
	w.cfg = &refmodel.Config{Terminals: map[string]refmodel.Origin{}, Products: map[string]refmodel.Product{},
		PayLimit: modelPayLimit, MaxFailures: 5, Immediate: sys.immediate}
	for _, p := range modelProducts {
		w.cfg.Products[p.ID] = refmodel.Product{Name: p.Name, Price: p.Price, Face: p.FaceValue}
	}
	for _, s := range w.sellers {
		if err := sys.admin.UpsertSeller(ctx, s, "模型商户", true); err != nil {
			return nil, err
		}
		if err := sys.admin.UpsertStore(ctx, s, store, "模型门店", true); err != nil {
			return nil, err
		}
	}
	for _, tm := range w.terms {
		spec := postgresTerminal(tm)
		if _, err := sys.admin.UpsertTerminal(ctx, spec); err != nil {
			return nil, err
		}
		w.cfg.Terminals[tm[2]] = refmodel.Origin{SellerID: tm[0], StoreID: tm[1]}
	}
	for i := range w.ids {
		first := fmt.Sprintf("110105194912310%02d", i)
		w.ids[i] = first + refmodel.CheckDigit(first)
	}
	w.init = refmodel.NewState()
	for i := range w.mobiles {
		w.mobiles[i] = fmt.Sprintf("13%09d", n*3+int64(i))
	}
	for i, cash := range []int64{richCash, lowCash} {
		m := w.mobiles[i]
		if _, err := sys.admin.CreateCustomer(ctx, m, w.ids[i]); err != nil {
			return nil, err
		}
		id, _, err := sys.admin.TopUpCash(ctx, m, cash, "model-"+m)
		if err != nil {
			return nil, err
		}
		w.init.AddCustomer(m, w.ids[i], pinOf(w.ids[i]), id, cash)
	}
	return w, nil
}

// readBalances is the Balances answer: every account and password state of
// the history's customers, read from the database.
func readBalances(sys *modelSystem, w *world) (refmodel.Answer, error) {
	a := refmodel.Answer{Accounts: map[string][]string{}, Passwords: map[string]string{}}
	for _, m := range w.mobiles {
		v, err := sys.admin.GetCustomer(context.Background(), m)
		if mapfront.ErrorCode(err) == mapfront.CodeNotFound {
			continue
		}
		if err != nil {
			return a, err
		}
		a.Passwords[m] = fmt.Sprintf("%d %v", v.Failures, v.Locked)
		for _, x := range v.Accounts {
			a.Accounts[m] = append(a.Accounts[m], refmodel.AccountLine(x.Kind, x.ProductID, string(x.Status), x.Balance))
		}
	}
	return a, nil
}

func proveLedger(t *rapid.T, sys *modelSystem) {
	rep, err := sys.store.VerifyLedger(context.Background())
	if err != nil {
		t.Fatalf("VerifyLedger: %v", err)
	}
	if !rep.OK {
		t.Fatalf("ledger does not prove: %v %v %v", rep.Unbalanced, rep.Mismatched, rep.Negative)
	}
}

// settleDay submits the settlement file of a business day of the history:
// one record for each of its open_card payments that stand (the POSP's
// file of a normal day), through the store's SettlementService method.
func settleDay(sys *modelSystem, w *world, st *refmodel.State, day int, date time.Time, n int64) (refmodel.Request, refmodel.Answer) {
	r := refmodel.Request{Kind: refmodel.Settle, Day: day}
	var recs []mapfront.SettlementRecord
	var total int64
	for _, k := range slices.Sorted(maps.Keys(st.Payments)) {
		p := st.Payments[k]
		if p.Day != day || p.Repealed || p.Settled {
			continue
		}
		o := st.Orders[p.Order]
		key := strings.Split(k, "|")
		r.Settled = append(r.Settled, k)
		recs = append(recs, mapfront.SettlementRecord{LineNo: int64(len(recs) + 1),
			TradeID: fmt.Sprintf("M%d-%d-%d", n, day, len(recs)), Amount: p.Sum, SellerID: p.Seller,
			TerminalID: key[0], BatchNo: key[1], TerminalOrderID: key[2], TradeDate: mapfront.DateString(date),
			TradeTime: "120000", IDNumber: st.Customers[o.Customer].IDNumber, Mobile: o.Customer, ProductID: o.Product})
		total += p.Sum
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("model history %d day %d", n, day)))
	h := mapfront.BatchHeader{BusinessDate: date, FileName: mapfront.DateString(date) + ".txt",
		SHA256: hex.EncodeToString(sum[:]), RecordCount: int64(len(recs)), TotalFen: total}
	sentChunk := false
	rep, err := sys.store.SubmitBatch(context.Background(), h, func() (*mapfront.BatchChunk, error) {
		if sentChunk {
			return nil, io.EOF
		}
		sentChunk = true
		return &mapfront.BatchChunk{Records: recs}, nil
	})
	if err != nil {
		return r, refmodel.Answer{Code: int(mapfront.ErrorCode(err)), Msg: err.Error()}
	}
	a := refmodel.Answer{Sum: rep.Matched}
	for _, e := range rep.Exceptions {
		// Payments of other histories of the same date are missing from
		// this file; anything else is about this file's records.
		if e.Count > 0 && e.Type != mapfront.ExceptionType("missing_from_file") {
			a.Code, a.Msg = -1, fmt.Sprintf("exceptions %+v", rep.Exceptions)
		}
	}
	return r, a
}

func postgresTerminal(t [3]string) mapfront.TerminalSpec {
	return mapfront.TerminalSpec{SellerID: t[0], StoreID: t[1], TerminalID: t[2], Enabled: true, TPKHex: demoTPK}
}
