package xds

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchboard-xds/switchboard/model"
)

// sidecarGroup is a sidecar-stage group: one Envoy-only listener.
func sidecarGroup(listener string) *model.Resources {
	return &model.Resources{EnvoyOnly: true, Listeners: encs(&listenerv3.Listener{Name: listener})}
}

func envoyIn(ns string) *corev3.Node {
	return &corev3.Node{
		Id: "sidecar-" + ns, UserAgentName: "envoy",
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{"NAMESPACE": structpb.NewStringValue(ns)}},
	}
}

// An Envoy's wildcard LDS brings exactly the sidecar stage's listeners, in
// delta and SotW and after a change; a gRPC client's wildcard never brings
// them; a listener asked for by name is served whatever its scope.
func TestScopeWildcardListeners(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{
		"ns/a":            svc("a", 1),
		"~sidecar/tcp/80": sidecarGroup("0.0.0.0_80"),
	})
	d := h.deltaClient(t)
	d.node = envoyIn("a")
	d.subscribe(resourcev3.ListenerType)
	r := d.next()
	if got := deltaNames(r); !slices.Equal(got, []string{"0.0.0.0_80"}) {
		t.Fatalf("Envoy's delta wildcard LDS = %v, want [0.0.0.0_80]", got)
	}
	d.ack(r)
	// A change of the gRPC listener is not sent to the Envoy; a new
	// sidecar listener is.
	apply(t, h.cache, false, map[string]*model.Resources{
		"ns/a":            svc("a", 2),
		"~sidecar/tcp/81": sidecarGroup("0.0.0.0_81"),
	})
	if got := deltaNames(d.next()); !slices.Equal(got, []string{"0.0.0.0_81"}) {
		t.Fatalf("after a change Envoy got %v, want [0.0.0.0_81] only", got)
	}

	s := h.client(t)
	s.node = envoyIn("b")
	s.request(resourcev3.ListenerType, nil, nil, "")
	if got := names(t, s.next()); !slices.Equal(got, []string{"0.0.0.0_80", "0.0.0.0_81"}) {
		t.Fatalf("Envoy's SotW wildcard LDS = %v, want the two sidecar listeners", got)
	}
	g := h.client(t)
	g.request(resourcev3.ListenerType, nil, nil, "")
	if got := names(t, g.next()); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("a gRPC client's wildcard LDS = %v, want [a]", got)
	}
	byName := h.deltaClient(t)
	byName.node = envoyIn("a")
	byName.subscribe(resourcev3.ListenerType, "a")
	if got := deltaNames(byName.next()); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("an Envoy asking for listener a by name got %v", got)
	}
}

// Route variants: an Envoy gets the Envoy variant of a route (whatever its
// namespace: a variant shaped for gRPC clients of its namespace is not
// for it), and the Envoy variant of its namespace when there is one; a
// gRPC client gets its namespace's variant, else the plain route.
func TestScopeRouteVariants(t *testing.T) {
	h := newHarness(t)
	rc := func(vhosts int) model.Encoded {
		r := &routev3.RouteConfiguration{Name: "r"}
		for range vhosts {
			r.VirtualHosts = append(r.VirtualHosts, &routev3.VirtualHost{Name: "v"})
		}
		return enc(r)
	}
	apply(t, h.cache, true, map[string]*model.Resources{"ns/r": {
		Routes: []model.Encoded{rc(1)},
		Variants: []model.Variant{
			{Type: model.Route, View: model.View{Namespace: "a"}, Resource: rc(2)},
			{Type: model.Route, View: model.View{Class: model.ClassEnvoy}, Resource: rc(3)},
			{Type: model.Route, View: model.View{Class: model.ClassEnvoy, Namespace: "b"}, Resource: rc(4)},
		},
	}})
	hosts := func(node *corev3.Node) int {
		c := h.deltaClient(t)
		c.node = node
		c.subscribe(resourcev3.RouteType, "r")
		r := c.next()
		if len(r.GetResources()) != 1 {
			t.Fatalf("%s: RDS r = %v", node.GetId(), deltaNames(r))
		}
		m, err := r.GetResources()[0].GetResource().UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		return len(m.(*routev3.RouteConfiguration).GetVirtualHosts())
	}
	grpcIn := func(ns string) *corev3.Node {
		n := envoyIn(ns)
		n.Id, n.UserAgentName = "grpc-"+ns, "gRPC Go"
		return n
	}
	for _, c := range []struct {
		node *corev3.Node
		want int
	}{
		{grpcIn("a"), 2}, {grpcIn("c"), 1}, {envoyIn("a"), 3}, {envoyIn("b"), 4}, {envoyIn("c"), 3},
	} {
		if got := hosts(c.node); got != c.want {
			t.Errorf("%s (%s): route with %d virtual hosts, want %d", c.node.GetId(), c.node.GetUserAgentName(), got, c.want)
		}
	}
}

// The sidecar stage's clusters (the ORIGINAL_DST passthrough, which gRPC
// clients refuse) come on a wildcard to Envoy clients only; the Services'
// clusters come to both.
func TestScopeWildcardClusters(t *testing.T) {
	h := newHarness(t)
	shared := &model.Resources{EnvoyOnly: true, Clusters: encs(&clusterv3.Cluster{Name: "PassthroughCluster"})}
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1), "~sidecar/shared": shared})
	for _, c := range []struct {
		node *corev3.Node
		want []string
	}{
		{envoyIn("a"), []string{"PassthroughCluster", "a"}},
		{&corev3.Node{Id: "grpc", UserAgentName: "gRPC Go"}, []string{"a"}},
	} {
		s := h.client(t)
		s.node = c.node
		s.request(resourcev3.ClusterType, nil, nil, "")
		if got := names(t, s.next()); !slices.Equal(got, c.want) {
			t.Errorf("%s's wildcard CDS = %v, want %v", c.node.GetUserAgentName(), got, c.want)
		}
	}
}
