package legacy

import (
	"context"
	"io"
	"net/http"
	"time"
)

// ReadyTimeout bounds the check behind GET /readyz (Ops), so that a probe
// never hangs on a backend that does not answer.
const ReadyTimeout = 2 * time.Second

// Ops is what a legacy listener serves for operations beside the legacy
// paths (the gateway on its -addr, the single binary on its -legacy-addr):
//
//	GET /healthz       "ok": the process serves HTTP
//	GET /readyz        "ready" when Ready returns nil within ReadyTimeout, else
//	                   503 with the envelope, errcode 10018 "服务未就绪"
//	GET /metrics       Metrics (Prometheus), when set
//	GET /openapi.json  OpenAPI (internal/legacyopenapi's Spec, which cannot be
//	                   imported here: its tests use this package), when set
type Ops struct {
	// Ready reports whether requests can be served (the gateway: the
	// server's gRPC health check; the single binary: the database).
	Ready func(context.Context) error
	// Metrics serves /metrics; nil leaves the path to the legacy handler
	// (an envelope 404).
	Metrics http.Handler
	// OpenAPI is the document served at /openapi.json: the legacy paths as
	// they are on the wire (envelope, Chinese status words, amounts in fen),
	// not the gRPC messages; nil leaves the path to the legacy handler.
	OpenAPI []byte
	// NotReady, if set, is told why a readiness probe failed.
	NotReady func(error)
}

// Handler puts the operational endpoints (GET or HEAD on their exact paths)
// beside api, the legacy handler, which answers everything else with the
// envelope (404 for unknown paths). It is a plain switch, not an
// http.ServeMux: the mux would answer a path with "..", "//" or "." by a
// redirect of its own, without the envelope.
func (o Ops) Handler(api http.Handler) http.Handler {
	ops := map[string]http.Handler{}
	if o.Metrics != nil {
		ops["/metrics"] = o.Metrics
	}
	ops["/healthz"] = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	ops["/readyz"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
		defer cancel()
		if err := o.Ready(ctx); err != nil {
			if o.NotReady != nil {
				o.NotReady(err)
			}
			WriteEnvelope(w, http.StatusServiceUnavailable, 10018, "服务未就绪")
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ready\n")
	})
	if o.OpenAPI != nil {
		ops["/openapi.json"] = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(o.OpenAPI)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := ops[r.URL.Path]; ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			h.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
