package xds

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-xds/switchboard/model"
)

// Metrics are the xDS server's Prometheus metrics, and the convergence
// metrics that the pipeline shares (ObserveStage). Build them with
// NewMetrics on the registry the process exposes; a nil *Metrics records
// nothing, so tests may pass nil.
//
// Every label value is bounded and every series a dashboard reads exists
// from the start at 0: types × client classes, and stages. Zones come from
// the client's node and so from the client; at most maxZones distinct ones
// get their own series, later ones share zone="other" (see zoneLabel).
type Metrics struct {
	clients        *prometheus.GaugeVec
	responses      *prometheus.CounterVec
	resources      *prometheus.CounterVec
	nacks          *prometheus.CounterVec
	removals       *prometheus.CounterVec
	streamDuration *prometheus.HistogramVec
	convergence    *prometheus.HistogramVec
	stages         *prometheus.HistogramVec
	limits         *prometheus.CounterVec
	nodeDropped    prometheus.Counter
	byLimit        [numLimits]prometheus.Counter
	// byType holds the children of the per-type vectors, resolved once.
	byType [numTypes]struct{ responses, resources, removed prometheus.Counter }
	// byClass holds the children of the per-type, per-class vectors.
	byClass [numClasses]struct {
		nacks       [numTypes]prometheus.Counter
		convergence [numTypes]prometheus.Observer
		duration    prometheus.Observer
	}
	byStage [numStages]prometheus.Observer

	zonesMu sync.Mutex
	zones   map[string]struct{}
	// server is the Server whose streams the oldest-unacked gauge reads,
	// set by NewServer.
	server atomic.Pointer[Server]
}

// Client classes as metric labels: model.ClassEnvoy,
// model.ClassCCore, and model.ClassNoneLabel for every other client;
// the zero value is "other", what a stream is before its node is known.
const (
	classOther clientClass = iota
	classEnvoy
	classCCore
	numClasses
)

type clientClass int32

var classLabels = [numClasses]string{classEnvoy: model.ClassEnvoy, classCCore: model.ClassCCore, classOther: model.ClassNoneLabel}

func classOf(class string) clientClass {
	switch class {
	case model.ClassEnvoy:
		return classEnvoy
	case model.ClassCCore:
		return classCCore
	}
	return classOther
}

// Stages of convergence (switchboard_convergence_stage_seconds).
const (
	// StageCoalesce is the watcher's coalescing wait: the first change of
	// a batch to the batch's publication.
	StageCoalesce Stage = iota
	// StageTranslate is translating a batch and storing it in the cache.
	StageTranslate
	// StagePush is a response's trip: sent to the client to its ACK.
	StagePush
	numStages
)

// Stage names a stage of convergence; see ObserveStage.
type Stage int

var stageLabels = [numStages]string{StageCoalesce: "coalesce", StageTranslate: "translate", StagePush: "push"}

// maxZones bounds the zone label of switchboard_xds_connected_clients.
const maxZones = 32

// Zone label values besides real zones.
const (
	zoneNone  = "none"  // the node names no zone
	zoneOther = "other" // beyond maxZones distinct zones
)

// convergenceBuckets go from 1 ms to 30 s, 1-2-5 a decade.
var convergenceBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30}

// streamBuckets go from 1 s to a day: streams live long, and end at
// --max-connection-age.
var streamBuckets = []float64{1, 10, 60, 300, 900, 1800, 3600, 7200, 21600, 86400}

// NewMetrics registers the xDS and convergence metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		clients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_xds_connected_clients",
			Help: "ADS streams open now, by client class and zone of the node (zone=\"none\" before the node is known or when it names none, \"other\" beyond the first 32 zones).",
		}, []string{"client_class", "zone"}),
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
			Help: "Responses that a client rejected (NACK), by type and client class.",
		}, []string{"type", "client_class"}),
		removals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_xds_removed_resources_total",
			Help: "Resource names sent as removed in delta responses, by type.",
		}, []string{"type"}),
		streamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_xds_stream_duration_seconds",
			Help:    "How long ADS streams lasted, by client class.",
			Buckets: streamBuckets,
		}, []string{"client_class"}),
		convergence: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_convergence_seconds",
			Help:    "From a Kubernetes change (the EndpointSlice's last-change-trigger-time, else when the watcher saw it) to a client's ACK of the first response that carries it, once per client and response, by type and client class.",
			Buckets: convergenceBuckets,
		}, []string{"type", "client_class"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_convergence_stage_seconds",
			Help:    "Time spent in each stage of convergence: coalesce (first change of a batch to its publication), translate (translation and cache store), push (response sent to ACK).",
			Buckets: convergenceBuckets,
		}, []string{"stage"}),
		zones: map[string]struct{}{},
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_xds_limit_exceeded_total",
			Help: "Times a client went past one of the server's limits (see Limits): connections and streams refused, requests refused, node ids, NACK messages and NACK log lines cut, unknown listener names left unanswered (once per stream).",
		}, []string{"limit"}),
		nodeDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_xds_node_dropped_bytes_total",
			Help: "Bytes of clients' nodes not kept (wire size): node fields and metadata keys Switchboard does not read (see keptNode).",
		}),
	}
	for t := range numTypes {
		l := t.String()
		m.byType[t].responses = m.responses.WithLabelValues(l)
		m.byType[t].resources = m.resources.WithLabelValues(l)
		m.byType[t].removed = m.removals.WithLabelValues(l)
	}
	for l := range numLimits {
		m.byLimit[l] = m.limits.WithLabelValues(limitInfo[l].label)
	}
	for c := range numClasses {
		cl := classLabels[c]
		for t := range numTypes {
			m.byClass[c].nacks[t] = m.nacks.WithLabelValues(t.String(), cl)
			m.byClass[c].convergence[t] = m.convergence.WithLabelValues(t.String(), cl)
		}
		m.byClass[c].duration = m.streamDuration.WithLabelValues(cl)
		m.clients.WithLabelValues(cl, zoneNone)
		m.clients.WithLabelValues(cl, zoneOther)
	}
	for s := range numStages {
		m.byStage[s] = m.stages.WithLabelValues(stageLabels[s])
	}
	reg.MustRegister(m.clients, m.responses, m.resources, m.nacks, m.removals,
		m.streamDuration, m.convergence, m.stages, m.limits, m.nodeDropped, oldestUnacked{m}, nackedStreams{m})
	return m
}

// ObserveStage records d spent in stage s.
func (m *Metrics) ObserveStage(s Stage, d time.Duration) {
	if m != nil {
		m.byStage[s].Observe(d.Seconds())
	}
}

// zoneLabel bounds the zone label: the first maxZones distinct zones are
// themselves, later ones "other". Zones are client-controlled, so the
// bound is what keeps a client from growing the series without limit.
func (m *Metrics) zoneLabel(zone string) string {
	if zone == "" {
		return zoneNone
	}
	m.zonesMu.Lock()
	defer m.zonesMu.Unlock()
	if _, ok := m.zones[zone]; ok {
		return zone
	}
	if len(m.zones) >= maxZones || zone == zoneNone || zone == zoneOther {
		return zoneOther
	}
	m.zones[zone] = struct{}{}
	return zone
}

// streamStarted counts a new stream, as class "other" in zone "none" until
// its node is known (identified).
func (m *Metrics) streamStarted(st *stream) {
	if m == nil {
		return
	}
	st.conv.connected = m.clients.WithLabelValues(classLabels[classOther], zoneNone)
	st.conv.connected.Inc()
}

// identified moves a stream's count to its node's class and zone.
func (m *Metrics) identified(st *stream) {
	c := classOf(st.client.Class)
	st.conv.class.Store(int32(c))
	if m == nil {
		return
	}
	st.conv.connected.Dec()
	st.conv.connected = m.clients.WithLabelValues(classLabels[c], m.zoneLabel(st.client.Zone))
	st.conv.connected.Inc()
}

// streamEnded uncounts a stream and records how long it lasted.
func (m *Metrics) streamEnded(st *stream) {
	if m == nil {
		return
	}
	st.conv.connected.Dec()
	m.byClass[st.conv.class.Load()].duration.Observe(time.Since(st.started).Seconds())
}

func (m *Metrics) response(t typeIndex, n int) {
	if m != nil {
		m.byType[t].responses.Inc()
		m.byType[t].resources.Add(float64(n))
	}
}

func (m *Metrics) nack(t typeIndex, c clientClass) {
	if m != nil {
		m.byClass[c].nacks[t].Inc()
	}
}

func (m *Metrics) removed(t typeIndex, n int) {
	if m != nil && n > 0 {
		m.byType[t].removed.Add(float64(n))
	}
}

func (m *Metrics) nodeBytesDropped(n int) {
	if m != nil && n > 0 {
		m.nodeDropped.Add(float64(n))
	}
}

func (m *Metrics) limitExceeded(l limit) {
	if m != nil {
		m.byLimit[l].Inc()
	}
}

// nackedStreams is switchboard_xds_nacked_streams, counted on scrape from
// the server's streams: per type and client class, the open streams whose
// last answer to a response of that type was a NACK. Unlike
// switchboard_xds_nacks_total, which a client NACKing once adds to once,
// it stays up for as long as the client keeps rejecting (and so runs on
// its previous configuration, or on none if it rejected its first
// response), and falls when the client ACKs or goes away.
type nackedStreams struct{ m *Metrics }

var nackedStreamsDesc = prometheus.NewDesc("switchboard_xds_nacked_streams",
	"ADS streams whose last answer to a response of the type was a NACK, not since followed by an ACK, by type and client class.",
	[]string{"type", "client_class"}, nil)

func (n nackedStreams) Describe(ch chan<- *prometheus.Desc) { ch <- nackedStreamsDesc }

func (n nackedStreams) Collect(ch chan<- prometheus.Metric) {
	var count [numClasses][numTypes]int
	if s := n.m.server.Load(); s != nil {
		s.mu.Lock()
		for _, st := range s.streams {
			bits, c := st.nackedTypes.Load(), st.conv.class.Load()
			for t := range numTypes {
				if bits&(1<<t) != 0 {
					count[c][t]++
				}
			}
		}
		s.mu.Unlock()
	}
	for c := range numClasses {
		for t := range numTypes {
			ch <- prometheus.MustNewConstMetric(nackedStreamsDesc, prometheus.GaugeValue, float64(count[c][t]), t.String(), classLabels[c])
		}
	}
}
