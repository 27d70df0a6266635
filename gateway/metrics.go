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
	}
	m.reg.MustRegister(m.requests, m.latency, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(path string, errcode int32, d time.Duration) {
	name := legacy.PathName(path)
	m.requests.WithLabelValues(name, strconv.Itoa(int(errcode))).Inc()
	m.latency.WithLabelValues(name).Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }
