package xds

import (
	"fmt"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard-xds/switchboard/model"
)

// histogram returns the sample count and sum of one histogram series.
func histogram(t *testing.T, o prometheus.Observer) (uint64, float64) {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// oldest returns switchboard_xds_oldest_unacked_seconds by client class.
func oldest(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, numClasses)
	oldestUnacked{m}.Collect(ch)
	close(ch)
	out := map[string]float64{}
	for metric := range ch {
		var d dto.Metric
		if err := metric.Write(&d); err != nil {
			t.Fatal(err)
		}
		out[d.GetLabel()[0].GetValue()] = d.GetGauge().GetValue()
	}
	return out
}

// subscribed opens a stream for node, subscribes it to names of typeURL
// and ACKs the first response.
func subscribed(t *testing.T, h *harness, node *corev3.Node, typeURL string, names ...string) *client {
	t.Helper()
	c := h.client(t)
	c.node = node
	c.request(typeURL, names, nil, "")
	r := c.next()
	c.request(typeURL, names, r, "")
	return c
}

func envoyNode(id, zone string) *corev3.Node {
	return &corev3.Node{Id: id, UserAgentName: "envoy", Locality: &corev3.Locality{Zone: zone}}
}

// TestConvergenceObservedOnACK follows one change from the cache to a
// client's ACK: the oldest-unacked gauge counts it from its trigger time
// while the client has not ACKed, the ACK observes convergence once, from
// the trigger time, and the gauge goes back to 0. The initial world counts
// only as a push.
func TestConvergenceObservedOnACK(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	c := subscribed(t, h, envoyNode("n1", "z1"), resourcev3.EndpointType, []string{"a", "b"}...)
	conv := h.metrics.byClass[classEnvoy].convergence[endpointType]
	push := h.metrics.byStage[StagePush]
	waitFor(t, func() bool { n, _ := histogram(t, push); return n == 1 })
	if n, _ := histogram(t, conv); n != 0 {
		t.Fatalf("the initial world observed convergence %d times, want 0", n)
	}
	if got := testutil.ToFloat64(h.metrics.clients.WithLabelValues("envoy", "z1")); got != 1 {
		t.Fatalf("connected_clients{envoy,z1} = %v, want 1", got)
	}

	trigger := time.Now().Add(-2 * time.Second)
	if _, err := h.cache.Apply(Update{
		Services: map[string]*model.Resources{"ns/a": svc("a", 2)},
		Changed:  map[string]time.Time{"ns/a": trigger},
	}); err != nil {
		t.Fatal(err)
	}
	r := c.next()
	// The server records a response before sending it.
	if age := oldest(t, h.metrics)["envoy"]; age < 2 {
		t.Fatalf("oldest_unacked{envoy} = %v before the ACK, want >= 2 (the change's age)", age)
	}
	c.request(resourcev3.EndpointType, []string{"a", "b"}, r, "")
	waitFor(t, func() bool { n, _ := histogram(t, conv); return n == 1 })
	if _, sum := histogram(t, conv); sum < 2 || sum > 30 {
		t.Fatalf("convergence observed %vs, want about 2s (from the trigger time)", sum)
	}
	if o := oldest(t, h.metrics); o["envoy"] != 0 || o["other"] != 0 || o["c-core"] != 0 {
		t.Fatalf("oldest_unacked after the ACK = %v, want 0 for every class", o)
	}
	// The same ACK again (a repeated request) observes nothing more; the
	// next change's ACK, read after it, observes once more.
	c.request(resourcev3.EndpointType, []string{"a", "b"}, r, "")
	if _, err := h.cache.Apply(Update{
		Services: map[string]*model.Resources{"ns/b": svc("b", 3)},
		Changed:  map[string]time.Time{"ns/b": time.Now()},
	}); err != nil {
		t.Fatal(err)
	}
	r = c.next()
	c.request(resourcev3.EndpointType, []string{"a", "b"}, r, "")
	waitFor(t, func() bool { n, _ := histogram(t, push); return n == 3 })
	if n, _ := histogram(t, conv); n != 2 {
		t.Fatalf("convergence observed %d times, want once per client and response (2)", n)
	}
}

// TestConvergenceFullStateCountsOnlyNewResources checks that a full-state
// (LDS) response is measured from the change it brings, not from the older
// triggers of the unchanged resources it repeats.
func TestConvergenceFullStateCountsOnlyNewResources(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1), "ns/b": svc("b", 1)})
	c := subscribed(t, h, envoyNode("n1", ""), resourcev3.ListenerType, []string{"a", "b"}...)

	changedA := svc("a", 1)
	changedA.Listeners = encs(&listenerv3.Listener{Name: "a", StatPrefix: "changed"})
	now := time.Now()
	if _, err := h.cache.Apply(Update{
		Services: map[string]*model.Resources{"ns/a": changedA, "ns/b": svc("b", 1)},
		// b's resources do not change: its (older) time must not count.
		Changed: map[string]time.Time{"ns/a": now.Add(-time.Second), "ns/b": now.Add(-time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	r := c.next()
	if got := names(t, r); !equal(got, []string{"a", "b"}) {
		t.Fatalf("LDS = %v, want both listeners", got)
	}
	c.request(resourcev3.ListenerType, []string{"a", "b"}, r, "")
	conv := h.metrics.byClass[classEnvoy].convergence[listenerType]
	waitFor(t, func() bool { n, _ := histogram(t, conv); return n == 1 })
	if _, sum := histogram(t, conv); sum < 1 || sum > 30 {
		t.Fatalf("LDS convergence %vs, want about 1s (a's change, not b's older time)", sum)
	}
	if got := testutil.ToFloat64(h.metrics.clients.WithLabelValues("envoy", "none")); got != 1 {
		t.Fatalf("connected_clients{envoy,none} = %v, want 1 (a node without a zone)", got)
	}
}

// TestNACKIsNotConvergence checks that a rejected change is counted as a
// NACK of the client's class, observes no convergence and leaves the
// oldest-unacked gauge.
func TestNACKIsNotConvergence(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	c := subscribed(t, h, &corev3.Node{Id: "n1", UserAgentName: "gRPC Python"}, resourcev3.EndpointType, []string{"a"}...)
	if _, err := h.cache.Apply(Update{
		Services: map[string]*model.Resources{"ns/a": svc("a", 2)},
		Changed:  map[string]time.Time{"ns/a": time.Now()},
	}); err != nil {
		t.Fatal(err)
	}
	r := c.next()
	c.request(resourcev3.EndpointType, []string{"a"}, r, "bad")
	class := classOf(model.ClientClass("gRPC Python"))
	waitFor(t, func() bool { return testutil.ToFloat64(h.metrics.byClass[class].nacks[endpointType]) == 1 })
	if n, _ := histogram(t, h.metrics.byClass[class].convergence[endpointType]); n != 0 {
		t.Fatalf("a NACK observed convergence %d times", n)
	}
	if o := oldest(t, h.metrics)[classLabels[class]]; o != 0 {
		t.Fatalf("oldest_unacked after a NACK = %v, want 0", o)
	}
}

// TestStreamDurationAndConnectedByClass checks that a stream that ends
// leaves the connected gauge and is observed in the duration histogram of
// its class.
func TestStreamDurationAndConnectedByClass(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	ctxClient := h.client(t)
	ctxClient.node = envoyNode("n1", "z9")
	ctxClient.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	ctxClient.next()
	gauge := h.metrics.clients.WithLabelValues("envoy", "z9")
	waitFor(t, func() bool { return testutil.ToFloat64(gauge) == 1 })
	if err := ctxClient.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { n, _ := histogram(t, h.metrics.byClass[classEnvoy].duration); return n == 1 })
	if got := testutil.ToFloat64(gauge); got != 0 {
		t.Fatalf("connected_clients{envoy,z9} = %v after the stream ended, want 0", got)
	}
	if got := testutil.ToFloat64(h.metrics.clients.WithLabelValues("other", "none")); got != 0 {
		t.Fatalf("connected_clients{other,none} = %v, want 0 (the stream moved to its class)", got)
	}
}

// TestZoneLabelIsBounded checks that client-chosen zones get at most
// maxZones series.
func TestZoneLabelIsBounded(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	for i := range maxZones {
		if got := m.zoneLabel(fmt.Sprintf("z%d", i)); got != fmt.Sprintf("z%d", i) {
			t.Fatalf("zone %d labelled %q", i, got)
		}
	}
	if got := m.zoneLabel("one-too-many"); got != zoneOther {
		t.Fatalf("zone beyond the bound labelled %q, want %q", got, zoneOther)
	}
	if got := m.zoneLabel("z3"); got != "z3" {
		t.Fatalf("a known zone labelled %q after the bound", got)
	}
	if got := m.zoneLabel(""); got != zoneNone {
		t.Fatalf("no zone labelled %q, want %q", got, zoneNone)
	}
}

// TestPendingSinceFollowsMarks checks the subscriber's record of its
// oldest pending change, which the gauge reads for changes not yet sent.
func TestPendingSinceFollowsMarks(t *testing.T) {
	w := newSubscriber()
	w.markOne(endpointType, "a", 200, 7)
	w.mark(endpointType, map[string]int64{"b": 100, "c": 300}, 8)
	if got := w.pendingSince(); got != 100 {
		t.Fatalf("pendingSince = %d, want the oldest mark (100)", got)
	}
	if got := w.oldestUntaken(); got != 7 {
		t.Fatalf("oldestUntaken = %d, want the first change marked (7)", got)
	}
	w.take()
	if got, seq := w.pendingSince(), w.oldestUntaken(); got != 0 || seq != 0 {
		t.Fatalf("pendingSince, oldestUntaken after take = %d, %d, want 0, 0", got, seq)
	}
}

// TestMetricsExistFromTheStart checks that every series a dashboard or
// alert reads is exported at 0 before any client connects.
func TestMetricsExistFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	for name, want := range map[string]int{
		"switchboard_convergence_seconds":         int(numTypes) * int(numClasses),
		"switchboard_convergence_stage_seconds":   int(numStages),
		"switchboard_xds_oldest_unacked_seconds":  int(numClasses),
		"switchboard_xds_nacks_total":             int(numTypes) * int(numClasses),
		"switchboard_xds_nacked_streams":          int(numTypes) * int(numClasses),
		"switchboard_xds_connected_clients":       2 * int(numClasses),
		"switchboard_xds_stream_duration_seconds": int(numClasses),
	} {
		if got, err := testutil.GatherAndCount(reg, name); err != nil || got != want {
			t.Errorf("%s: %d series (%v), want %d", name, got, err, want)
		}
	}
}

// TestConvergenceIgnoresTheWorldAClientFinds checks that a client that
// connects after a change gets it as part of its initial world, not as a
// change it converged on: only a later change to what it holds counts.
func TestConvergenceIgnoresTheWorldAClientFinds(t *testing.T) {
	h := newHarness(t)
	if _, err := h.cache.Apply(Update{
		Full:     true,
		Services: map[string]*model.Resources{"ns/a": svc("a", 1)},
		Changed:  map[string]time.Time{"ns/a": time.Now().Add(-time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	c := subscribed(t, h, envoyNode("n1", "z1"), resourcev3.EndpointType, []string{"a"}...)
	conv := h.metrics.byClass[classEnvoy].convergence[endpointType]
	push := h.metrics.byStage[StagePush]
	waitFor(t, func() bool { n, _ := histogram(t, push); return n == 1 })
	if n, _ := histogram(t, conv); n != 0 {
		t.Fatalf("a change made before the client connected was observed as its convergence (%d)", n)
	}
	if _, err := h.cache.Apply(Update{
		Services: map[string]*model.Resources{"ns/a": svc("a", 2)},
		Changed:  map[string]time.Time{"ns/a": time.Now()},
	}); err != nil {
		t.Fatal(err)
	}
	r := c.next()
	c.request(resourcev3.EndpointType, []string{"a"}, r, "")
	waitFor(t, func() bool { n, _ := histogram(t, conv); return n == 1 })
}
