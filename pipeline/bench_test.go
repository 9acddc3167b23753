package pipeline

import (
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/switchboard-xds/switchboard/internal/worldgen"
	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// BenchmarkSyncFull is a cold start: a full world of 10k Services × 10
// endpoints (views built by watcher.Store from generated EndpointSlices)
// translated, encoded and stored by the Syncer, on one core and on every
// core (cores=all is GOMAXPROCS as set).
func BenchmarkSyncFull(b *testing.B) {
	services := 10000
	if testing.Short() {
		services = 2 * parallelMin
	}
	views, err := worldgen.Generate(worldgen.Options{Services: services, Endpoints: 10})
	if err != nil {
		b.Fatal(err)
	}
	svcs := make(map[model.ServiceKey]*model.Service, len(views))
	for _, v := range views {
		svcs[v.Key] = v
	}
	for _, procs := range []int{1, 0} {
		name := "cores=1"
		if procs == 0 {
			name = "cores=all"
		}
		b.Run(name, func(b *testing.B) {
			if procs > 0 {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			}
			b.ReportAllocs()
			for b.Loop() {
				NewSyncer(NewCache(nil), Options{}).Sink(model.Batch{Full: true, Services: svcs})
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(services*10), "ns/endpoint")
		})
	}
}

// BenchmarkSidecars measures the sidecar stage on R Services × 10
// endpoints in R/100 namespaces (views built by watcher.Store), all on one
// HTTP-family port as worldgen makes them, at R=1000 and R=10,000 (20 with
// -short), so that the cost of a change can be compared across world
// sizes in one run: full is a cold start; endpoint is one endpoint change
// (rebuilds nothing); added is one new Service, added and deleted in
// turn (its listener and the DNS table, which is built from every
// Service's records kept by the stage); added-dns-held is the same with
// the table held, as the Syncer holds it within a second of its last
// build: what a Service costs besides the table. wire-B/op is the size of
// what one op rebuilt.
func BenchmarkSidecars(b *testing.B) {
	sizes := []int{1000, 10000}
	if testing.Short() {
		sizes = []int{20}
	}
	for _, services := range sizes {
		b.Run(fmt.Sprintf("R=%d", services), func(b *testing.B) { benchSidecars(b, services) })
	}
}

func benchSidecars(b *testing.B, services int) {
	key := func(i int) model.ServiceKey {
		return model.ServiceKey{Namespace: fmt.Sprintf("ns-%d", i%max(services/100, 1)), Name: fmt.Sprintf("svc-%d", i)}
	}
	views, err := worldgen.Generate(worldgen.Options{Services: services + 1, Endpoints: 10, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	world := map[model.ServiceKey]*model.Service{}
	for _, v := range views[:services] {
		world[v.Key] = v
	}
	opts := translator.Options{SidecarDNS: "127.0.0.1:15053"}
	wire := func(groups map[string]*model.Resources) int {
		n := 0
		for _, r := range groups {
			if r == nil {
				continue
			}
			for _, l := range [][]model.Encoded{r.Listeners, r.Routes, r.Clusters} {
				for _, e := range l {
					n += len(e.Wire)
				}
			}
			for _, v := range r.Variants {
				n += len(v.Resource.Wire)
			}
		}
		return n
	}
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			groups, _, err := NewSidecars(opts).Apply(model.Batch{Full: true, Services: world}, false)
			if err != nil {
				b.Fatal(err)
			}
			n = wire(groups)
		}
		b.ReportMetric(float64(n), "wire-B/op")
	})
	added := func(i int) model.Batch {
		var v *model.Service
		if i%2 == 0 {
			v = views[services]
		}
		return model.Batch{Services: map[model.ServiceKey]*model.Service{views[services].Key: v}}
	}
	for _, c := range []struct {
		name    string
		batch   func(i int) model.Batch
		holdDNS bool
	}{
		{"endpoint", func(i int) model.Batch {
			v := *views[0]
			v.Ports = slices.Clone(v.Ports)
			v.Ports[0].Endpoints = v.Ports[0].Endpoints[:1+i%9]
			return model.Batch{Services: map[model.ServiceKey]*model.Service{v.Key: &v}}
		}, false},
		{"added", added, false},
		{"added-dns-held", added, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := NewSidecars(opts)
			if _, _, err := s.Apply(model.Batch{Full: true, Services: world}, false); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			n, i := 0, 0
			for b.Loop() {
				groups, _, err := s.Apply(c.batch(i), c.holdDNS)
				if err != nil {
					b.Fatal(err)
				}
				n += wire(groups)
				i++
			}
			b.ReportMetric(float64(n)/float64(i), "wire-B/op")
		})
	}
}

// BenchmarkWideService is issue #22's Service with 10,000 ports (1000 with
// -short) through a Syncer and its cache with the sidecar stage: full is
// a cold start with it alone (10,000 outbound listeners, each part built
// once per Service, not once per part); edit is one endpoint of one port
// changed (a set of names in the cache, not a scan per name: 1.2 s per
// edit before, CPU time on one core).
func BenchmarkWideService(b *testing.B) {
	ports := 10000
	if testing.Short() {
		ports = 1000
	}
	svc := &model.Service{Key: model.ServiceKey{Namespace: "a", Name: "wide"}, ClusterIPs: []string{"10.96.9.9"}, SliceCount: 1}
	for i := range ports {
		svc.Ports = append(svc.Ports, model.Port{
			Name: fmt.Sprintf("p-%d", i), Port: int32(1000 + i), Protocol: "TCP",
			Endpoints: []model.Endpoint{{Addresses: []string{"10.0.0.1"}, Port: int32(1000 + i), Ready: true, Serving: true}},
		})
	}
	opts := Options{Sidecars: true, DNSInterval: -1, Translator: translator.Options{SidecarDNS: "127.0.0.1:15053"}}
	full := model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{svc.Key: svc}}
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			NewSyncer(NewCache(nil), opts).Sink(full)
		}
	})
	b.Run("edit", func(b *testing.B) {
		s := NewSyncer(NewCache(nil), opts)
		s.Sink(full)
		i := 0
		for b.Loop() {
			edit := *svc
			edit.Ports = slices.Clone(svc.Ports)
			edit.Ports[0].Endpoints = []model.Endpoint{{Addresses: []string{fmt.Sprintf("10.0.1.%d", 1+i%200)}, Port: 1000, Ready: true, Serving: true}}
			s.Sink(model.Batch{Services: map[model.ServiceKey]*model.Service{svc.Key: &edit}})
			i++
		}
	})
}
