package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/mtls"
	"mapfront/internal/mtls/mtlstest"
	"mapfront/server/internal/authz"
	"mapfront/server/internal/config"
	"mapfront/server/internal/mapfront"
	"mapfront/server/internal/pgtest"
	"mapfront/server/internal/postgres"
	"mapfront/server/internal/secret"
)

// testRoles gives each test identity the role of its name; "nobody" has a
// valid certificate and no role.
const testRoles = `# identity=role[,role]
gateway=posp
settlement=settlement
operator=operator
admin=admin
auditor=auditor
supervisor=supervisor
boss=admin,supervisor
`

// identityOf is the test identity holding each role.
var identityOf = map[authz.Role]string{
	authz.POSP: "gateway", authz.Settlement: "settlement", authz.Operator: "operator",
	authz.Admin: "admin", authz.Auditor: "auditor", authz.Supervisor: "supervisor",
}

// withTestTLS gives cfg a test PKI's server files and a roles file with
// testRoles, and returns the PKI for the clients' certificates.
func withTestTLS(t testing.TB, cfg *config.Config) *mtlstest.PKI {
	t.Helper()
	p := mtlstest.New(t)
	cfg.TLS = p.Server()
	cfg.RolesFile = filepath.Join(p.Dir(), "roles")
	if err := os.WriteFile(cfg.RolesFile, []byte(testRoles), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startGRPC runs serve on a fresh database with the demo data and returns
// the server's configuration (its gRPC address) once it answers.
func startGRPC(t *testing.T, mutate func(*config.Config)) *config.Config {
	t.Helper()
	keys, err := secret.Parse(secret.Generate())
	if err != nil {
		t.Fatal(err)
	}
	zone, _ := time.LoadLocation("Asia/Shanghai")
	cfg := &config.Config{GRPCAddr: freeAddr(t), HTTPAddr: freeAddr(t), Zone: zone, Policy: mapfront.DefaultPolicy(),
		MaxConns: 4, StatementTimeout: 5 * time.Second, MaxMessageBytes: 4 << 20, ShutdownTimeout: 5 * time.Second,
		CompletionWindow: time.Hour}
	if mutate != nil {
		mutate(cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	store, err := postgres.Open(ctx, pgtest.NewDatabase(t), postgres.Options{
		Clock: mapfront.Clock{Zone: zone, Now: time.Now}, Policy: cfg.Policy,
		NewCustomerPassword: mapfront.InitialPasswordHasher(cfg.Policy, keys), SealID: mapfront.IDSealer(keys), Log: log, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := mapfront.NewAdminService(store, keys, cfg.Policy).LoadDemo(ctx, demoTPK); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log, store, keys) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		store.Close()
	})
	waitListening(t, cfg.GRPCAddr, done)
	return cfg
}

func waitListening(t *testing.T, addr string, done chan error) {
	t.Helper()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v", err)
		default:
		}
		if i > 200 {
			t.Fatalf("server not listening: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// dialWith connects to addr with files' certificate, or, for a zero Files,
// with TLS that trusts caFile and presents no client certificate.
func dialWith(t *testing.T, addr string, files mtls.Files, caFile string) *grpc.ClientConn {
	t.Helper()
	var opt grpc.DialOption
	if files == (mtls.Files{}) {
		ca, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		opt = grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}))
	} else {
		var err error
		if opt, err = mtls.DialCredentials(addr, files, false); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := grpc.NewClient(addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rpc is one method of the API, from the generated descriptors.
type rpc struct {
	name         string // full method name
	clientStream bool
	serverStream bool
}

func allRPCs(t *testing.T) []rpc {
	t.Helper()
	var out []rpc
	protoregistry.GlobalFiles.RangeFilesByPackage("mapfront.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				md := sd.Methods().Get(j)
				out = append(out, rpc{"/" + string(sd.FullName()) + "/" + string(md.Name()), md.IsStreamingClient(), md.IsStreamingServer()})
			}
		}
		return true
	})
	if len(out) < 30 {
		t.Fatalf("only %d RPCs found", len(out))
	}
	return out
}

// call sends an empty request to m and returns the status. An empty
// request is invalid for most methods: an allowed call is refused by the
// method itself (with an errcode), a denied one by the interceptor.
func call(ctx context.Context, conn *grpc.ClientConn, m rpc) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !m.clientStream && !m.serverStream {
		return conn.Invoke(ctx, m.name, &emptypb.Empty{}, &emptypb.Empty{})
	}
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: m.clientStream, ServerStreams: m.serverStream}, m.name)
	if err != nil {
		return err
	}
	if !m.clientStream {
		if err := s.SendMsg(&emptypb.Empty{}); err != nil {
			return err
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	return s.RecvMsg(&emptypb.Empty{})
}

// refusal reports the code of an authentication or authorization refusal;
// codes.OK for anything else (a method's own answer, which carries an
// ErrorDetail even when its code is PermissionDenied, as 10002 does).
func refusal(err error) codes.Code {
	st := status.Convert(err)
	if st.Code() != codes.Unauthenticated && st.Code() != codes.PermissionDenied {
		return codes.OK
	}
	for _, d := range st.Details() {
		if _, ok := d.(*mapfrontv1.ErrorDetail); ok {
			return codes.OK
		}
	}
	return st.Code()
}

// TestEveryRPCByRole calls every RPC as every role's identity and as an
// identity without a role: allowed exactly where the table says,
// PermissionDenied elsewhere.
func TestEveryRPCByRole(t *testing.T) {
	var p *mtlstest.PKI
	cfg := startGRPC(t, func(c *config.Config) { p = withTestTLS(t, c) })
	ctx := context.Background()
	conns := map[string]*grpc.ClientConn{}
	for _, id := range []string{"gateway", "settlement", "operator", "admin", "auditor", "supervisor", "nobody"} {
		conns[id] = dialWith(t, cfg.GRPCAddr, p.Client(id), "")
	}
	for _, m := range allRPCs(t) {
		allowed, ok := authz.Allowed(m.name)
		if !ok {
			t.Errorf("%s: not in the table", m.name)
		}
		for _, role := range authz.AllRoles {
			err := call(ctx, conns[identityOf[role]], m)
			got := refusal(err)
			if slices.Contains(allowed, role) {
				if got != codes.OK {
					t.Errorf("%s as %s: refused (%v), the table allows it", m.name, role, err)
				}
			} else if got != codes.PermissionDenied {
				t.Errorf("%s as %s: %v, want PermissionDenied", m.name, role, err)
			}
		}
		if got := refusal(call(ctx, conns["nobody"], m)); got != codes.PermissionDenied {
			t.Errorf("%s as an identity without a role: %v, want PermissionDenied", m.name, got)
		}
	}

	// The plain facts of the issue, with real requests: posp cannot top up;
	// the auditor reads but changes nothing; admin tops up.
	topUp := &mapfrontv1.TopUpCashRequest{MobileNum: "13912345678", Amount: 500_000_000, Reference: "authz-test"}
	if _, err := mapfrontv1.NewAdminServiceClient(conns["gateway"]).TopUpCash(ctx, topUp); status.Code(err) != codes.PermissionDenied {
		t.Errorf("posp TopUpCash: %v, want PermissionDenied", err)
	}
	if _, err := mapfrontv1.NewAdminServiceClient(conns["auditor"]).TopUpCash(ctx, topUp); status.Code(err) != codes.PermissionDenied {
		t.Errorf("auditor TopUpCash: %v, want PermissionDenied", err)
	}
	if _, err := mapfrontv1.NewAdminServiceClient(conns["auditor"]).ResetPaymentPassword(ctx,
		&mapfrontv1.ResetPaymentPasswordRequest{MobileNum: "13912345678"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("auditor ResetPaymentPassword: %v, want PermissionDenied", err)
	}
	c, err := mapfrontv1.NewAdminServiceClient(conns["auditor"]).GetCustomer(ctx, &mapfrontv1.GetCustomerRequest{MobileNum: "13912345678"})
	if err != nil {
		t.Fatalf("auditor GetCustomer: %v", err)
	}
	var cash int64
	for _, a := range c.GetCustomer().GetAccounts() {
		if a.GetKind() == "cash" {
			cash = a.GetBalance()
		}
	}
	if cash != 1_000_000 {
		t.Errorf("cash balance %d after refused top-ups, want the demo's 1000000 (accounts %v)", cash, c.GetCustomer().GetAccounts())
	}
	if _, err := mapfrontv1.NewAdminServiceClient(conns["admin"]).TopUpCash(ctx, topUp); err != nil {
		t.Errorf("admin TopUpCash: %v", err)
	}
}

// TestRefusedWithoutCertificate: plaintext, TLS without a client
// certificate, and a certificate from another CA reach no method but
// health.
func TestRefusedWithoutCertificate(t *testing.T) {
	var p *mtlstest.PKI
	cfg := startGRPC(t, func(c *config.Config) { p = withTestTLS(t, c) })
	ctx := context.Background()

	// TLS without a client certificate: health answers, the rest is
	// Unauthenticated.
	anon := dialWith(t, cfg.GRPCAddr, mtls.Files{}, p.CAFile())
	if r, err := healthpb.NewHealthClient(anon).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health without a client certificate: %v, %v", r, err)
	}
	for _, m := range allRPCs(t) {
		if got := refusal(call(ctx, anon, m)); got != codes.Unauthenticated {
			t.Errorf("%s without a client certificate: %v, want Unauthenticated", m.name, got)
		}
	}

	// Each refusal is counted by method and code.
	resp, err := http.Get("http://" + cfg.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `mapfront_grpc_refused_total{code="Unauthenticated",method="/mapfront.v1.AdminService/TopUpCash"} 1`; !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	// Plaintext: the TLS listener does not speak it.
	plain, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	// A certificate from another CA (trusting our server): the handshake fails.
	other := mtlstest.New(t).Client("admin")
	other.CA = p.CAFile()
	stranger := dialWith(t, cfg.GRPCAddr, other, "")
	for name, conn := range map[string]*grpc.ClientConn{"plaintext": plain, "another CA": stranger} {
		for _, m := range append(allRPCs(t), rpc{name: healthpb.Health_Check_FullMethodName}) {
			err := call(ctx, conn, m)
			if code := status.Code(err); code != codes.Unavailable {
				t.Errorf("%s %s: %v, want Unavailable (no connection)", name, m.name, err)
			}
		}
	}
}

// TestDevPlaintextOnlyOnLoopback: the development flag serves plaintext on
// loopback, where callers are authz.DevIdentity with the roles the roles
// file gives it; on any other address serve refuses to start.
func TestDevPlaintextOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		cfg := &config.Config{GRPCAddr: addr, DevPlaintext: true, RolesFile: "roles"}
		if err := cfg.RequireTLS(); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: %v, want a refusal naming loopback", addr, err)
		}
		if _, err := mtls.ServerCredentials(addr, mtls.Files{}, true); err == nil {
			t.Errorf("%s: plaintext credentials given", addr)
		}
	}
	// The command itself, as started: refused before anything else.
	t.Setenv(mtls.EnvInsecureDevPlaintext, "1")
	err := runServer("serve", []string{"-grpc-addr", "0.0.0.0:0", "-database-url", "postgres://unused", "-roles-file", "unused"})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("server serve -grpc-addr 0.0.0.0:0 with the plaintext flag: %v, want a refusal", err)
	}
	cfg := startGRPC(t, func(c *config.Config) {
		c.DevPlaintext = true
		c.RolesFile = filepath.Join(t.TempDir(), "roles")
		if err := os.WriteFile(c.RolesFile, []byte(authz.DevIdentity+"=auditor\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	conn, err := grpc.NewClient(cfg.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := mapfrontv1.NewAdminServiceClient(conn)
	if _, err := admin.ListProducts(context.Background(), &mapfrontv1.ListProductsRequest{}); err != nil {
		t.Errorf("dev plaintext, auditor read: %v", err)
	}
	if _, err := admin.TopUpCash(context.Background(), &mapfrontv1.TopUpCashRequest{MobileNum: "13912345678", Amount: 1, Reference: "x"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("dev plaintext, auditor top-up: %v, want PermissionDenied", err)
	}
}

// TestAuditNamesCertificateIdentity: over mutual TLS, each change leaves
// exactly one audit record naming the identity of the caller's certificate
// and the role that allowed it; the auditor reads them.
func TestAuditNamesCertificateIdentity(t *testing.T) {
	var p *mtlstest.PKI
	cfg := startGRPC(t, func(c *config.Config) { p = withTestTLS(t, c) })
	ctx := context.Background()
	operator := mapfrontv1.NewAdminServiceClient(dialWith(t, cfg.GRPCAddr, p.Client("operator"), ""))
	admin := mapfrontv1.NewAdminServiceClient(dialWith(t, cfg.GRPCAddr, p.Client("admin"), ""))
	auditor := mapfrontv1.NewAdminServiceClient(dialWith(t, cfg.GRPCAddr, p.Client("auditor"), ""))
	const mobile, card = "13912345678", "1010123412341234"
	changes := []struct {
		who, method, target string
		call                func() error
	}{
		{"operator", "SetPaymentPassword", "customer:" + mobile, func() error {
			_, err := operator.SetPaymentPassword(ctx, &mapfrontv1.SetPaymentPasswordRequest{MobileNum: mobile, Password: "000000"})
			return err
		}},
		{"operator", "ResetPaymentPassword", "customer:" + mobile, func() error {
			_, err := operator.ResetPaymentPassword(ctx, &mapfrontv1.ResetPaymentPasswordRequest{MobileNum: mobile})
			return err
		}},
		{"operator", "UnlockPaymentPassword", "customer:" + mobile, func() error {
			_, err := operator.UnlockPaymentPassword(ctx, &mapfrontv1.UnlockPaymentPasswordRequest{MobileNum: mobile})
			return err
		}},
		{"operator", "FreezeAccount", "account:" + card, func() error {
			_, err := operator.FreezeAccount(ctx, &mapfrontv1.FreezeAccountRequest{AccountId: card})
			return err
		}},
		{"operator", "UnfreezeAccount", "account:" + card, func() error {
			_, err := operator.UnfreezeAccount(ctx, &mapfrontv1.UnfreezeAccountRequest{AccountId: card})
			return err
		}},
		{"admin", "TopUpCash", "customer:" + mobile, func() error {
			_, err := admin.TopUpCash(ctx, &mapfrontv1.TopUpCashRequest{MobileNum: mobile, Amount: 10000, Reference: "audit-e2e"})
			return err
		}},
		{"admin", "UpsertTerminal", "terminal:POS01", func() error {
			_, err := admin.UpsertTerminal(ctx, &mapfrontv1.UpsertTerminalRequest{TerminalId: "POS01", SellerId: "SH01", StoreId: "ST01",
				Enabled: true, TpkHex: "00112233445566778899AABBCCDDEEFF"})
			return err
		}},
	}
	for _, c := range changes {
		before, err := auditor.ListAudit(ctx, &mapfrontv1.ListAuditRequest{Identity: c.who, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.call(); err != nil {
			t.Fatalf("%s as %s: %v", c.method, c.who, err)
		}
		after, err := auditor.ListAudit(ctx, &mapfrontv1.ListAuditRequest{Identity: c.who, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(after.Records) != len(before.Records)+1 {
			t.Fatalf("%s: %d records, want exactly 1", c.method, len(after.Records)-len(before.Records))
		}
		r := after.Records[0]
		if r.Identity != c.who || r.Role != c.who || r.Method != "/mapfront.v1.AdminService/"+c.method ||
			r.Target != c.target || r.Outcome != "ok" {
			t.Errorf("%s: record %v", c.method, r)
		}
		if strings.Contains(r.ArgsJson, "000000") || strings.Contains(r.ArgsJson, "00112233") {
			t.Errorf("%s: a secret in the record's arguments: %s", c.method, r.ArgsJson)
		}
	}
	// By target, across identities: the demo loader's changes (local) and ours.
	got, err := auditor.ListAudit(ctx, &mapfrontv1.ListAuditRequest{Target: "customer:" + mobile, Since: time.Now().Add(-time.Hour).Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, r := range got.Records {
		ids[r.Identity]++
	}
	if ids["operator"] != 3 || ids["admin"] != 1 || ids["local"] == 0 {
		t.Errorf("records of customer:%s by identity: %v", mobile, ids)
	}
}

// TestInProcessPeer: the caller of the single-binary mode's in-process
// calls (authz.InProcessPeer) is the identity of the legacy client
// certificate, verified against the CA at start: posp's calls pass the
// authorization interceptor, the rest is refused; a certificate of another
// CA or a key of another certificate stops start-up.
func TestInProcessPeer(t *testing.T) {
	p := mtlstest.New(t)
	roles, err := authz.ParseRoles(strings.NewReader(testRoles))
	if err != nil {
		t.Fatal(err)
	}
	az := authz.New(roles, authz.Options{})
	caller, err := authz.InProcessPeer(p.Client("gateway"), false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := peer.NewContext(context.Background(), caller)
	ok := func(context.Context, any) (any, error) { return "ok", nil }
	unary := func(method string) error {
		_, err := az.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, ok)
		return err
	}
	if err := unary(mapfrontv1.OfflineService_Pay_FullMethodName); err != nil {
		t.Errorf("Pay as the gateway: %v", err)
	}
	if err := unary(mapfrontv1.AdminService_ListProducts_FullMethodName); refusal(err) != codes.PermissionDenied {
		t.Errorf("ListProducts as the gateway: %v, want PermissionDenied", err)
	}

	other := mtlstest.New(t).Client("gateway")
	if _, err := authz.InProcessPeer(mtls.Files{CA: p.CAFile(), Cert: other.Cert, Key: other.Key}, false); err == nil {
		t.Error("a certificate of another CA was accepted")
	}
	if _, err := authz.InProcessPeer(mtls.Files{CA: p.CAFile(), Cert: p.Client("gateway").Cert, Key: p.Client("admin").Key}, false); err == nil {
		t.Error("a key of another certificate was accepted")
	}
	// Development plaintext: the in-process caller is DevIdentity, with the
	// roles the file gives it (none here).
	dev, err := authz.InProcessPeer(mtls.Files{}, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = authz.New(roles, authz.Options{DevPlaintext: true}).Unary(peer.NewContext(context.Background(), dev), nil,
		&grpc.UnaryServerInfo{FullMethod: mapfrontv1.OfflineService_Pay_FullMethodName}, ok)
	if refusal(err) != codes.PermissionDenied {
		t.Errorf("Pay as %s without a role: %v, want PermissionDenied", authz.DevIdentity, err)
	}
}

// TestExpiredCertificateRefused: a verified chain is checked against the
// clock on every call, so a connection or an in-process caller that outlives
// its certificate (or its CA) is refused Unauthenticated from then on.
func TestExpiredCertificateRefused(t *testing.T) {
	p := mtlstest.New(t)
	roles, err := authz.ParseRoles(strings.NewReader(testRoles))
	if err != nil {
		t.Fatal(err)
	}
	caller, err := authz.InProcessPeer(p.Client("gateway"), false)
	if err != nil {
		t.Fatal(err)
	}
	leaf := caller.AuthInfo.(credentials.TLSInfo).State.VerifiedChains[0][0]
	ctx := peer.NewContext(context.Background(), caller)
	ok := func(context.Context, any) (any, error) { return "ok", nil }
	for _, c := range []struct {
		name string
		at   time.Time
		want codes.Code
	}{
		{"valid", leaf.NotBefore.Add(time.Minute), codes.OK},
		{"expired", leaf.NotAfter.Add(time.Second), codes.Unauthenticated},
		{"not yet valid", leaf.NotBefore.Add(-time.Second), codes.Unauthenticated},
	} {
		az := authz.New(roles, authz.Options{Now: func() time.Time { return c.at }})
		_, err := az.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: mapfrontv1.OfflineService_Pay_FullMethodName}, ok)
		if got := refusal(err); got != c.want {
			t.Errorf("%s: Pay at %s: %v, want %s", c.name, c.at, err, c.want)
		}
	}
}
