package xds

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// TestClientViews: the views a stream tries, from the node it sends.
func TestClientViews(t *testing.T) {
	node := func(ua, zone string) *corev3.Node {
		n := &corev3.Node{Id: "n", UserAgentName: ua}
		if zone != "" {
			n.Locality = &corev3.Locality{Zone: zone}
		}
		return n
	}
	for _, tc := range []struct {
		name     string
		node     *corev3.Node
		cds, eds []model.View
	}{
		{"nil node", nil, nil, nil},
		{"grpc-go", node("gRPC Go", ""), nil, nil},
		{"grpc-go in z1", node("gRPC Go", "z1"), nil, []model.View{{Zone: "z1"}}},
		{"envoy", node("envoy", ""), []model.View{{Class: "envoy"}}, []model.View{{Class: "envoy"}}},
		{"envoy in z1", node("envoy", "z1"), []model.View{{Class: "envoy"}}, []model.View{{Class: "envoy", Zone: "z1"}, {Zone: "z1"}, {Class: "envoy"}}},
		{"c-core in z1", node("gRPC C-core linux Python", "z1"), []model.View{{Class: "c-core"}}, []model.View{{Class: "c-core", Zone: "z1"}, {Zone: "z1"}, {Class: "c-core"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := ClientOf(tc.node).Views()
			if d := cmp.Diff(tc.cds, v[clusterType]); d != "" {
				t.Errorf("CDS view (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.eds, v[endpointType]); d != "" {
				t.Errorf("EDS view (-want +got):\n%s", d)
			}
			if v[listenerType] != nil {
				t.Errorf("LDS views %v, want none", v[listenerType])
			}
			var rds []model.View
			if tc.node.GetUserAgentName() == "envoy" {
				rds = []model.View{{Class: "envoy"}}
			}
			if d := cmp.Diff(rds, v[routeType]); d != "" {
				t.Errorf("RDS view (-want +got):\n%s", d)
			}
		})
	}
}

// rollout translates a one-port Service "s" in namespace "ns" with the
// given endpoints; its cluster is named cluster.
func rollout(t *testing.T, trafficDistribution string, eps ...model.Endpoint) *model.Resources {
	t.Helper()
	res, diags := translator.Service(translator.Options{}, &model.Service{
		Key: model.ServiceKey{Namespace: "ns", Name: "s"}, SliceCount: 1, TrafficDistribution: trafficDistribution,
		Ports: []model.Port{{Name: "grpc", Port: 80, Endpoints: eps}},
	})
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	return &res
}

const cluster = "s.ns.svc.cluster.local:80"

func readyEP(addr, zone string) model.Endpoint {
	return model.Endpoint{Addresses: []string{addr}, Port: 80, Ready: true, Serving: true, Zone: zone}
}

func drainingEP(addr, zone string) model.Endpoint {
	return model.Endpoint{Addresses: []string{addr}, Port: 80, Serving: true, Terminating: true, Zone: zone}
}

// assignment decodes the one assignment in r.
func assignment(t *testing.T, r *discoveryv3.DiscoveryResponse) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	if r.GetTypeUrl() != resourcev3.EndpointType || len(r.GetResources()) != 1 {
		t.Fatalf("want one assignment, got %s with %v", r.GetTypeUrl(), names(t, r))
	}
	cla := &endpointv3.ClusterLoadAssignment{}
	if err := r.GetResources()[0].UnmarshalTo(cla); err != nil {
		t.Fatal(err)
	}
	return cla
}

// health maps each endpoint address of cla to its health status.
func health(cla *endpointv3.ClusterLoadAssignment) map[string]corev3.HealthStatus {
	out := map[string]corev3.HealthStatus{}
	for _, l := range cla.GetEndpoints() {
		for _, lb := range l.GetLbEndpoints() {
			out[lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = lb.GetHealthStatus()
		}
	}
	return out
}

// TestEnvoyGetsDrainingEndpoints drives an Envoy node and a grpc-go node
// through one rollout: Envoy gets the serving, terminating endpoint as
// DRAINING and grpc-go never sees it; when it goes, Envoy gets the plain
// assignment and grpc-go is not sent anything new.
func TestEnvoyGetsDrainingEndpoints(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{
		"ns/s": rollout(t, "", readyEP("10.0.0.1", "z1"), drainingEP("10.0.0.2", "z1")),
	})
	const (
		healthy  = corev3.HealthStatus_HEALTHY
		draining = corev3.HealthStatus_DRAINING
	)

	envoy := h.client(t)
	envoy.node = &corev3.Node{Id: "sidecar", UserAgentName: "envoy", UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "1.36.0"}}
	envoy.request(resourcev3.EndpointType, []string{cluster}, nil, "")
	er := envoy.next()
	if d := cmp.Diff(map[string]corev3.HealthStatus{"10.0.0.1": healthy, "10.0.0.2": draining}, health(assignment(t, er))); d != "" {
		t.Fatalf("Envoy endpoints (-want +got):\n%s", d)
	}

	grpcGo := h.client(t)
	grpcGo.node = &corev3.Node{Id: "grpc-go", UserAgentName: "gRPC Go", UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "1.85.0"}}
	grpcGo.request(resourcev3.EndpointType, []string{cluster}, nil, "")
	gr := grpcGo.next()
	if d := cmp.Diff(map[string]corev3.HealthStatus{"10.0.0.1": healthy}, health(assignment(t, gr))); d != "" {
		t.Fatalf("grpc-go endpoints (-want +got):\n%s", d)
	}

	// Two Envoys share one marshalled variant.
	keys := ClientOf(envoy.node).Views()[endpointType]
	if a, b := h.cache.getView(endpointType, cluster, keys), h.cache.getView(endpointType, cluster, keys); a != b || a == nil {
		t.Fatal("two reads of the Envoy variant gave two resources")
	}

	// The terminating endpoint goes: the variant goes with it, Envoy gets
	// the plain assignment, and grpc-go's assignment did not change.
	envoy.request(resourcev3.EndpointType, []string{cluster}, er, "")
	grpcGo.request(resourcev3.EndpointType, []string{cluster}, gr, "")
	waitFor(t, func() bool {
		n := 0
		for _, cs := range h.srv.Clients() {
			if cs.Types[endpointType].AckedVersion != "" {
				n++
			}
		}
		return n == 2
	})
	apply(t, h.cache, false, map[string]*model.Resources{
		"ns/s": rollout(t, "", readyEP("10.0.0.1", "z1")),
	})
	h.cache.mu.RLock()
	_, ok := h.cache.variants[endpointType][cluster]
	h.cache.mu.RUnlock()
	if ok {
		t.Error("the Envoy variant outlived the terminating endpoint")
	}
	if got := assignment(t, envoy.next()); !cmp.Equal(got, assignment(t, gr), protocmp.Transform()) {
		t.Errorf("after the rollout Envoy got %v, want the plain assignment", got)
	}
	// If grpc-go had been sent the unchanged assignment again, it would
	// arrive before this change.
	apply(t, h.cache, false, map[string]*model.Resources{
		"ns/s": rollout(t, "", readyEP("10.0.0.1", "z1"), readyEP("10.0.0.3", "z1")),
	})
	if d := cmp.Diff(map[string]corev3.HealthStatus{"10.0.0.1": healthy, "10.0.0.3": healthy}, health(assignment(t, grpcGo.next()))); d != "" {
		t.Errorf("grpc-go's next assignment (-want +got):\n%s", d)
	}
}

// TestZonedEnvoyView checks the composite view: an Envoy in a zone with a
// zone variant gets that zone's DRAINING-aware variant, an Envoy in another
// zone the un-zoned one, and a grpc-go client in the zone the plain zone
// variant.
func TestZonedEnvoyView(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{
		"ns/s": rollout(t, "PreferClose",
			readyEP("10.0.1.1", "z1"), drainingEP("10.0.1.2", "z1"),
			readyEP("10.0.2.1", "z2"), drainingEP("10.0.2.2", "z2")),
	})
	type entry struct {
		priority uint32
		health   corev3.HealthStatus
	}
	view := func(ua, zone string) map[string]entry {
		c := h.client(t)
		c.node = &corev3.Node{Id: ua + "-" + zone, UserAgentName: ua, Locality: &corev3.Locality{Zone: zone}}
		c.request(resourcev3.EndpointType, []string{cluster}, nil, "")
		out := map[string]entry{}
		for _, l := range assignment(t, c.next()).GetEndpoints() {
			for _, lb := range l.GetLbEndpoints() {
				out[lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = entry{l.GetPriority(), lb.GetHealthStatus()}
			}
		}
		return out
	}
	const (
		healthy  = corev3.HealthStatus_HEALTHY
		draining = corev3.HealthStatus_DRAINING
	)
	for _, tc := range []struct {
		ua, zone string
		want     map[string]entry
	}{
		{"envoy", "z1", map[string]entry{
			"10.0.1.1": {0, healthy}, "10.0.1.2": {0, draining},
			"10.0.2.1": {1, healthy}, "10.0.2.2": {1, draining},
		}},
		{"envoy", "z9", map[string]entry{
			"10.0.1.1": {0, healthy}, "10.0.1.2": {0, draining},
			"10.0.2.1": {0, healthy}, "10.0.2.2": {0, draining},
		}},
		{"gRPC Go", "z1", map[string]entry{"10.0.1.1": {0, healthy}, "10.0.2.1": {1, healthy}}},
	} {
		if d := cmp.Diff(tc.want, view(tc.ua, tc.zone), cmp.AllowUnexported(entry{})); d != "" {
			t.Errorf("%s in %s (-want +got):\n%s", tc.ua, tc.zone, d)
		}
	}
}
