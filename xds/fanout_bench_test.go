package xds

import (
	"fmt"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// BenchmarkStreamsTakeChange times one assignment changed and taken by 200
// delta streams subscribed to all 1000 assignments (a sidecar's shape: each
// is told of every change of the type), the streams run one after the
// other on the benchmark's goroutine: the cache's Apply and notify, then
// each stream's take, evict, lookup, in-step check and response (sent
// nowhere). It is the per-stream cost of an endpoint change without
// gRPC's; ns/op ÷ 200 is per stream. Names are shaped as the translator
// makes them (what the state hashes and looks up); the resources' bodies
// are small hand-made ones, as the state never reads them: the load tool's
// Envoy shape measures the same path with translated resources and gRPC.
func BenchmarkStreamsTakeChange(b *testing.B) {
	c := newTestCache()
	world := map[string]*model.Resources{}
	var names []string
	for i := range 1000 {
		n := fmt.Sprintf("svc-%04d.ns-%d.svc.cluster.local:8080", i, i%10)
		names = append(names, n)
		world["ns/"+n] = svc(n, 1)
	}
	if _, err := c.Apply(Update{Full: true, Services: world}); err != nil {
		b.Fatal(err)
	}
	srv := NewServer(c, ServerOptions{})
	var sts []*stream
	for i := range 200 {
		st := newStream(int64(i), srv)
		st.sendDelta = func(*discoveryv3.DeltaDiscoveryResponse) error { return nil }
		seq := c.register(st.w)
		for t := range numTypes {
			st.types[t].advance(seq)
		}
		if err := st.handleDelta(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: names}); err != nil {
			b.Fatal(err)
		}
		sts = append(sts, st)
	}
	b.ResetTimer()
	for i := range b.N {
		n := names[i%len(names)]
		if _, err := c.Apply(Update{Services: map[string]*model.Resources{"ns/" + n: svc(n, uint32(i+2))}}); err != nil {
			b.Fatal(err)
		}
		for _, st := range sts {
			if err := st.handleChanges(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
