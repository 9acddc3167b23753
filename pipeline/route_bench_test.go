package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/switchboard-xds/switchboard/internal/envoysim"
	"github.com/switchboard-xds/switchboard/internal/worldgen"
	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// BenchmarkRouteChange is issue #19's cost line, in one run:
//
//   - to-clients/{envoy,grpc}: an HTTPRoute on svc-0 (100 Services in 10
//     namespaces) changes its split between svc-0 and svc-1 (80/20, then
//     50/50, in turn); an op ends when every one of 100 clients holds the
//     new route configuration: Envoy-shaped delta clients (envoysim,
//     wildcard) or proxyless-gRPC-shaped ones (grpcRouteClient, each
//     subscribed to svc-0's listener and route), on the same cores.
//     p50-ms and p99-ms are over the ops (-benchtime 100x or more for a
//     p99 worth the name).
//   - endpoint-to-clients/routes=N: one endpoint change of a Service that
//     is a route's backend, until each of the 100 clients holds the new
//     assignment, with N routes in a world of 1000 Services (each route on
//     its own Service, sending 80/20 to itself and another), against
//     none: routes must not slow endpoint changes.
//   - endpoint/routes=N: the Syncer's share of the same change.
func BenchmarkRouteChange(b *testing.B) {
	clients := 100
	if testing.Short() {
		clients = 5
	}
	for _, shape := range []string{"envoy", "grpc"} {
		b.Run("to-clients/"+shape, func(b *testing.B) { benchRouteToClients(b, shape, clients) })
	}
	for _, routes := range []int{0, 1000} {
		b.Run(fmt.Sprintf("endpoint-to-clients/routes=%d", routes), func(b *testing.B) {
			names := map[string]string{}
			for i := range clients {
				names[fmt.Sprintf("c%d", i)] = fmt.Sprintf("ns-%d", i%10)
			}
			services := 1000
			if testing.Short() {
				services = 50
			}
			s := newCostScene(b, services, names, true)
			keys := slices.SortedFunc(func(yield func(model.ServiceKey) bool) {
				for k := range s.world {
					if k.Namespace != "barrier" && !yield(k) {
						return
					}
				}
			}, func(a, b model.ServiceKey) int { return strings.Compare(a.String(), b.String()) })
			batch := model.Batch{Routes: map[model.RouteKey]*model.MeshRoute{}}
			for i := range min(routes, len(keys)) {
				front, back := keys[i], keys[(i+1)%len(keys)]
				r := &model.MeshRoute{
					Key:     model.RouteKey{Kind: model.KindHTTPRoute, Namespace: front.Namespace, Name: fmt.Sprintf("r-%d", i)},
					Parents: []model.ParentRef{{Kind: "Service", Namespace: front.Namespace, Name: front.Name}},
					Rules: []model.RouteRule{{Backends: []model.BackendRef{
						{Kind: "Service", Namespace: front.Namespace, Name: front.Name, Port: 8080, Weight: 80},
						{Kind: "Service", Namespace: back.Namespace, Name: back.Name, Port: 8080, Weight: 20},
					}}},
				}
				batch.Routes[r.Key] = r
			}
			if len(batch.Routes) > 0 {
				s.syncer.Sink(batch)
				// Measure from the steady state: every client holds every
				// route's split (sent in one response per client).
				s.wait(func(cfg *envoysim.Config) bool {
					for i := range len(batch.Routes) {
						rc := cfg.Routes[translator.CanonicalName(costDomain, keys[i], 8080)]
						if rc == nil || len(rc.GetVirtualHosts()) == 0 || len(rc.GetVirtualHosts()[0].GetRoutes()) == 0 ||
							rc.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetWeightedClusters() == nil {
							return false
						}
					}
					return true
				})
			}
			target := s.world[keys[1]]
			name := translator.CanonicalName(costDomain, target.Key, 8080)
			var lat []time.Duration
			i := 0
			for b.Loop() {
				moved := *target
				moved.Ports = slices.Clone(target.Ports)
				addr := fmt.Sprintf("10.9.%d.%d", i/250%250, 1+i%250)
				moved.Ports[0].Endpoints = []model.Endpoint{{Addresses: []string{addr}, Port: 8080, Ready: true, Serving: true}}
				start := time.Now()
				s.syncer.Sink(model.Batch{Services: map[model.ServiceKey]*model.Service{target.Key: &moved}})
				s.wait(func(cfg *envoysim.Config) bool {
					cla := cfg.Assignments[name]
					return cla != nil && strings.Contains(cla.String(), addr)
				})
				lat = append(lat, time.Since(start))
				i++
			}
			reportLatencies(b, lat)
		})
		b.Run(fmt.Sprintf("endpoint/routes=%d", routes), func(b *testing.B) {
			views, s := routeWorld(b, routes)
			v := views[len(views)-1]
			i := 0
			for b.Loop() {
				moved := *v
				moved.Ports = slices.Clone(v.Ports)
				moved.Ports[0].Endpoints = []model.Endpoint{{Addresses: []string{fmt.Sprintf("10.9.%d.%d", i/250%250, 1+i%250)}, Port: 8080, Ready: true, Serving: true}}
				s.Sink(model.Batch{Services: map[model.ServiceKey]*model.Service{v.Key: &moved}})
				i++
			}
		})
	}
}

// routeWorld is a Syncer (sidecar stage on) holding max(routes, 1000)+1
// generated Services (views built by watcher.Store, 10 endpoints each, 10
// namespaces) and a route on each of the first routes Services, sending
// 80/20 to itself and the Service ten further on (same namespace).
func routeWorld(b *testing.B, routes int) ([]*model.Service, *Syncer) {
	b.Helper()
	n := max(routes, 1000) + 1
	views, err := worldgen.Generate(worldgen.Options{Services: n, Endpoints: 10, Key: func(i int) model.ServiceKey {
		return model.ServiceKey{Namespace: fmt.Sprintf("ns-%d", i%10), Name: fmt.Sprintf("svc-%d", i)}
	}})
	if err != nil {
		b.Fatal(err)
	}
	full := model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{}, Routes: map[model.RouteKey]*model.MeshRoute{}}
	for _, v := range views {
		full.Services[v.Key] = v
	}
	for i := range routes {
		r := &model.MeshRoute{
			Key:     model.RouteKey{Kind: model.KindHTTPRoute, Namespace: views[i].Key.Namespace, Name: fmt.Sprintf("r-%d", i)},
			Parents: []model.ParentRef{{Kind: "Service", Namespace: views[i].Key.Namespace, Name: views[i].Key.Name}},
			Rules: []model.RouteRule{{Backends: []model.BackendRef{
				{Kind: "Service", Namespace: views[i].Key.Namespace, Name: views[i].Key.Name, Port: 8080, Weight: 80},
				{Kind: "Service", Namespace: views[i].Key.Namespace, Name: views[(i+10)%n].Key.Name, Port: 8080, Weight: 20},
			}}},
		}
		full.Routes[r.Key] = r
	}
	s := NewSyncer(NewCache(nil), Options{Sidecars: true, DNSInterval: -1, Translator: translator.Options{SidecarDNS: "127.0.0.1:15053"}})
	s.Sink(full)
	return views, s
}

// reportLatencies reports the p50 and p99 of lat, in milliseconds.
func reportLatencies(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}

// benchRouteToClients changes an HTTPRoute's split on svc-0 of 100
// Services (80/20, then 50/50, in turn) until each of n clients of shape
// ("envoy": envoysim delta clients, wildcard; "grpc": grpcRouteClient, each
// subscribed to svc-0's listener only) holds the new split.
func benchRouteToClients(b *testing.B, shape string, n int) {
	names := map[string]string{}
	if shape == "envoy" {
		for i := range n {
			names[fmt.Sprintf("c%d", i)] = fmt.Sprintf("ns-%d", i%10)
		}
	}
	s := newCostScene(b, 100, names, true)
	var front, back model.ServiceKey
	for k := range s.world {
		switch k.Name {
		case "svc-0":
			front = k
		case "svc-1":
			back = k
		}
	}
	name := translator.CanonicalName(costDomain, front, 8080)
	var grpcClients []*grpcRouteClient
	if shape == "grpc" {
		for i := range n {
			grpcClients = append(grpcClients, dialGRPCRouteClient(b, s.addr, fmt.Sprintf("g%d", i), fmt.Sprintf("ns-%d", i%10), name))
		}
		waitAllRoutes(b, grpcClients, func(*routev3.RouteConfiguration) bool { return true })
	}
	// split reports whether rc sends w1 to a cluster other than front's.
	split := func(rc *routev3.RouteConfiguration, w1 int32) bool {
		for _, vh := range rc.GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				for _, c := range rt.GetRoute().GetWeightedClusters().GetClusters() {
					if c.GetName() != name && c.GetWeight().GetValue() == uint32(w1) {
						return true
					}
				}
			}
		}
		return false
	}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		w0, w1 := int32(80), int32(20)
		if i%2 == 1 {
			w0, w1 = 50, 50
		}
		r := &model.MeshRoute{
			Key:     model.RouteKey{Kind: model.KindHTTPRoute, Namespace: front.Namespace, Name: "split"},
			Parents: []model.ParentRef{{Kind: "Service", Namespace: front.Namespace, Name: front.Name}},
			Rules: []model.RouteRule{{Backends: []model.BackendRef{
				{Kind: "Service", Namespace: front.Namespace, Name: front.Name, Port: 8080, Weight: w0},
				{Kind: "Service", Namespace: back.Namespace, Name: back.Name, Port: 8080, Weight: w1},
			}}},
		}
		start := time.Now()
		s.syncer.Sink(model.Batch{Routes: map[model.RouteKey]*model.MeshRoute{r.Key: r}})
		if shape == "grpc" {
			waitAllRoutes(b, grpcClients, func(rc *routev3.RouteConfiguration) bool { return split(rc, w1) })
		} else {
			s.wait(func(cfg *envoysim.Config) bool { rc := cfg.Routes[name]; return rc != nil && split(rc, w1) })
		}
		lat = append(lat, time.Since(start))
		i++
	}
	reportLatencies(b, lat)
}
