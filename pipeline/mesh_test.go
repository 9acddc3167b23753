package pipeline

import (
	"maps"
	"slices"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

func svcIn(ns, name string) *model.Service {
	return &model.Service{
		Key:   model.ServiceKey{Namespace: ns, Name: name},
		Ports: []model.Port{{Name: "grpc", Port: 8080, Protocol: "TCP"}},
	}
}

// routeTo is an HTTPRoute in ns with Service parent and one rule sending to
// backend port 8080.
func routeTo(ns, name string, parent, backend model.ServiceKey) *model.MeshRoute {
	return &model.MeshRoute{
		Key:     model.RouteKey{Kind: model.KindHTTPRoute, Namespace: ns, Name: name},
		Parents: []model.ParentRef{{Kind: "Service", Namespace: parent.Namespace, Name: parent.Name}},
		Rules: []model.RouteRule{{Backends: []model.BackendRef{{
			Kind: "Service", Namespace: backend.Namespace, Name: backend.Name, Port: 8080, Weight: 1,
		}}}},
	}
}

func withEndpoint(s *model.Service) *model.Service {
	s.Ports[0].Endpoints = []model.Endpoint{{Addresses: []string{"10.0.0.1"}, Port: 8080, Ready: true, Serving: true}}
	return s
}

func withPort(s *model.Service, port int32) *model.Service {
	s.Ports = append(s.Ports, model.Port{Name: "other", Port: port, Protocol: "TCP"})
	return s
}

func keysOf(m map[model.ServiceKey]*model.Service) []string {
	var out []string
	for k := range maps.Keys(m) {
		out = append(out, k.String())
	}
	slices.Sort(out)
	return out
}

// TestMeshAffected checks that each kind of change re-translates exactly
// the Services it affects.
func TestMeshAffected(t *testing.T) {
	front, back, other := svcIn("a", "front"), svcIn("a", "back"), svcIn("a", "other")
	remote := svcIn("e", "remote")
	r := routeTo("a", "r", front.Key, back.Key)
	consumer := routeTo("c", "r", front.Key, remote.Key)
	x := newMeshIndex()
	full := x.apply(model.Batch{
		Full:     true,
		Services: map[model.ServiceKey]*model.Service{front.Key: front, back.Key: back, other.Key: other, remote.Key: remote},
		Routes:   map[model.RouteKey]*model.MeshRoute{r.Key: r, consumer.Key: consumer},
	})
	if got := keysOf(full); len(got) != 4 {
		t.Fatalf("full batch translates %v, want the 4 Services", got)
	}
	for _, tc := range []struct {
		name string
		b    model.Batch
		want []string
	}{
		{"backend's endpoints change", model.Batch{Services: map[model.ServiceKey]*model.Service{back.Key: withEndpoint(svcIn("a", "back"))}}, []string{"a/back"}},
		{"backend's ports change", model.Batch{Services: map[model.ServiceKey]*model.Service{back.Key: withPort(svcIn("a", "back"), 9090)}}, []string{"a/back", "a/front"}},
		{"unrelated Service changes", model.Batch{Services: map[model.ServiceKey]*model.Service{other.Key: svcIn("a", "other")}}, []string{"a/other"}},
		{"route deleted", model.Batch{Routes: map[model.RouteKey]*model.MeshRoute{r.Key: nil}}, []string{"a/front"}},
		{"route moves to another parent", model.Batch{Routes: map[model.RouteKey]*model.MeshRoute{consumer.Key: routeTo("c", "r", other.Key, remote.Key)}}, []string{"a/front", "a/other"}},
		{"grant in the backend's namespace", model.Batch{Grants: map[model.GrantKey]*model.ReferenceGrant{{Namespace: "e", Name: "g"}: {Key: model.GrantKey{Namespace: "e", Name: "g"}}}}, []string{"a/other"}},
		{"grant elsewhere", model.Batch{Grants: map[model.GrantKey]*model.ReferenceGrant{{Namespace: "z", Name: "g"}: {Key: model.GrantKey{Namespace: "z", Name: "g"}}}}, nil},
		{"backend deleted", model.Batch{Services: map[model.ServiceKey]*model.Service{remote.Key: nil}}, []string{"a/other", "e/remote"}},
	} {
		got := keysOf(x.apply(tc.b))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: translates %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestMeshRouteReachesCache checks that a route attached in one batch and
// deleted in the next changes the parent's RouteConfiguration in the
// Update, and only the parent's.
func TestMeshRouteReachesCache(t *testing.T) {
	front, back := svcIn("a", "front"), svcIn("a", "back")
	r := routeTo("a", "r", front.Key, back.Key)
	x := newMeshIndex()
	b := model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{front.Key: front, back.Key: back}, Routes: map[model.RouteKey]*model.MeshRoute{r.Key: r}}
	u, _ := translate(translator.Options{}, b, x.apply(b), x)
	if got := clusterOf(t, u.Services["a/front"]); got != "back.a.svc.cluster.local:8080" {
		t.Fatalf("with the route, front routes to %q", got)
	}
	b = model.Batch{Routes: map[model.RouteKey]*model.MeshRoute{r.Key: nil}}
	u, _ = translate(translator.Options{}, b, x.apply(b), x)
	if len(u.Services) != 1 {
		t.Fatalf("route deletion updates %d Services, want 1", len(u.Services))
	}
	if got := clusterOf(t, u.Services["a/front"]); got != "front.a.svc.cluster.local:8080" {
		t.Fatalf("without the route, front routes to %q", got)
	}
}

func clusterOf(t *testing.T, res *model.Resources) string {
	t.Helper()
	if res == nil || len(res.Routes) != 1 {
		t.Fatalf("resources %+v: want one route", res)
	}
	rc := &routev3.RouteConfiguration{}
	if err := proto.Unmarshal(res.Routes[0].Wire, rc); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rc.GetVirtualHosts()[0].GetRoutes() {
		names = append(names, r.GetRoute().GetCluster())
	}
	return strings.Join(names, ",")
}

// TestRouteStatus checks that a route's status follows its backends: a
// missing backend is ResolvedRefs false (BackendNotFound), its Service
// appearing makes it true, and only changed statuses are handed on.
func TestRouteStatus(t *testing.T) {
	front := svcIn("a", "front")
	r := routeTo("a", "r", front.Key, model.ServiceKey{Namespace: "a", Name: "back"})
	r.Generation = 3
	var got []map[model.RouteKey]*model.RouteStatus
	s := NewSyncer(NewCache(nil), Options{RouteStatus: func(m map[model.RouteKey]*model.RouteStatus) { got = append(got, m) }})
	s.Sink(model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{front.Key: front}, Routes: map[model.RouteKey]*model.MeshRoute{r.Key: r}})
	if len(got) != 1 {
		t.Fatalf("%d status updates after the full batch, want 1", len(got))
	}
	st := got[0][r.Key]
	if st == nil || st.Generation != 3 || len(st.Parents) != 1 || !st.Parents[0].Accepted.Status ||
		st.Parents[0].ResolvedRefs.Status || st.Parents[0].ResolvedRefs.Reason != model.ReasonBackendNotFound {
		t.Fatalf("status %+v: want accepted, refs not resolved (BackendNotFound)", st)
	}
	s.Sink(model.Batch{Services: map[model.ServiceKey]*model.Service{{Namespace: "a", Name: "unrelated"}: svcIn("a", "unrelated")}})
	if len(got) != 1 {
		t.Fatalf("an unrelated Service changed a route status: %+v", got[len(got)-1])
	}
	back := svcIn("a", "back")
	s.Sink(model.Batch{Services: map[model.ServiceKey]*model.Service{back.Key: back}})
	if len(got) != 2 || !got[1][r.Key].Parents[0].ResolvedRefs.Status {
		t.Fatalf("status updates %+v: want refs resolved once the backend exists", got)
	}
	if all := s.RouteStatuses(); len(all) != 1 || all[0] != got[1][r.Key] {
		t.Errorf("RouteStatuses = %+v", all)
	}
}
