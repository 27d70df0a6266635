// Package metrics exposes the server's Prometheus metrics: gRPC requests and
// latency by method and errcode, and the database pool's use. The registry is
// an instance, not the global default, so tests and programs own theirs.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mapfrontv1 "mapfront/gen/mapfront/v1"
	"mapfront/internal/legacy"
)

// Metrics holds the server's collectors.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// Batches counts settlement batches by their final status.
	Batches *prometheus.CounterVec
	refused *prometheus.CounterVec
	// refusals counts legacy requests refused at the edge (single binary).
	refusals *prometheus.CounterVec
	// Group commit of pays (mapfront.GroupConfig): batch sizes, how long
	// a batch's oldest pay waited in the queue, batches run again one pay
	// at a time.
	payBatchSize   prometheus.Histogram
	payBatchWait   prometheus.Histogram
	payBatchSingly prometheus.Counter
	// suspended counts password-bearing requests refused because their
	// terminal is suspended for wrong PINs (SPEC section 7).
	suspended prometheus.Counter
}

// New registers the server's collectors, the Go runtime's and the pool's.
func New(pool *pgxpool.Pool) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mapfront_grpc_requests_total", Help: "gRPC requests by method and errcode (0 = success).",
		}, []string{"method", "errcode"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mapfront_grpc_request_seconds", Help: "gRPC request latency by method.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
		}, []string{"method"}),
		Batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mapfront_settlement_batches_total", Help: "Settlement batches by outcome status.",
		}, []string{"status"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mapfront_grpc_refused_total", Help: "gRPC calls refused by authentication or authorization, by method and code (Unauthenticated, PermissionDenied).",
		}, []string{"method", "code"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mapfront_legacy_refusals_total",
			Help: "Legacy requests refused at the edge, by reason: source (allowlist, 403), source_rate, terminal_rate, open_card_rate (10018).",
		}, []string{"reason"}),
		suspended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mapfront_terminal_suspended_refusals_total",
			Help: "Password-bearing requests (pay, get_account_info) refused with 10002 because the terminal is suspended for wrong PINs.",
		}),
	}
	m.payBatchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mapfront_pay_batch_size", Help: "Pays per group-commit transaction.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	m.payBatchWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mapfront_pay_batch_wait_seconds", Help: "How long the oldest pay of a batch waited in the queue.",
		Buckets: []float64{.0001, .0005, .001, .002, .005, .01, .02, .05, .1, .5},
	})
	m.payBatchSingly = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mapfront_pay_batch_singly_total", Help: "Pay batches that rolled back and were run one pay at a time.",
	})
	m.reg.MustRegister(m.requests, m.latency, m.Batches, m.refused, m.refusals, m.payBatchSize, m.payBatchWait, m.payBatchSingly, m.suspended,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&poolCollector{pool: pool})
	return m
}

// ObserveRefusal counts a legacy request refused at the edge (the reasons
// of legacy.NewServer and legacy.Options.Refused).
func (m *Metrics) ObserveRefusal(reason string) { m.refusals.WithLabelValues(reason).Inc() }

// ObserveSuspendedTerminal counts a request refused because its terminal is
// suspended for wrong PINs (mapfront.Service.WithPINBudget).
func (m *Metrics) ObserveSuspendedTerminal() { m.suspended.Inc() }

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// Unary records every unary RPC's errcode and latency.
func (m *Metrics) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	m.observe(info.FullMethod, err, time.Since(start))
	return resp, err
}

// Stream records every streaming RPC's errcode and latency.
func (m *Metrics) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	m.observe(info.FullMethod, err, time.Since(start))
	return err
}

// Refused counts a call refused by authentication or authorization
// (server/internal/authz).
func (m *Metrics) Refused(method string, code codes.Code) {
	m.refused.WithLabelValues(method, code.String()).Inc()
}

// ObserveLegacy records a legacy JSON answer served in-process (single
// binary), under the method "/legacy/<path>"; unknown paths count as "other".
func (m *Metrics) ObserveLegacy(path string, errcode int32, d time.Duration) {
	method := "/legacy/" + legacy.PathName(path)
	m.requests.WithLabelValues(method, strconv.Itoa(int(errcode))).Inc()
	m.latency.WithLabelValues(method).Observe(d.Seconds())
}

func (m *Metrics) observe(method string, err error, d time.Duration) {
	m.requests.WithLabelValues(method, errcode(err)).Inc()
	m.latency.WithLabelValues(method).Observe(d.Seconds())
}

// errcode reads the partner errcode from a status's ErrorDetail; a status
// without one is labelled by its gRPC code name.
func errcode(err error) string {
	if err == nil {
		return "0"
	}
	st := status.Convert(err)
	for _, d := range st.Details() {
		if e, ok := d.(*mapfrontv1.ErrorDetail); ok {
			return strconv.Itoa(int(e.Errcode))
		}
	}
	return st.Code().String()
}

// poolCollector reports the pgx pool's statistics at scrape time.
type poolCollector struct{ pool *pgxpool.Pool }

var (
	poolTotal    = prometheus.NewDesc("mapfront_db_pool_connections", "Database pool connections by state.", []string{"state"}, nil)
	poolMax      = prometheus.NewDesc("mapfront_db_pool_max_connections", "Database pool size limit.", nil, nil)
	poolWaits    = prometheus.NewDesc("mapfront_db_pool_acquire_waits_total", "Acquires that had to wait for a connection.", nil, nil)
	poolWaitTime = prometheus.NewDesc("mapfront_db_pool_acquire_wait_seconds_total", "Time spent waiting for a connection.", nil, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolTotal
	ch <- poolMax
	ch <- poolWaits
	ch <- poolWaitTime
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(s.AcquiredConns()), "acquired")
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(s.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolWaits, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolWaitTime, prometheus.CounterValue, s.EmptyAcquireWaitTime().Seconds())
}

// PayBatch records one group-commit batch of pays: its size and how long its
// oldest pay waited (mapfront.GroupConfig.Observe).
func (m *Metrics) PayBatch(size int, wait time.Duration) {
	m.payBatchSize.Observe(float64(size))
	m.payBatchWait.Observe(wait.Seconds())
}

// PayBatchSingly counts a batch run again one pay at a time
// (mapfront.GroupConfig.Singly).
func (m *Metrics) PayBatchSingly(int, error) { m.payBatchSingly.Inc() }
