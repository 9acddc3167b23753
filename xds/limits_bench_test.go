package xds

import (
	"fmt"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// BenchmarkDeltaUnknownNames is a delta stream's first request naming n
// resources that do not exist: held (initial_resource_versions, with a
// wildcard) or subscribed. The cost must grow linearly with n (compare
// n=10000 with n=100000: about 10x, not 100x); it grew quadratically while
// typeState inserted and deleted its sorted entries one at a time, and
// respondDelta searched the names asked for in a slice.
func BenchmarkDeltaUnknownNames(b *testing.B) {
	c := newTestCache()
	if _, err := c.Apply(Update{Full: true, Services: map[string]*model.Resources{"ns/a": svc("a", 1)}}); err != nil {
		b.Fatal(err)
	}
	srv := NewServer(c, ServerOptions{Limits: Limits{MaxNames: 1 << 20}})
	for _, n := range []int{10_000, 100_000} {
		names := unknownNames(n)
		held := make(map[string]string, n)
		for _, name := range names {
			held[name] = "1"
		}
		for _, tc := range []struct {
			what string
			req  *discoveryv3.DeltaDiscoveryRequest
		}{
			{"initial_resource_versions", &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, InitialResourceVersions: held}},
			{"subscribe", &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResourceNamesSubscribe: names}},
		} {
			b.Run(fmt.Sprintf("%s/n=%d", tc.what, n), func(b *testing.B) {
				for b.Loop() {
					st := newStream(1, srv)
					removed := 0
					st.sendDelta = func(r *discoveryv3.DeltaDiscoveryResponse) error {
						removed = len(r.GetRemovedResources())
						return nil
					}
					c.register(st.w)
					if err := st.handleDelta(tc.req); err != nil {
						b.Fatal(err)
					}
					c.unregister(st.w)
					if removed != n {
						b.Fatalf("%d names reported removed, want %d", removed, n)
					}
				}
			})
		}
	}
}
