package pipeline

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the pipeline's Prometheus metrics: translation time, resource
// changes, current diagnostics and cache readiness. Build them with
// NewMetrics on the registry the process exposes; a nil *Metrics records
// nothing.
type Metrics struct {
	translate  prometheus.Histogram
	applied    prometheus.Counter
	diagnosed  prometheus.Gauge
	cacheReady prometheus.Gauge
	// unsupported counts mesh route features that a client flavour does
	// not get as written, each time such a diagnostic appears.
	unsupported *prometheus.CounterVec
}

// NewMetrics registers the pipeline's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		translate: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_translate_duration_seconds",
			Help:    "Time to translate one batch of changed Services and store it in the cache.",
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10),
		}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_cache_resource_changes_total",
			Help: "Resources whose version changed in the cache.",
		}),
		diagnosed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_translate_diagnostics",
			Help: "Problems with Services that could not be translated, or not fully, now (see /debug/diagnostics).",
		}),
		cacheReady: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_cache_ready",
			Help: "1 once the first full translation after sync is in the cache.",
		}),
		unsupported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_route_features_not_applied_total",
			Help: "Mesh route features (filters, matches, timeouts) a client flavour (grpc, envoy) does not get as written, counted when the diagnostic appears (see /debug/diagnostics).",
		}, []string{"flavour", "feature"}),
	}
	reg.MustRegister(m.translate, m.applied, m.diagnosed, m.cacheReady, m.unsupported)
	return m
}
