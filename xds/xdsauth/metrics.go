package xdsauth

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons for a refusal, the values of the metric label "reason".
const (
	reasonNoCertificate = "no_certificate"
	reasonNoSPIFFE      = "no_spiffe_id"
	reasonBadSPIFFE     = "bad_spiffe_id"
	reasonNamespace     = "namespace_mismatch"
)

// Metrics are the TLS metrics. Build them with NewMetrics on the registry
// the process exposes; a nil *Metrics records nothing.
type Metrics struct {
	reloads *prometheus.CounterVec
	expiry  prometheus.Gauge
	refusal *prometheus.CounterVec
}

// NewMetrics registers the TLS metrics on reg, every label value at 0.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_xds_tls_reloads_total",
			Help: "Changes of the xDS TLS files seen, by result: loaded, or failed and the previous files kept.",
		}, []string{"result"}),
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_xds_tls_certificate_expiry_timestamp_seconds",
			Help: "When the xDS serving certificate in use expires, in Unix seconds; 0 when xDS is served without TLS.",
		}),
		refusal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_xds_unauthorized_streams_total",
			Help: "ADS streams refused with PERMISSION_DENIED, by reason (no_certificate, no_spiffe_id, bad_spiffe_id, namespace_mismatch).",
		}, []string{"reason"}),
	}
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	for _, r := range []string{reasonNoCertificate, reasonNoSPIFFE, reasonBadSPIFFE, reasonNamespace} {
		m.refusal.WithLabelValues(r)
	}
	reg.MustRegister(m.reloads, m.expiry, m.refusal)
	return m
}

func (m *Metrics) reload(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.reloads.WithLabelValues("success").Inc()
	} else {
		m.reloads.WithLabelValues("failure").Inc()
	}
}

func (m *Metrics) loaded(notAfter time.Time) {
	if m != nil {
		m.expiry.Set(float64(notAfter.Unix()))
	}
}

func (m *Metrics) refused(reason string) {
	if m != nil {
		m.refusal.WithLabelValues(reason).Inc()
	}
}
