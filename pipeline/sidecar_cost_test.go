package pipeline

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchboard-xds/switchboard/internal/envoysim"
	"github.com/switchboard-xds/switchboard/internal/worldgen"
	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
	"github.com/switchboard-xds/switchboard/xds"
)

// costScene is a Syncer, its cache and an xDS server on loopback, with a
// world of R generated Services (one HTTP-family port each, with a
// ClusterIP) over 10 namespaces, and Envoy-shaped clients (envoysim) that
// count what they receive. The DNS table is not held (DNSInterval < 0),
// so that every change arrives whole before the barrier that ends it.
type costScene struct {
	tb      testing.TB
	syncer  *Syncer
	world   map[model.ServiceKey]*model.Service
	clients map[string]*envoysim.Client
	barrier int
	addr    string // the xDS server's
}

const costDomain = "cluster.local"

func newCostScene(tb testing.TB, services int, clients map[string]string, delta bool) *costScene {
	tb.Helper()
	views, err := worldgen.Generate(worldgen.Options{Services: services, Endpoints: 3, Key: func(i int) model.ServiceKey {
		return model.ServiceKey{Namespace: fmt.Sprintf("ns-%d", i%10), Name: fmt.Sprintf("svc-%d", i)}
	}})
	if err != nil {
		tb.Fatal(err)
	}
	s := &costScene{tb: tb, world: map[model.ServiceKey]*model.Service{}, clients: map[string]*envoysim.Client{}}
	for _, v := range views {
		s.world[v.Key] = v
	}
	barrier := sidecarView("barrier", "barrier", "10.255.255.1", 9, "tcp-barrier", "10.254.0.1")
	s.world[barrier.Key] = barrier
	cache := NewCache(nil)
	s.syncer = NewSyncer(cache, Options{Sidecars: true, DNSInterval: -1, Translator: translator.Options{ClusterDomain: costDomain, SidecarDNS: "127.0.0.1:15053"}})
	s.syncer.Sink(model.Batch{Full: true, Services: s.world})
	addr := serveADS(tb, cache)
	s.addr = addr
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	tb.Cleanup(cancel)
	for name, ns := range clients {
		md, err := structpb.NewStruct(map[string]any{"NAMESPACE": ns})
		if err != nil {
			tb.Fatal(err)
		}
		// Envoy's own gRPC client has no limit on a message's size; at
		// 10,000 Services a first response is over grpc-go's 4 MiB.
		c, err := envoysim.Dial(ctx, addr, &corev3.Node{Id: name, UserAgentName: "envoy", Metadata: md}, delta,
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = c.Close() })
		s.clients[name] = c
	}
	// Synced: every Service's listener, route, cluster and assignment
	// (the generated ones are all HTTP), and the barrier's.
	s.wait(func(cfg *envoysim.Config) bool {
		return len(cfg.Clusters) >= len(s.world) && len(cfg.Assignments) >= len(s.world) &&
			len(cfg.Routes) >= services && len(cfg.Listeners) >= len(s.world)
	})
	return s
}

// serveADS serves cache over ADS on a loopback port until the test ends,
// and returns its address.
func serveADS(tb testing.TB, cache *xds.Cache) string {
	tb.Helper()
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xds.NewServer(cache, xds.ServerOptions{}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	tb.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// wait blocks until every client's config satisfies ok.
func (s *costScene) wait(ok func(*envoysim.Config) bool) {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for name, c := range s.clients {
		if err := c.WaitFor(ctx, ok); err != nil {
			s.tb.Fatalf("client %s: %v", name, err)
		}
	}
}

// change applies svcs (nil value: deleted) after resetting every client's
// traffic, then moves the barrier Service's endpoint and waits until every
// client holds the barrier's new assignment (what the change sent at once
// has arrived before it) and, when held is set, what held says the client
// must hold (what a client subscribes to after the change, routes and
// assignments, comes after a round trip of its own). It returns each
// client's traffic without the barrier's assignment.
func (s *costScene) change(svcs map[model.ServiceKey]*model.Service, held func(client string, cfg *envoysim.Config) bool) map[string]map[string]envoysim.Traffic {
	s.tb.Helper()
	for _, c := range s.clients {
		c.ResetTraffic()
	}
	b := model.Batch{Services: svcs}
	for k, v := range svcs {
		if v == nil {
			delete(s.world, k)
		} else {
			s.world[k] = v
		}
	}
	s.syncer.Sink(b)
	s.barrier++
	ep := fmt.Sprintf("10.254.%d.%d", s.barrier/250, 1+s.barrier%250)
	bv := sidecarView("barrier", "barrier", "10.255.255.1", 9, "tcp-barrier", ep)
	s.syncer.Sink(model.Batch{Services: map[model.ServiceKey]*model.Service{bv.Key: bv}})
	bname := translator.CanonicalName(costDomain, bv.Key, 9)
	s.wait(func(cfg *envoysim.Config) bool {
		cla := cfg.Assignments[bname]
		return cla != nil && strings.Contains(cla.String(), ep)
	})
	if held != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for name, c := range s.clients {
			if err := c.WaitFor(ctx, func(cfg *envoysim.Config) bool { return held(name, cfg) }); err != nil {
				s.tb.Fatalf("client %s: %v", name, err)
			}
		}
	}
	out := map[string]map[string]envoysim.Traffic{}
	for name, c := range s.clients {
		tr := c.Traffic()
		if eds, ok := tr[resourcev3.EndpointType]; ok {
			eds.Bytes -= eds.ResourceBytes[bname] // roughly: the response's framing stays
			eds.Resources--
			delete(eds.ResourceBytes, bname)
			eds.Responses--
			if eds.Resources == 0 && len(eds.ResourceBytes) == 0 {
				delete(tr, resourcev3.EndpointType)
			} else {
				tr[resourcev3.EndpointType] = eds
			}
		}
		out[name] = tr
	}
	return out
}

// holds says that a client holds the route and the assignment of port of
// the Service key, which it subscribes to once it has the listener and the
// cluster.
func holds(key model.ServiceKey, port int32) func(string, *envoysim.Config) bool {
	name := translator.CanonicalName(costDomain, key, port)
	return func(_ string, cfg *envoysim.Config) bool {
		return cfg.Routes[name] != nil && cfg.Assignments[name] != nil
	}
}

// received sums what traffic holds: resource bytes without the DNS
// listener, the DNS listener's bytes, and the names received, sorted.
func received(traffic map[string]envoysim.Traffic) (bytes, dns int, names []string, removed int) {
	for _, tr := range traffic {
		for n, b := range tr.ResourceBytes {
			if n == translator.DNSListenerName {
				dns += b
				continue
			}
			bytes += b
			names = append(names, n)
		}
		removed += tr.Removed
	}
	slices.Sort(names)
	return bytes, dns, names, removed
}

// TestSidecarChangeCost counts what each Envoy sidecar (delta) receives
// for each kind of change in a world of 1000 Services over 10 namespaces,
// and fails above issue #18's targets: a Service added sends a sidecar
// that may see it its own listener, route, cluster and assignment
// (≤ 4 KB, the DNS table aside) and a sidecar that may not see it
// nothing; an endpoint change of any Service, headless included, sends
// its assignment only; a deleted Service sends removals (and the DNS
// table, whose names changed).
func TestSidecarChangeCost(t *testing.T) {
	services := 1000
	if testing.Short() {
		services = 100
	}
	s := newCostScene(t, services, map[string]string{"a": "ns-0", "b": "ns-1"}, true)
	canonical := func(k model.ServiceKey, port int32) string { return translator.CanonicalName(costDomain, k, port) }

	// A new HTTP Service, visible to all.
	web := sidecarView("ns-3", "new-web", "10.250.0.1", 80, "http", "10.253.0.1")
	got := s.change(map[model.ServiceKey]*model.Service{web.Key: web}, holds(web.Key, 80))
	for name := range s.clients {
		bytes, dns, names, _ := received(got[name])
		want := []string{"10.250.0.1_80", canonical(web.Key, 80), canonical(web.Key, 80), canonical(web.Key, 80)}
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("Service added: sidecar %s received %d resources %v, want %v (and the DNS table)", name, len(names), names[:min(len(names), 8)], want)
		}
		if bytes > 4096 {
			t.Errorf("Service added: sidecar %s received %d bytes besides the DNS table, want ≤ 4096", name, bytes)
		}
		if dns == 0 {
			t.Errorf("Service added: sidecar %s did not receive the DNS table with the new name", name)
		}
		t.Logf("Service added: sidecar %s received %d bytes (%v) and the DNS table, %d bytes", name, bytes, names[:min(len(names), 8)], dns)
	}

	// A new Service visible to ns-0 only: nothing at all for ns-1.
	limited := sidecarView("ns-2", "limited", "10.250.0.2", 5432, "pg", "10.253.0.2")
	limited.Annotations = map[string]string{translator.AnnotationVisibleTo: "ns-0"}
	got = s.change(map[model.ServiceKey]*model.Service{limited.Key: limited}, func(client string, cfg *envoysim.Config) bool {
		return client != "a" || cfg.Assignments[canonical(limited.Key, 5432)] != nil
	})
	if bytes, dns, names, _ := received(got["b"]); bytes+dns != 0 {
		t.Errorf("limited Service added: sidecar b (ns-1, may not see it) received %d bytes: %v, DNS %d", bytes, names, dns)
	}
	if _, _, names, _ := received(got["a"]); !slices.Contains(names, "10.250.0.2_5432") {
		t.Errorf("limited Service added: sidecar a (ns-0, may see it) received %v, want its listener", names)
	}

	// Endpoint changes, of a ClusterIP Service and of a headless one.
	moved := sidecarView("ns-3", "new-web", "10.250.0.1", 80, "http", "10.253.0.9")
	headless := sidecarView("ns-4", "pods", "", 7000, "tcp-pods", "10.253.1.1")
	headless.ClusterIPs, headless.Headless = nil, true
	// Added first, and held: a sidecar subscribes to its assignment after a
	// round trip of its own, which must not land in the next step.
	s.change(map[model.ServiceKey]*model.Service{headless.Key: headless}, func(_ string, cfg *envoysim.Config) bool {
		return cfg.Assignments[canonical(headless.Key, 7000)] != nil
	})
	headless2 := sidecarView("ns-4", "pods", "", 7000, "tcp-pods", "10.253.1.1", "10.253.1.2")
	headless2.ClusterIPs, headless2.Headless = nil, true
	for _, c := range []struct {
		what string
		svc  *model.Service
	}{{"ClusterIP", moved}, {"headless", headless2}} {
		got = s.change(map[model.ServiceKey]*model.Service{c.svc.Key: c.svc}, nil)
		for name, tr := range got {
			types := slices.Sorted(func(yield func(string) bool) {
				for t := range tr {
					if !yield(t) {
						return
					}
				}
			})
			if !slices.Equal(types, []string{resourcev3.EndpointType}) {
				t.Errorf("%s endpoint change: sidecar %s received types %v, want the assignment only", c.what, name, types)
			}
		}
	}

	// A deleted Service: removals, and the DNS table without its name.
	got = s.change(map[model.ServiceKey]*model.Service{web.Key: nil}, nil)
	for name := range s.clients {
		bytes, _, names, removed := received(got[name])
		if bytes != 0 || removed < 2 {
			t.Errorf("Service deleted: sidecar %s received %d bytes (%v) and %d removals, want removals only (its listener and cluster at least) and the DNS table", name, bytes, names, removed)
		}
	}
}

// BenchmarkSidecarChangeCost reports what one Service added costs each of
// two Envoy sidecars (delta, envoysim) at R=1000 and R=10,000 Services
// over 10 namespaces (R=100 with -short), in one run so that the two can
// be compared: B/sidecar is what a sidecar received for it besides the
// DNS table, dns-B/sidecar the DNS table it received with it (sent whole;
// the Syncer of switchboard serve sends it at most twice a second, this
// one at once). Each op adds a Service, and the next deletes it; ns/op is
// the time until both sidecars hold the change (the clients decode and
// check everything they receive on the same cores).
func BenchmarkSidecarChangeCost(b *testing.B) {
	sizes := []int{1000, 10000}
	if testing.Short() {
		sizes = []int{100}
	}
	for _, r := range sizes {
		b.Run(fmt.Sprintf("R=%d", r), func(b *testing.B) {
			s := newCostScene(b, r, map[string]string{"a": "ns-0", "b": "ns-1"}, true)
			web := sidecarView("ns-3", "new-web", "10.250.0.1", 80, "http", "10.253.0.1")
			var bytes, dns, adds int
			i := 0
			for b.Loop() {
				var svc *model.Service
				if i%2 == 0 {
					svc = web
				}
				var held func(string, *envoysim.Config) bool
				if svc != nil {
					held = holds(web.Key, 80)
				}
				got := s.change(map[model.ServiceKey]*model.Service{web.Key: svc}, held)
				if svc != nil {
					for _, tr := range got {
						by, d, _, _ := received(tr)
						bytes, dns = bytes+by, dns+d
					}
					adds += len(got)
				}
				i++
			}
			if adds > 0 {
				b.ReportMetric(float64(bytes)/float64(adds), "B/sidecar")
				b.ReportMetric(float64(dns)/float64(adds), "dns-B/sidecar")
			}
		})
	}
}
