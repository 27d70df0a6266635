package main

import (
	"bufio"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// requestCount scrapes the server's /metrics and returns the gRPC request
// counter of method and errcode (0 when the series does not exist yet).
func (s *system) requestCount(t *testing.T, method, errcode string) float64 {
	t.Helper()
	resp, err := http.Get(s.ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	series := `mapfront_grpc_requests_total{errcode="` + errcode + `",method="` + method + `"} `
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", sc.Text(), err)
			}
			return n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return 0
}

// In single-binary mode a legacy request reaches OfflineService through the
// gRPC server's interceptor chain (issue 8, show 3): the chain's metrics
// interceptor counts it under the gRPC method with the errcode the handler
// returned, as it does for the gateway program's calls. The former in-process
// client called the service directly and left this counter at zero.
func TestSingleBinaryRunsInterceptors(t *testing.T) {
	s := startSystem(t, true)
	const method = "/mapfront.v1.OfflineService/DownloadProduct"
	ok := `{"sellerId":"SH01","storeId":"ST01","terminalId":"POS01","batchNo":"000001","terminalOrderId":"000001"}`
	unknown := `{"sellerId":"SH01","storeId":"ST01","terminalId":"NOSUCH","batchNo":"000001","terminalOrderId":"000001"}`

	okBefore, declinedBefore := s.requestCount(t, method, "0"), s.requestCount(t, method, "10002")
	for range 2 {
		if a := s.post(t, "/front/offline/download_product", ok); a.errcode(t) != 0 {
			t.Fatalf("download_product: %s", a.raw)
		}
	}
	if a := s.post(t, "/front/offline/download_product", unknown); a.errcode(t) != 10002 {
		t.Fatalf("download_product from an unknown terminal: %s", a.raw)
	}
	if got := s.requestCount(t, method, "0") - okBefore; got != 2 {
		t.Errorf("gRPC counter of %s errcode 0 grew by %v, want 2", method, got)
	}
	if got := s.requestCount(t, method, "10002") - declinedBefore; got != 1 {
		t.Errorf("gRPC counter of %s errcode 10002 grew by %v, want 1", method, got)
	}
}

// The single binary's legacy listener calls as the identity of its client
// certificate, with that identity's roles and nothing more (issue 11):
// with a certificate whose identity has a role but not posp, every legacy
// call is refused by the authorization interceptor (PermissionDenied,
// counted by the metrics interceptor), and the terminal gets 10000, the
// edge's answer to a refusal without a business errcode.
func TestSingleBinaryWithoutPOSPRoleRefused(t *testing.T) {
	s := startSystemAs(t, true, "settlement")
	const method = "/mapfront.v1.OfflineService/DownloadProduct"
	before := s.requestCount(t, method, "PermissionDenied")
	a := s.post(t, "/front/offline/download_product",
		`{"sellerId":"SH01","storeId":"ST01","terminalId":"POS01","batchNo":"000001","terminalOrderId":"000001"}`)
	if a.errcode(t) != 10000 {
		t.Fatalf("download_product as settlement: %s", a.raw)
	}
	if got := s.requestCount(t, method, "PermissionDenied") - before; got != 1 {
		t.Errorf("gRPC counter of %s PermissionDenied grew by %v, want 1", method, got)
	}
}

// The server program does not import the gateway program (issue 8, show 3):
// what both need of the legacy contract lives in mapfront/internal/legacy.
func TestServerDoesNotImportGateway(t *testing.T) {
	for _, dep := range goListDeps(t, ".") {
		if dep == "mapfront/gateway" || strings.HasPrefix(dep, "mapfront/gateway/") {
			t.Errorf("the server imports %s", dep)
		}
	}
}

// goListDeps returns the import paths pkg depends on, itself included.
func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatalf("go list -deps %s listed nothing", pkg)
	}
	return deps
}

// Both deployments serve the same operational endpoints on the listener the
// POSP calls (legacy.Ops): a load balancer's probes and the partner's OpenAPI
// document do not depend on whether the gateway program runs. Found by a
// newcomer's trial: the single binary answered them 404 in the envelope.
func TestLegacyListenerServesOps(t *testing.T) {
	for _, inProcess := range []bool{false, true} {
		s := startSystem(t, inProcess)
		for path, want := range map[string]string{
			"/healthz":      "ok\n",
			"/readyz":       "ready\n",
			"/openapi.json": `"swagger": "2.0"`,
			"/metrics":      "# HELP ",
		} {
			resp, err := http.Get(s.base + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
				t.Errorf("single binary %v: GET %s: HTTP %d, want 200 with %q: %.200s", inProcess, path, resp.StatusCode, want, body)
			}
		}
		// Anything else is still the legacy handler's: an envelope 404.
		resp, err := http.Get(s.base + "/healthz/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"errcode"`) {
			t.Errorf("single binary %v: GET /healthz/: HTTP %d %s", inProcess, resp.StatusCode, body)
		}
	}
}
