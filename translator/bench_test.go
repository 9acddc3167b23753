package translator

import (
	"fmt"
	"testing"

	"github.com/switchboard-xds/switchboard/internal/worldgen"
	"github.com/switchboard-xds/switchboard/model"
)

// benchServices returns the views of n single-port Services with perService
// ready endpoints each, in one zone, spread over 50 namespaces: generated
// as Services and EndpointSlices and built by the real watcher.Store, so
// endpoints come in its numeric address order.
func benchServices(tb testing.TB, n, perService int) []*model.Service {
	return benchShape(tb, worldgen.Plain, n, perService)
}

// benchShape is benchServices for any shape.
func benchShape(tb testing.TB, shape worldgen.Shape, n, perService int) []*model.Service {
	tb.Helper()
	svcs, err := worldgen.Generate(worldgen.Options{
		Services: n, Endpoints: perService, Shape: shape,
		Key: func(i int) model.ServiceKey {
			return model.ServiceKey{Namespace: fmt.Sprintf("ns-%d", i%50), Name: fmt.Sprintf("svc-%d", i)}
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return svcs
}

// shapeName is the sub-benchmark name of a shape with name, "" for Plain.
func shapeName(shape worldgen.Shape, name string) string {
	if shape.Name == "" {
		return name
	}
	return shape.Name + "/" + name
}

// BenchmarkAll measures a full translation (the first one after sync, or a
// resync) of the whole world.
func BenchmarkAll(b *testing.B) {
	for _, size := range []struct {
		shape               worldgen.Shape
		services, endpoints int
	}{
		{worldgen.Plain, 1000, 10},
		{worldgen.Plain, 10000, 10},
		{worldgen.Plain, 1000, 100},
		{worldgen.Zones2, 1000, 100},
		{worldgen.Rollout, 1000, 100},
	} {
		b.Run(shapeName(size.shape, fmt.Sprintf("services=%d/endpoints=%d", size.services, size.endpoints)), func(b *testing.B) {
			if testing.Short() && size.services*size.endpoints > 10000 {
				b.Skip("large size skipped in -short mode")
			}
			svcs := benchShape(b, size.shape, size.services, size.endpoints)
			b.ReportAllocs()
			for b.Loop() {
				if out, _ := all(Options{}, svcs); len(out) != size.services {
					b.Fatalf("got %d Services", len(out))
				}
			}
			reportPerEndpoint(b, size.services*size.endpoints)
		})
	}
}

// BenchmarkService measures the translation of one Service, the work that
// one EndpointSlice update costs, for ready endpoints in one zone and in
// two (zones2/...).
func BenchmarkService(b *testing.B) {
	for _, shape := range []worldgen.Shape{worldgen.Plain, worldgen.Zones2} {
		for _, endpoints := range []int{10, 100, 1000} {
			benchService(b, shape, shapeName(shape, fmt.Sprintf("endpoints=%d", endpoints)), endpoints)
		}
	}
}

// BenchmarkServiceRollout is BenchmarkService for a Service in the middle
// of a rolling update (worldgen.Rollout: of every eight endpoints one is
// terminating but serving and one not ready yet), which takes
// loadAssignment's general path.
func BenchmarkServiceRollout(b *testing.B) {
	for _, endpoints := range []int{10, 100, 1000} {
		benchService(b, worldgen.Rollout, fmt.Sprintf("endpoints=%d", endpoints), endpoints)
	}
}

func benchService(b *testing.B, shape worldgen.Shape, name string, endpoints int) {
	b.Run(name, func(b *testing.B) {
		svc := benchShape(b, shape, 1, endpoints)[0]
		b.ReportAllocs()
		for b.Loop() {
			if res, _ := Service(Options{}, svc); len(res.Assignments) != 1 {
				b.Fatal("no assignment")
			}
		}
		reportPerEndpoint(b, endpoints)
	})
}

// reportPerEndpoint adds the ns/endpoint metric: time per iteration divided
// by the endpoints translated in one iteration.
func reportPerEndpoint(b *testing.B, endpoints int) {
	if b.N == 0 || endpoints == 0 {
		return
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(endpoints), "ns/endpoint")
}
