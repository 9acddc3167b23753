package pipeline

import (
	"runtime"
	"testing"

	"github.com/switchboard-xds/switchboard/internal/parallel"
	"github.com/switchboard-xds/switchboard/internal/worldgen"
	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/xds"
)

// BenchmarkSyncFull is a cold start: a full world of 10k Services × 10
// endpoints (views built by watcher.Store from generated EndpointSlices)
// translated, encoded and stored by the Syncer, on one core and on every
// core (cores=all is GOMAXPROCS as set).
func BenchmarkSyncFull(b *testing.B) {
	services := 10000
	if testing.Short() {
		services = 2 * parallel.Min
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
				NewSyncer(xds.NewCache(), Options{}).Sink(model.Batch{Full: true, Services: svcs})
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(services*10), "ns/endpoint")
		})
	}
}
