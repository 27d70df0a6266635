package main

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/legacy"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestLoadConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		c, err := loadConfig(nil, env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, defaultConfig()) {
			t.Errorf("got %+v, want the defaults", c)
		}
		if c.Addr != "127.0.0.1:8080" || c.GRPCAddr != "127.0.0.1:9090" || c.MaxBodyBytes != 64<<10 {
			t.Errorf("defaults %+v", c)
		}
	})
	t.Run("flag beats environment beats default", func(t *testing.T) {
		c, err := loadConfig([]string{"-grpc-addr", "10.0.0.2:9090"}, env(map[string]string{
			"MAPFRONT_GATEWAY_ADDR":          "0.0.0.0:8081",
			"MAPFRONT_GATEWAY_TLS_CERT_FILE": "/etc/gw.pem",
			"MAPFRONT_GATEWAY_TLS_KEY_FILE":  "/etc/gw.key",
			"MAPFRONT_GRPC_ADDR":             "10.0.0.1:9090",
			"MAPFRONT_GATEWAY_CALL_TIMEOUT":  "5s",
			"MAPFRONT_LOG_LEVEL":             "debug",
			"MAPFRONT_GATEWAY_READ_TIMEOUT":  "",
		}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Addr != "0.0.0.0:8081" || c.GRPCAddr != "10.0.0.2:9090" || c.CallTimeout != 5*time.Second ||
			c.LogLevel != slog.LevelDebug || c.ReadTimeout != defaultConfig().ReadTimeout {
			t.Errorf("got %+v", c)
		}
	})
	t.Run("TLS files from the environment, flags first", func(t *testing.T) {
		c, err := loadConfig([]string{"-grpc-cert-file", "flag.crt"}, env(map[string]string{
			"MAPFRONT_GRPC_CA_FILE": "ca.crt", "MAPFRONT_GRPC_CERT_FILE": "env.crt", "MAPFRONT_GRPC_KEY_FILE": "gw.key",
			"MAPFRONT_INSECURE_DEV_PLAINTEXT": "1",
		}))
		if err != nil {
			t.Fatal(err)
		}
		if c.TLS.CA != "ca.crt" || c.TLS.Cert != "flag.crt" || c.TLS.Key != "gw.key" || !c.DevPlaintext {
			t.Errorf("got %+v", c)
		}
	})
	bad := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the message
	}{
		{"bad env duration", nil, map[string]string{"MAPFRONT_GATEWAY_CALL_TIMEOUT": "15"}, "MAPFRONT_GATEWAY_CALL_TIMEOUT"},
		{"bad env number", nil, map[string]string{"MAPFRONT_GATEWAY_MAX_BODY_BYTES": "64k"}, "MAPFRONT_GATEWAY_MAX_BODY_BYTES"},
		{"bad level", nil, map[string]string{"MAPFRONT_LOG_LEVEL": "loud"}, "MAPFRONT_LOG_LEVEL"},
		{"bad address", []string{"-addr", "8080"}, nil, "-addr"},
		{"negative timeout", []string{"-idle-timeout", "-1s"}, nil, "-idle-timeout"},
		{"zero body", []string{"-max-body-bytes", "0"}, nil, "-max-body-bytes"},
		{"write before call", []string{"-write-timeout", "10s"}, nil, "-write-timeout"},
		{"stray argument", []string{"serve"}, nil, "unexpected"},
		{"unknown flag", []string{"-port", "1"}, nil, "port"},
		{"certificate without key", []string{"-tls-cert-file", "/etc/gw.pem"}, nil, "tls-key-file"},
		{"client CA without certificate", []string{"-tls-client-ca-file", "/etc/posp-ca.pem"}, nil, "tls-client-ca-file"},
		{"bad allowlist", nil, map[string]string{"MAPFRONT_GATEWAY_ALLOW": "10.0.0.0/8,nowhere"}, "MAPFRONT_GATEWAY_ALLOW"},
		{"bad limit", nil, map[string]string{"MAPFRONT_GATEWAY_SOURCE_LIMIT": "100"}, "MAPFRONT_GATEWAY_SOURCE_LIMIT"},
		{"bad TLS version", []string{"-tls-min-version", "1.0"}, nil, "tls-min-version"},
		{"plain HTTP off loopback", []string{"-addr", "0.0.0.0:8080"}, nil, "plain HTTP"},
		{"pprof off loopback", nil, map[string]string{"MAPFRONT_GATEWAY_PPROF_ADDR": "0.0.0.0:6060"}, "-pprof-addr"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(tt.args, env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one naming %s", err, tt.want)
			}
		})
	}
	if _, err := loadConfig([]string{"-h"}, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

// The help names each flag's variable once (it said "($MAPFRONT_GRPC_CA_FILE)
// [$MAPFRONT_GRPC_CA_FILE]" for the -grpc-*-file flags).
func TestHelpNamesEachVariableOnce(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w // the flag set prints its help to os.Stderr
	_, err = loadConfig([]string{"-h"}, env(nil))
	os.Stderr = stderr
	w.Close()
	help, _ := io.ReadAll(r)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, name := range []string{"MAPFRONT_GRPC_CA_FILE", "MAPFRONT_GRPC_CERT_FILE", "MAPFRONT_GRPC_KEY_FILE", "MAPFRONT_GATEWAY_ADDR", "MAPFRONT_GATEWAY_ALLOW"} {
		if n := strings.Count(string(help), "$"+name); n != 1 {
			t.Errorf("$%s named %d times in the help:\n%s", name, n, help)
		}
	}
}

// TestRoutes checks the operational endpoints against a real gRPC health
// server, and that everything else reaches the legacy handler.
func TestRoutes(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	m := newMetrics()
	api, err := legacy.NewHandler(mapfrontv1.NewOfflineServiceClient(conn), legacy.Options{Observe: m.observe})
	if err != nil {
		t.Fatal(err)
	}
	h := routes(api, healthpb.NewHealthClient(conn), slog.New(slog.DiscardHandler), m)

	// A request to an unknown legacy path is counted under "other" with
	// errcode 10001, whatever its path: the label stays bounded.
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/front/offline/nope", strings.NewReader("{}")))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `mapfront_gateway_requests_total{errcode="10001",path="other"} 1`) {
		t.Errorf("/metrics: %d\n%s", rec.Code, rec.Body.String())
	}

	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	if rec := get("/healthz"); rec.Code != http.StatusOK {
		t.Errorf("/healthz: HTTP %d", rec.Code)
	}
	if rec := get("/readyz"); rec.Code != http.StatusOK {
		t.Errorf("/readyz with a serving server: HTTP %d", rec.Code)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if rec := get("/readyz"); rec.Code != http.StatusServiceUnavailable || !strings.HasPrefix(rec.Body.String(), `{"errcode":10018,`) {
		t.Errorf("/readyz with a server not serving: HTTP %d %s", rec.Code, rec.Body)
	}
	// No redirects of a path cleaner: the legacy handler answers.
	for _, p := range []string{"/x/../healthz", "//healthz", "/front/offline/../offline/pay"} {
		if rec := get(p); rec.Code != http.StatusNotFound || !strings.HasPrefix(rec.Body.String(), `{"errcode":10001,`) {
			t.Errorf("GET %s: HTTP %d %s", p, rec.Code, rec.Body)
		}
	}
	rec = get("/openapi.json")
	body, _ := io.ReadAll(rec.Body)
	var doc struct {
		Swagger string
		Paths   map[string]any
	}
	if rec.Code != http.StatusOK || json.Unmarshal(body, &doc) != nil || doc.Swagger != "2.0" || len(doc.Paths) != 7 ||
		!strings.Contains(string(body), `"errcode"`) {
		t.Errorf("/openapi.json: HTTP %d, %.80s", rec.Code, body)
	}
	if rec := get("/front/offline/pay"); rec.Code != http.StatusMethodNotAllowed ||
		!strings.HasPrefix(rec.Body.String(), `{"errcode":10001,`) {
		t.Errorf("GET /front/offline/pay: HTTP %d %s", rec.Code, rec.Body)
	}
	if rec := get("/nowhere"); rec.Code != http.StatusNotFound ||
		!strings.HasPrefix(rec.Body.String(), `{"errcode":10001,`) {
		t.Errorf("GET /nowhere: HTTP %d %s", rec.Code, rec.Body)
	}
}
