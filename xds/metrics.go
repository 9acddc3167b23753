package xds

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the xDS server's Prometheus metrics. Build them with
// NewMetrics on the registry the process exposes; a nil *Metrics records
// nothing, so tests may pass nil.
type Metrics struct {
	clients   prometheus.Gauge
	responses *prometheus.CounterVec
	resources *prometheus.CounterVec
	nacks     *prometheus.CounterVec
	removals  *prometheus.CounterVec
	limits    *prometheus.CounterVec
	byLimit   [numLimits]prometheus.Counter
	// byType holds the children of the per-type vectors, resolved once.
	byType [numTypes]struct{ responses, resources, nacks, removed prometheus.Counter }
}

// NewMetrics registers the xDS metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_xds_connected_clients",
			Help: "ADS streams open now.",
		}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_xds_responses_total",
			Help: "DiscoveryResponses sent, by type (lds, rds, cds, eds).",
		}, []string{"type"}),
		resources: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_xds_response_resources_total",
			Help: "Resources carried in DiscoveryResponses, by type.",
		}, []string{"type"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_xds_nacks_total",
			Help: "Responses that a client rejected (NACK), by type.",
		}, []string{"type"}),
		removals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_xds_removed_resources_total",
			Help: "Resource names sent as removed in delta responses, by type.",
		}, []string{"type"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_xds_limit_exceeded_total",
			Help: "Times a client went past one of the server's limits (see Limits): connections and streams refused, requests refused, node ids, NACK messages and NACK log lines cut, unknown listener names left unanswered (once per stream).",
		}, []string{"limit"}),
	}
	for l := range numLimits {
		m.byLimit[l] = m.limits.WithLabelValues(limitInfo[l].label)
	}
	for t := range numTypes {
		l := t.String()
		m.byType[t].responses = m.responses.WithLabelValues(l)
		m.byType[t].nacks = m.nacks.WithLabelValues(l)
		m.byType[t].resources = m.resources.WithLabelValues(l)
		m.byType[t].removed = m.removals.WithLabelValues(l)
	}
	reg.MustRegister(m.clients, m.responses, m.resources, m.nacks, m.removals, m.limits)
	return m
}

func (m *Metrics) connected(d float64) {
	if m != nil {
		m.clients.Add(d)
	}
}

func (m *Metrics) response(t typeIndex, n int) {
	if m != nil {
		m.byType[t].responses.Inc()
		m.byType[t].resources.Add(float64(n))
	}
}

func (m *Metrics) nack(t typeIndex) {
	if m != nil {
		m.byType[t].nacks.Inc()
	}
}

func (m *Metrics) removed(t typeIndex, n int) {
	if m != nil && n > 0 {
		m.byType[t].removed.Add(float64(n))
	}
}

func (m *Metrics) limitExceeded(l limit) {
	if m != nil {
		m.byLimit[l].Inc()
	}
}
