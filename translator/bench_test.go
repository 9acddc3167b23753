package translator

import (
	"fmt"
	"slices"
	"testing"

	"github.com/switchboard-xds/switchboard/model"
)

// benchServices builds n single-port Services with perService ready
// endpoints each, spread over three zones, directly as watcher views (sorted
// as the watcher sorts them), so that building inputs costs next to nothing.
func benchServices(n, perService int) []*model.Service {
	zones := []string{"zone-a", "zone-b", "zone-c"}
	svcs := make([]*model.Service, 0, n)
	for i := range n {
		eps := make([]model.Endpoint, 0, perService)
		for j := range perService {
			eps = append(eps, model.Endpoint{
				Addresses: []string{fmt.Sprintf("10.%d.%d.%d", i/256%256, i%256, j%250+1)},
				Port:      int32(8080 + j/250),
				Ready:     true,
				Serving:   true,
				Zone:      zones[j%len(zones)],
				NodeName:  fmt.Sprintf("node-%d", j%20),
			})
		}
		slices.SortFunc(eps, func(a, b model.Endpoint) int {
			if a.Addresses[0] != b.Addresses[0] {
				if a.Addresses[0] < b.Addresses[0] {
					return -1
				}
				return 1
			}
			return int(a.Port - b.Port)
		})
		svcs = append(svcs, &model.Service{
			Key:        model.ServiceKey{Namespace: fmt.Sprintf("ns-%d", i%50), Name: fmt.Sprintf("svc-%d", i)},
			Type:       model.TypeClusterIP,
			Ports:      []model.Port{{Name: "grpc", Port: 8080, Protocol: "TCP", TargetPort: 8080, Endpoints: eps}},
			SliceCount: 1 + perService/100,
		})
	}
	return svcs
}

// BenchmarkAll measures a full translation (the first one after sync, or a
// resync) of the whole world.
func BenchmarkAll(b *testing.B) {
	for _, size := range []struct{ services, endpoints int }{
		{1000, 10},
		{10000, 10},
		{1000, 100},
	} {
		b.Run(fmt.Sprintf("services=%d/endpoints=%d", size.services, size.endpoints), func(b *testing.B) {
			if testing.Short() && size.services*size.endpoints > 10000 {
				b.Skip("large size skipped in -short mode")
			}
			svcs := benchServices(size.services, size.endpoints)
			b.ReportAllocs()
			for b.Loop() {
				if out, _ := All(Options{}, svcs); len(out) != size.services {
					b.Fatalf("got %d Services", len(out))
				}
			}
			reportPerEndpoint(b, size.services*size.endpoints)
		})
	}
}

// BenchmarkService measures the translation of one Service, the work that
// one EndpointSlice update costs.
func BenchmarkService(b *testing.B) {
	for _, endpoints := range []int{10, 100} {
		b.Run(fmt.Sprintf("endpoints=%d", endpoints), func(b *testing.B) {
			svc := benchServices(1, endpoints)[0]
			b.ReportAllocs()
			for b.Loop() {
				if res, _ := Service(Options{}, svc); len(res.Assignments) != 1 {
					b.Fatal("no assignment")
				}
			}
			reportPerEndpoint(b, endpoints)
		})
	}
}

// BenchmarkServiceRollout is BenchmarkService for a Service in the middle
// of a rolling update: every fourth endpoint is not ready (half of those
// terminating), which takes loadAssignment's general path rather than the
// shortcut that BenchmarkService's all-ready views take.
func BenchmarkServiceRollout(b *testing.B) {
	for _, endpoints := range []int{10, 100} {
		b.Run(fmt.Sprintf("endpoints=%d", endpoints), func(b *testing.B) {
			svc := benchServices(1, endpoints)[0]
			eps := svc.Ports[0].Endpoints
			for j := 0; j < len(eps); j += 4 {
				eps[j].Ready = false
				eps[j].Terminating = j%8 == 0
			}
			b.ReportAllocs()
			for b.Loop() {
				if res, _ := Service(Options{}, svc); len(res.Assignments) != 1 {
					b.Fatal("no assignment")
				}
			}
			reportPerEndpoint(b, endpoints)
		})
	}
}

// reportPerEndpoint adds the ns/endpoint metric: time per iteration divided
// by the endpoints translated in one iteration.
func reportPerEndpoint(b *testing.B, endpoints int) {
	if b.N == 0 || endpoints == 0 {
		return
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(endpoints), "ns/endpoint")
}
