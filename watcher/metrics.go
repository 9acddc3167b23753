package watcher

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the watcher's Prometheus collectors. Build them with NewMetrics;
// a nil *Metrics is valid and records nothing, so tests may pass nil.
type Metrics struct {
	events         *prometheus.CounterVec
	manifestErrors *prometheus.CounterVec
	refused        *prometheus.CounterVec
	batches        prometheus.Counter
	batchServices  prometheus.Histogram
	services       prometheus.Gauge
	synced         prometheus.Gauge
	watchErrors    *prometheus.CounterVec
}

// Event kinds and types used as label values of
// switchboard_watcher_events_total.
const (
	kindService       = "service"
	kindEndpointSlice = "endpointslice"
	kindNode          = "node"
	// Gateway API kinds (mesh routes).
	kindHTTPRoute      = "httproute"
	kindGRPCRoute      = "grpcroute"
	kindReferenceGrant = "referencegrant"

	eventAdd    = "add"
	eventUpdate = "update"
	eventDelete = "delete"
)

// NewMetrics builds the watcher's collectors and registers them with reg
// (nil: not registered, still usable). It panics if reg already holds
// collectors of the same names, as prometheus.MustRegister does; register a
// watcher's metrics once per registry.
//
//   - switchboard_watcher_events_total{kind,event}: Kubernetes events seen,
//     kind service|endpointslice, event add|update|delete (for manifests: the
//     object changes found in the folder).
//   - switchboard_watcher_manifest_errors_total{file}: manifest files that
//     did not parse, by base name. The label is bounded by the number of files
//     in the one folder an operator points us at, and naming the file is the
//     point of the metric, so it is kept.
//   - switchboard_watcher_manifest_refused_total{reason}: manifest file
//     contents refused (the file's last good content is kept), counted once
//     per file and distinct content or reason; reason is one of
//     not_regular, dangling_symlink, symlink_loop, too_large, unreadable,
//     empty, syntax, invalid_document (see ManifestSource).
//   - switchboard_watcher_batches_total: batches handed to the sink.
//   - switchboard_watcher_batch_services: Services per batch.
//   - switchboard_watcher_services: Services currently published.
//   - switchboard_watcher_synced: 1 once the initial state was published and,
//     for an API server, while every informer's latest list or watch request
//     succeeded; 0 before the first sync and while any informer is failing to
//     list or watch (the last state keeps being served).
//   - switchboard_watcher_watch_errors_total{resource}: failed list and watch
//     requests to the API server, resource service|endpointslice|node.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_watcher_events_total",
			Help: "Service and EndpointSlice events seen by the watcher, by kind and event.",
		}, []string{"kind", "event"}),
		manifestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_watcher_manifest_errors_total",
			Help: "Manifest files that failed to parse (their last good content is kept), by file.",
		}, []string{"file"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_watcher_manifest_refused_total",
			Help: "Manifest file contents refused (their last good content is kept), by reason.",
		}, []string{"reason"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_watcher_batches_total",
			Help: "Batches of changed Services published by the watcher.",
		}),
		batchServices: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_watcher_batch_services",
			Help:    "Number of Services in each published batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1 .. 16384
		}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_watcher_services",
			Help: "Services currently published by the watcher.",
		}),
		synced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_watcher_synced",
			Help: "1 when the published state is current with its source (initial sync done, no informer failing to list or watch), else 0.",
		}),
		watchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_watcher_watch_errors_total",
			Help: "Failed list and watch requests to the API server, by resource.",
		}, []string{"resource"}),
	}
	// Pre-create the event series so dashboards show zeros, not gaps.
	for _, k := range []string{kindService, kindEndpointSlice} {
		for _, e := range []string{eventAdd, eventUpdate, eventDelete} {
			m.events.WithLabelValues(k, e)
		}
	}
	for _, k := range []string{kindService, kindEndpointSlice, kindNode} {
		m.watchErrors.WithLabelValues(k)
	}
	for _, r := range refusalReasons {
		m.refused.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.events, m.manifestErrors, m.refused, m.batches, m.batchServices, m.services, m.synced, m.watchErrors)
	}
	return m
}

func (m *Metrics) event(kind, event string) {
	if m != nil {
		m.events.WithLabelValues(kind, event).Inc()
	}
}

func (m *Metrics) manifestError(file string) {
	if m != nil {
		m.manifestErrors.WithLabelValues(file).Inc()
	}
}

func (m *Metrics) refusal(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) batch(services, published int) {
	if m != nil {
		m.batches.Inc()
		m.batchServices.Observe(float64(services))
		m.services.Set(float64(published))
	}
}

func (m *Metrics) setSynced(ok bool) {
	if m != nil {
		v := 0.0
		if ok {
			v = 1
		}
		m.synced.Set(v)
	}
}

func (m *Metrics) watchError(kind string) {
	if m != nil {
		m.watchErrors.WithLabelValues(kind).Inc()
	}
}
