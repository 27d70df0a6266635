package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"mapfront/server/internal/config"
)

// TestOpsPprofLoopbackOnly: the operations listener (-http-addr) serves
// /debug/pprof/ only on a loopback address. Opened to load balancers for
// /readyz (0.0.0.0), it still serves /healthz, /readyz and /metrics, but not
// the profiles, which show the program's internals (found by review; the
// gateway's -pprof-addr was already loopback only).
func TestOpsPprofLoopbackOnly(t *testing.T) {
	for _, tt := range []struct {
		name  string
		host  string // of -http-addr; the test connects over loopback
		pprof bool
	}{
		{"loopback", "127.0.0.1", true},
		{"all interfaces", "0.0.0.0", false},
		{"no host", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ops string
			startGRPC(t, func(c *config.Config) {
				withTestTLS(t, c)
				_, port, err := net.SplitHostPort(c.HTTPAddr)
				if err != nil {
					t.Fatal(err)
				}
				c.HTTPAddr = net.JoinHostPort(tt.host, port)
				ops = "http://127.0.0.1:" + port
			})
			waitReady(t, ops+"/readyz")
			get := func(path string) (int, string) {
				resp, err := http.Get(ops + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(body)
			}
			for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n", "/metrics": "# HELP "} {
				if code, body := get(path); code != http.StatusOK || !strings.Contains(body, want) {
					t.Errorf("GET %s: HTTP %d %.100q, want 200 with %q", path, code, body, want)
				}
			}
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap"} {
				code, body := get(path)
				if tt.pprof && code != http.StatusOK {
					t.Errorf("GET %s on loopback: HTTP %d, want 200", path, code)
				}
				if !tt.pprof && (code != http.StatusNotFound || strings.Contains(body, "goroutine")) {
					t.Errorf("GET %s on %q: HTTP %d %.100q, want 404", path, tt.host, code, body)
				}
			}
		})
	}
}
