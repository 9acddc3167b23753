package xds

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Convergence: how long a Kubernetes change takes to reach each client.
//
// The time of each change flows with the data: the watcher's model.Batch
// carries it per Service, the pipeline puts it in Update.Changed, and the
// cache keeps it on every Resource version it builds (Resource.trigger,
// one int64 per version, shared by every client). A stream notes the
// oldest trigger among the resources a response carries that are new to
// that client (staged), remembers it with the response (inflight) and,
// when the client ACKs, observes now - trigger in
// switchboard_convergence_seconds, once per client and response. A change
// made before the stream began is not counted for it (see since): a
// response with no change made since (a first subscription, the initial
// world) observes only the push stage. The per-client cost is a few words per
// type and a comparison per resource sent.
//
// Deleting a Service is not measured: a deleted resource has no version
// to carry the time.

// maxInflight bounds the responses a stream remembers awaiting an ACK; a
// client that lets more pile up has the later ones folded into the last.
const maxInflight = 4

// convergence is a stream's convergence state. Only the stream's goroutine
// touches it, except class and oldest (read by the metrics collector) and
// connected (set before the stream is shared).
type convergence struct {
	// staged is the oldest trigger among the new resources of the
	// response being built, per type (0: none).
	staged [numTypes]int64
	// inflight lists, per type, the responses sent and not yet answered.
	inflight [numTypes][]flight
	// class is the stream's clientClass, for the collector.
	class atomic.Int32
	// oldest is the UnixNano of the oldest change sent and not ACKed, over
	// every type (0: none), for the collector.
	oldest    atomic.Int64
	connected prometheus.Gauge
}

// flight is one response awaiting its ACK.
type flight struct {
	trigger int64 // oldest new change it carries (UnixNano), 0 for none
	sent    int64 // when it was sent (UnixNano)
}

// since is what the oldest-unacked gauge counts a flight's age from: its
// change, or its sending when it carries none.
func (f flight) since() int64 {
	if f.trigger != 0 {
		return f.trigger
	}
	return f.sent
}

// stage notes r, about to be sent to this client for type t, when it
// carries a change the client converges on: a new version of a resource
// it had, or a resource that changed after the stream began. A resource
// the client gets for the first time with an older change is part of the
// world it found when it connected, not a change it waited for. It must
// run before r's version is recorded as sent. Only a resource that would
// become the oldest is looked up.
func (st *stream) stage(t typeIndex, ts *typeState, r *Resource) {
	if r.trigger == 0 || (st.conv.staged[t] != 0 && r.trigger >= st.conv.staged[t]) {
		return
	}
	if ts.holds(r.Name, r) || !ts.had(r.Name) && r.trigger < st.started.UnixNano() {
		return
	}
	st.conv.staged[t] = r.trigger
}

// stageAll is stage for every resource of a response.
func (st *stream) stageAll(t typeIndex, ts *typeState, out []*Resource) {
	for _, r := range out {
		st.stage(t, ts, r)
	}
}

func older(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// sentResponse records that a response of type t was sent now, carrying
// what was staged.
func (st *stream) sentResponse(t typeIndex) {
	now := time.Now()
	st.types[t].status.SentAt = now
	f := flight{trigger: st.conv.staged[t], sent: now.UnixNano()}
	st.conv.staged[t] = 0
	if n := len(st.conv.inflight[t]); n == maxInflight {
		st.conv.inflight[t][n-1].trigger = older(st.conv.inflight[t][n-1].trigger, f.trigger)
	} else {
		st.conv.inflight[t] = append(st.conv.inflight[t], f)
	}
	st.updateOldest()
}

// ackedResponse records that the client ACKed the latest response of type
// t: it has everything sent before it too (a client answers every
// response, and the server reads only the answer to the latest).
func (st *stream) ackedResponse(t typeIndex) {
	at := time.Now()
	st.types[t].status.AckedAt = at
	now := at.UnixNano()
	m := st.srv.metrics
	for _, f := range st.conv.inflight[t] {
		m.ObserveStage(StagePush, time.Duration(now-f.sent))
		if f.trigger != 0 && m != nil {
			m.byClass[st.conv.class.Load()].convergence[t].Observe(time.Duration(now - f.trigger).Seconds())
		}
	}
	st.conv.inflight[t] = st.conv.inflight[t][:0]
	st.updateOldest()
	st.nackedTypes.And(^(uint32(1) << t))
}

// nackedResponse forgets the responses of type t that the client rejected:
// they will never converge, and switchboard_xds_nacks_total tells of them.
// The stream counts in switchboard_xds_nacked_streams until it ACKs a
// response of t.
func (st *stream) nackedResponse(t typeIndex) {
	st.conv.inflight[t] = st.conv.inflight[t][:0]
	st.updateOldest()
	st.nackedTypes.Or(uint32(1) << t)
}

func (st *stream) updateOldest() {
	var oldest int64
	for t := range numTypes {
		for _, f := range st.conv.inflight[t] {
			oldest = older(oldest, f.since())
		}
	}
	st.conv.oldest.Store(oldest)
}

// oldestUnacked is switchboard_xds_oldest_unacked_seconds, computed on
// scrape from the server's streams: per client class, the age of the
// oldest change that some client was sent and has not ACKed, or that
// changed in the cache and was not yet taken by its stream; 0 when every
// client is current.
type oldestUnacked struct{ m *Metrics }

var oldestUnackedDesc = prometheus.NewDesc("switchboard_xds_oldest_unacked_seconds",
	"Age of the oldest change that a connected client has been sent and not ACKed, or has not been sent yet, by client class; 0 when all are current.",
	[]string{"client_class"}, nil)

func (o oldestUnacked) Describe(ch chan<- *prometheus.Desc) { ch <- oldestUnackedDesc }

func (o oldestUnacked) Collect(ch chan<- prometheus.Metric) {
	var oldest [numClasses]int64
	if s := o.m.server.Load(); s != nil {
		s.mu.Lock()
		for _, st := range s.streams {
			c := st.conv.class.Load()
			oldest[c] = older(oldest[c], older(st.conv.oldest.Load(), st.w.pendingSince()))
		}
		s.mu.Unlock()
	}
	now := time.Now().UnixNano()
	for c := range numClasses {
		age := 0.0
		if oldest[c] != 0 {
			age = max(time.Duration(now-oldest[c]).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(oldestUnackedDesc, prometheus.GaugeValue, age, classLabels[c])
	}
}
