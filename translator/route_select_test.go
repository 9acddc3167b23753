package translator

import (
	"testing"

	"github.com/switchboard-xds/switchboard/model"
)

// TestAttachedRoutes checks which routes attach to which port, and the
// producer/consumer split.
func TestAttachedRoutes(t *testing.T) {
	svc := &model.Service{Key: model.ServiceKey{Namespace: "n", Name: "s"}, Ports: []model.Port{
		{Name: "http", Port: 80}, {Name: "grpc", Port: 50051},
	}}
	route := func(ns, name string, p model.ParentRef) *model.MeshRoute {
		p.Kind, p.Namespace, p.Name = "Service", "n", "s"
		return &model.MeshRoute{Key: model.RouteKey{Kind: model.KindHTTPRoute, Namespace: ns, Name: name}, Parents: []model.ParentRef{p}}
	}
	every := route("n", "every", model.ParentRef{})
	byPort := route("n", "port", model.ParentRef{Port: 50051})
	bySection := route("n", "section", model.ParentRef{SectionName: "http"})
	consumer := route("c", "consumer", model.ParentRef{})
	gateway := &model.MeshRoute{
		Key:     model.RouteKey{Kind: model.KindHTTPRoute, Namespace: "n", Name: "gw"},
		Parents: []model.ParentRef{{Group: "gateway.networking.k8s.io", Kind: "Gateway", Namespace: "n", Name: "s"}},
	}
	routes := []*model.MeshRoute{every, byPort, bySection, consumer, gateway}
	names := func(rs []*model.MeshRoute) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Key.Name)
		}
		return out
	}
	for _, tc := range []struct {
		port     int
		producer []string
	}{
		{0, []string{"every", "section"}},
		{1, []string{"every", "port"}},
	} {
		producer, consumers := attachedRoutes(svc, &svc.Ports[tc.port], routes)
		if got := names(producer); len(got) != len(tc.producer) || got[0] != tc.producer[0] || got[1] != tc.producer[1] {
			t.Errorf("port %d: producer routes %v, want %v", svc.Ports[tc.port].Port, got, tc.producer)
		}
		if got := names(consumers["c"]); len(consumers) != 1 || len(got) != 1 || got[0] != "consumer" {
			t.Errorf("port %d: consumer routes %v", svc.Ports[tc.port].Port, consumers)
		}
	}
}

// TestRouteRulesMergesBackends checks that two backendRefs to one cluster
// are one weighted share, and that a rule whose every backend has weight 0
// sends to the failing cluster.
func TestRouteRulesMergesBackends(t *testing.T) {
	b := &model.Service{Key: model.ServiceKey{Namespace: "n", Name: "b"}, Ports: []model.Port{{Name: "http", Port: 80}}}
	mesh := &Mesh{Services: map[model.ServiceKey]*model.Service{b.Key: b}}
	ref := func(w int32) model.BackendRef {
		return model.BackendRef{Kind: "Service", Namespace: "n", Name: "b", Port: 80, Weight: w}
	}
	r := &model.MeshRoute{Key: model.RouteKey{Kind: model.KindHTTPRoute, Namespace: "n", Name: "r"}, Rules: []model.RouteRule{
		{Matches: []model.RouteMatch{{Path: &model.PathMatch{Type: model.MatchExact, Value: "/a"}}}, Backends: []model.BackendRef{ref(1), ref(3)}},
		{Matches: []model.RouteMatch{{Path: &model.PathMatch{Type: model.MatchExact, Value: "/z"}}}, Backends: []model.BackendRef{ref(0)}},
	}}
	in := RuleInput{Domain: "cluster.local", Service: model.ServiceKey{Namespace: "n", Name: "s"}, Port: "http", Canonical: "s.n.svc.cluster.local:80", Mesh: mesh}
	out := RouteRules(in, []*model.MeshRoute{r}, FlavourGRPC)
	if len(out.Routes) != 2 {
		t.Fatalf("%d routes, want 2", len(out.Routes))
	}
	if got := out.Routes[0].GetRoute().GetCluster(); got != "b.n.svc.cluster.local:80" {
		t.Errorf("/a sends to %q, want b's cluster (one share of weight 4)", got)
	}
	if got := out.Routes[1].GetRoute().GetCluster(); got != FailingCluster(in.Canonical) || !out.Failing {
		t.Errorf("/z sends to %q (failing %v), want the failing cluster", got, out.Failing)
	}
}
