package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"mapfront/internal/legacy"
)

// metrics are the gateway's Prometheus collectors: legacy requests and their
// latency by path and errcode, on a registry of its own.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	refusals *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mapfront_gateway_requests_total", Help: "Legacy requests by path and errcode (0 = success).",
		}, []string{"path", "errcode"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mapfront_gateway_request_seconds", Help: "Legacy request latency by path.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
		}, []string{"path"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mapfront_gateway_refusals_total",
			Help: "Requests refused at the edge, by reason: source (not in the allowlist, 403), source_rate, terminal_rate, open_card_rate (10018).",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.refusals, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(path string, errcode int32, d time.Duration) {
	name := legacy.PathName(path)
	m.requests.WithLabelValues(name, strconv.Itoa(int(errcode))).Inc()
	m.latency.WithLabelValues(name).Observe(d.Seconds())
}

// refused counts a request refused at the edge.
func (m *metrics) refused(reason string) { m.refusals.WithLabelValues(reason).Inc() }

func (m *metrics) handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }
