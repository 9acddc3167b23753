package xds

import (
	"testing"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboard-xds/switchboard/model"
)

// nackedGauge returns switchboard_xds_nacked_streams by "type/class".
func nackedGauge(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, int(numTypes)*int(numClasses))
	nackedStreams{m}.Collect(ch)
	close(ch)
	out := map[string]float64{}
	for metric := range ch {
		var d dto.Metric
		if err := metric.Write(&d); err != nil {
			t.Fatal(err)
		}
		l := map[string]string{}
		for _, p := range d.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		out[l["type"]+"/"+l["client_class"]] = d.GetGauge().GetValue()
	}
	return out
}

// TestNackedStreams: a client that NACKs its first response counts in
// switchboard_xds_nacked_streams under its type and class, keeps counting
// while a newer response is unanswered, stops when it ACKs, counts again
// on the next NACK, and stops when its stream ends.
func TestNackedStreams(t *testing.T) {
	h := newHarness(t)
	if _, err := h.cache.Apply(Update{Full: true, Services: map[string]*model.Resources{"ns/a": svc("a", 1)}}); err != nil {
		t.Fatal(err)
	}
	if got := nackedGauge(t, h.metrics); len(got) != int(numTypes)*int(numClasses) {
		t.Fatalf("%d series before any client, want every type x class: %v", len(got), got)
	}
	const key = "eds/envoy"
	waitGauge := func(want float64) {
		t.Helper()
		waitFor(t, func() bool { return nackedGauge(t, h.metrics)[key] == want })
		for k, v := range nackedGauge(t, h.metrics) {
			if k != key && v != 0 {
				t.Errorf("%s = %v, want 0", k, v)
			}
		}
	}

	c, cancel := clientOn(t, h.conn)
	c.node = envoyNode("n1", "z1")
	c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	r1 := c.next()
	c.request(resourcev3.EndpointType, []string{"a"}, r1, "rejected from the start")
	waitGauge(1)

	if _, err := h.cache.Apply(Update{Full: true, Services: map[string]*model.Resources{"ns/a": svc("a", 2)}}); err != nil {
		t.Fatal(err)
	}
	r2 := c.next()
	// Sent, not answered: the last answer is still the NACK.
	waitGauge(1)
	c.request(resourcev3.EndpointType, []string{"a"}, r2, "")
	waitGauge(0)

	if _, err := h.cache.Apply(Update{Full: true, Services: map[string]*model.Resources{"ns/a": svc("a", 3)}}); err != nil {
		t.Fatal(err)
	}
	r3 := c.next()
	c.request(resourcev3.EndpointType, []string{"a"}, r3, "rejected again")
	waitGauge(1)
	cancel()
	waitGauge(0)
}
