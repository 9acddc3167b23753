package pipeline

import (
	"fmt"
	"testing"

	"github.com/switchboard-xds/switchboard/internal/worldgen"
	"github.com/switchboard-xds/switchboard/model"
)

// meshWorld is R Services × 10 endpoints (views built by watcher.Store)
// and, with routes, one HTTPRoute per Service sending 80/20 to the next
// two Services, so every Service is a parent of one route and a backend of
// two.
func meshBenchWorld(b *testing.B, services int, routes bool) (model.Batch, []*model.Service) {
	b.Helper()
	views, err := worldgen.Generate(worldgen.Options{Services: services, Endpoints: 10})
	if err != nil {
		b.Fatal(err)
	}
	full := model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{}, Routes: map[model.RouteKey]*model.MeshRoute{}}
	for _, v := range views {
		full.Services[v.Key] = v
	}
	if routes {
		for i, v := range views {
			r := meshBenchRoute(v, views[(i+1)%len(views)], views[(i+2)%len(views)], 80)
			full.Routes[r.Key] = r
		}
	}
	return full, views
}

func meshBenchRoute(parent, a, b *model.Service, weight int32) *model.MeshRoute {
	port := parent.Ports[0].Port
	return &model.MeshRoute{
		Key:     model.RouteKey{Kind: model.KindHTTPRoute, Namespace: parent.Key.Namespace, Name: parent.Key.Name},
		Parents: []model.ParentRef{{Kind: "Service", Namespace: parent.Key.Namespace, Name: parent.Key.Name}},
		Rules: []model.RouteRule{{Backends: []model.BackendRef{
			{Kind: "Service", Namespace: a.Key.Namespace, Name: a.Key.Name, Port: a.Ports[0].Port, Weight: weight},
			{Kind: "Service", Namespace: b.Key.Namespace, Name: b.Key.Name, Port: port, Weight: 100 - weight},
		}}},
	}
}

// BenchmarkMeshRouteChange is one route's weights changing in a world of
// R Services with one route each: the parent re-translated, the route
// statuses recomputed, the Update stored.
func BenchmarkMeshRouteChange(b *testing.B) {
	for _, services := range []int{100, 1000} {
		b.Run(fmt.Sprintf("services=%d", services), func(b *testing.B) {
			full, views := meshBenchWorld(b, services, true)
			s := NewSyncer(NewCache(nil), Options{})
			s.Sink(full)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				r := meshBenchRoute(views[0], views[1], views[2], int32(50+i%40))
				s.Sink(model.Batch{Routes: map[model.RouteKey]*model.MeshRoute{r.Key: r}})
			}
		})
	}
}

// BenchmarkMeshEndpointChange is one endpoint of one Service changing, in
// a world of 1000 Services: without routes; with one route on every other
// Service, the changed one a backend of two of them (routes=backend: an
// endpoint change re-translates only the Service); and with a route on
// the changed Service too (routes=parent: its RouteConfiguration is built
// from its route and marshalled, not written by the fast path).
func BenchmarkMeshEndpointChange(b *testing.B) {
	for _, routes := range []string{"none", "backend", "parent"} {
		b.Run("routes="+routes, func(b *testing.B) {
			full, views := meshBenchWorld(b, 1000, routes != "none")
			if routes == "backend" {
				delete(full.Routes, model.RouteKey{Kind: model.KindHTTPRoute, Namespace: views[500].Key.Namespace, Name: views[500].Key.Name})
			}
			s := NewSyncer(NewCache(nil), Options{})
			s.Sink(full)
			a, c := *views[500], *views[500]
			a.Ports = append([]model.Port(nil), views[500].Ports...)
			a.Ports[0].Endpoints = a.Ports[0].Endpoints[1:]
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				v := &a
				if i%2 == 0 {
					v = &c
				}
				s.Sink(model.Batch{Services: map[model.ServiceKey]*model.Service{v.Key: v}})
			}
		})
	}
}
