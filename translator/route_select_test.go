package translator

import (
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

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

// TestRoutedPortKeepsPolicyAnnotations checks that on a port with mesh
// routes the Service's route policy annotations fill in what a rule
// leaves unset, for gRPC clients and Envoy alike, and that a rule's own
// timeout and retry win.
func TestRoutedPortKeepsPolicyAnnotations(t *testing.T) {
	svc := &model.Service{
		Key: model.ServiceKey{Namespace: "n", Name: "s"}, ClusterIPs: []string{"10.96.0.1"},
		Annotations: map[string]string{AnnotationTimeout: "5s", AnnotationRetryOn: "unavailable"},
		Ports:       []model.Port{{Name: "http", Port: 80}},
	}
	r := &model.MeshRoute{
		Key:     model.RouteKey{Kind: model.KindHTTPRoute, Namespace: "n", Name: "r"},
		Parents: []model.ParentRef{{Kind: "Service", Namespace: "n", Name: "s"}},
		Rules: []model.RouteRule{
			{
				Matches:        []model.RouteMatch{{Path: &model.PathMatch{Type: model.MatchExact, Value: "/own"}}},
				Backends:       []model.BackendRef{{Kind: "Service", Namespace: "n", Name: "s", Port: 80, Weight: 1}},
				RequestTimeout: 2 * time.Second,
				Retry:          &model.RouteRetry{Codes: []int{503}, Attempts: 2},
			},
			{Backends: []model.BackendRef{{Kind: "Service", Namespace: "n", Name: "s", Port: 80, Weight: 1}}},
		},
	}
	mesh := &Mesh{Routes: []*model.MeshRoute{r}, Services: map[model.ServiceKey]*model.Service{svc.Key: svc}}
	res, diags := ServiceMesh(Options{Sidecars: true}, svc, mesh)
	if len(res.Routes) != 1 {
		t.Fatalf("routes %v, diagnostics %v", res.Routes, diags)
	}
	check := func(who string, e model.Encoded) {
		rc := &routev3.RouteConfiguration{}
		if err := proto.Unmarshal(e.Wire, rc); err != nil {
			t.Fatal(err)
		}
		routes := rc.GetVirtualHosts()[0].GetRoutes()
		if len(routes) != 2 {
			t.Fatalf("%s: %d routes, want the two rules'", who, len(routes))
		}
		own, plain := routes[0].GetRoute(), routes[1].GetRoute()
		if own.GetMaxStreamDuration().GetMaxStreamDuration().AsDuration() == 5*time.Second || own.GetRetryPolicy().GetNumRetries().GetValue() != 2 {
			t.Errorf("%s: the rule with its own timeout and retry got the annotations': %v", who, own)
		}
		if plain.GetMaxStreamDuration().GetMaxStreamDuration().AsDuration() != 5*time.Second || plain.GetRetryPolicy().GetRetryOn() != "unavailable" {
			t.Errorf("%s: the rule without either did not get the annotations' (5s, unavailable): %v", who, plain)
		}
	}
	check("gRPC", res.Routes[0])
	envoy := false
	for _, v := range res.Variants {
		if v.Type == model.Route && v.View == (model.View{Class: model.ClassEnvoy}) {
			check("Envoy", v.Resource)
			envoy = true
		}
	}
	if !envoy {
		t.Fatal("no Envoy route variant")
	}
}
