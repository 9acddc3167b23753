package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-xds/switchboard/model"
)

// A wildcard subscriber gets every resource in its own view: the variant of
// its class where there is one, over both protocols.
func TestWildcardServesClientView(t *testing.T) {
	h := newHarness(t)
	res := svc("a", 1)
	res.Clusters[0] = enc(&clusterv3.Cluster{Name: "a", LbPolicy: clusterv3.Cluster_RING_HASH})
	res.Variants = []model.Variant{{Type: model.Cluster, View: model.View{Class: model.ClassCCore}, Resource: enc(&clusterv3.Cluster{Name: "a"})}}
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": res, "ns/b": svc("b", 1)})
	node := &corev3.Node{Id: "c-core", UserAgentName: "gRPC C-core"}
	policyOf := func(b []byte) clusterv3.Cluster_LbPolicy {
		c := &clusterv3.Cluster{}
		if err := proto.Unmarshal(b, c); err != nil {
			t.Fatal(err)
		}
		return c.GetLbPolicy()
	}

	sotw := h.client(t)
	sotw.node = node
	sotw.request(resourcev3.ClusterType, nil, nil, "")
	r := sotw.next()
	if got := names(t, r); !equal(got, []string{"a", "b"}) {
		t.Fatalf("SotW wildcard CDS = %v, want [a b]", got)
	}
	if got := policyOf(r.GetResources()[0].GetValue()); got != clusterv3.Cluster_ROUND_ROBIN {
		t.Fatalf("SotW wildcard: C-core got %v for a, want its round-robin variant", got)
	}

	delta := h.deltaClient(t)
	delta.node = node
	delta.subscribe(resourcev3.ClusterType)
	d := delta.next()
	if len(d.GetResources()) != 2 || d.GetResources()[0].GetName() != "a" {
		t.Fatalf("delta wildcard CDS = %v, want [a b]", deltaNames(d))
	}
	if got := policyOf(d.GetResources()[0].GetResource().GetValue()); got != clusterv3.Cluster_ROUND_ROBIN {
		t.Fatalf("delta wildcard: C-core got %v for a, want its round-robin variant", got)
	}
}
