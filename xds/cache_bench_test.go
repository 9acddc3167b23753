package xds

import (
	"fmt"
	"runtime"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/switchboard-xds/switchboard/internal/worldgen"
	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// benchWorld translates n single-port Services with perService ready
// endpoints each (worldgen.Plain: generated Services and EndpointSlices,
// viewed through the real watcher.Store). variant > 0 replaces every
// Service's first pod with one at an address of that variant's own, so two
// variants differ in every assignment and nothing else.
func benchWorld(b *testing.B, n, perService, variant int) map[string]*model.Resources {
	b.Helper()
	svcs, err := benchViews(0, n, perService, variant)
	if err != nil {
		b.Fatal(err)
	}
	out := make(map[string]*model.Resources, n)
	for _, svc := range svcs {
		res, diags := translator.Service(translator.Options{}, svc)
		if len(diags) > 0 {
			b.Fatalf("translate: %v", diags)
		}
		out[svc.Key.String()] = &res
	}
	return out
}

// benchService is the view of the i-th Service of benchWorld's world.
func benchService(i, perService, variant int) *model.Service {
	svcs, err := benchViews(i, 1, perService, variant)
	if err != nil {
		panic(err) // only for sizes the benchmarks never ask for
	}
	return svcs[0]
}

// benchViews returns the views of Services first to first+n-1 of
// benchWorld's world.
func benchViews(first, n, perService, variant int) ([]*model.Service, error) {
	w, err := worldgen.NewWorld(worldgen.Options{Services: n, Endpoints: perService, First: first})
	if err != nil {
		return nil, err
	}
	if variant > 0 && perService > 0 {
		for k := range n {
			// Unique per (Service, variant) for up to 256 variants.
			if _, err := w.ReplacePod(k, 0, worldgen.ChangeAddress((first+k)<<8|variant%256)); err != nil {
				return nil, err
			}
		}
	}
	return w.Views(), nil
}

func benchCache(b *testing.B, world map[string]*model.Resources) *Cache {
	b.Helper()
	c := newTestCache()
	if _, err := c.Apply(Update{Full: true, Services: world}); err != nil {
		b.Fatal(err)
	}
	return c
}

// oneService returns the key and two alternating versions of Service 0.
func oneService(b *testing.B, perService int) (string, [2]*model.Resources) {
	b.Helper()
	var v [2]*model.Resources
	var key string
	for i := range v {
		for k, r := range benchWorld(b, 1, perService, i+1) {
			key, v[i] = k, r
		}
	}
	return key, v
}

// BenchmarkApplyOneService measures what one EndpointSlice change costs the
// cache once translated: marshal the Service's resources, hash them, swap
// the changed ones in, with 1k Services in the cache and nobody watching.
func BenchmarkApplyOneService(b *testing.B) {
	services := 1000
	if testing.Short() {
		services = 50
	}
	for _, eps := range []int{10, 100} {
		b.Run(fmt.Sprintf("services=%d/endpoints=%d", services, eps), func(b *testing.B) {
			c := benchCache(b, benchWorld(b, services, eps, 0))
			key, v := oneService(b, eps)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				n, err := c.Apply(Update{Services: map[string]*model.Resources{key: v[i%2]}})
				if err != nil || n != 1 {
					b.Fatalf("Apply = %d, %v; want 1 changed resource", n, err)
				}
				i++
			}
		})
	}
}

// BenchmarkFanOutNotify measures Apply of a one-assignment change that many
// streams watch by name, and each stream collecting it (subscriber.take):
// the cache's share of a fan-out, without the network.
func BenchmarkFanOutNotify(b *testing.B) {
	subs := []int{100, 1000, 10000}
	if testing.Short() {
		subs = []int{10}
	}
	for _, n := range subs {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			c := benchCache(b, benchWorld(b, 100, 10, 0))
			key, v := oneService(b, 10)
			name := v[0].Assignments[0].Name
			ws := make([]*subscriber, n)
			for i := range ws {
				ws[i] = newSubscriber()
				c.register(ws[i])
				c.watch(ws[i], endpointType, false, []string{name}, nil)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := c.Apply(Update{Services: map[string]*model.Resources{key: v[i%2]}}); err != nil {
					b.Fatal(err)
				}
				for _, w := range ws {
					<-w.signal
					if p, _ := w.take(); len(p[endpointType]) != 1 {
						b.Fatalf("subscriber has %d pending assignments, want 1", len(p[endpointType]))
					}
				}
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/subscriber")
		})
	}
}

// BenchmarkHeapPerEndpoint reports the live heap that a full world costs the
// cache (B/endpoint, resources of every type included, and whatever the
// cache keeps of the translator's output, which is dropped once applied)
// and times a full Apply into an empty cache (the first sync).
func BenchmarkHeapPerEndpoint(b *testing.B) {
	sizes := []struct{ services, endpoints int }{{1000, 10}, {1000, 100}, {10000, 10}}
	if testing.Short() {
		sizes = sizes[:1]
		sizes[0].services = 50
	}
	// The first translation and marshalling of each message type set up
	// lazily built tables (descriptors, coders): not the world's cost.
	benchCache(b, benchWorld(b, 1, 1, 0))
	for _, size := range sizes {
		b.Run(fmt.Sprintf("services=%d/endpoints=%d", size.services, size.endpoints), func(b *testing.B) {
			before := liveHeap()
			c := benchCache(b, benchWorld(b, size.services, size.endpoints, 0))
			after := liveHeap()
			runtime.KeepAlive(c)
			world := benchWorld(b, size.services, size.endpoints, 0)
			b.ReportAllocs()
			for b.Loop() {
				benchCache(b, world)
			}
			b.ReportMetric(float64(int64(after)-int64(before))/float64(size.services*size.endpoints), "heap-B/endpoint")
		})
	}
}

// BenchmarkHeapPerClient reports the server-side protocol state of one
// connected client subscribed to R clusters and R assignments (stream,
// subscriber, watch index entries, sent versions), without the gRPC
// transport, and times a client's subscription.
func BenchmarkHeapPerClient(b *testing.B) {
	subscribed := []int{10, 100, 1000}
	if testing.Short() {
		subscribed = []int{10}
	}
	const clients = 200
	for _, r := range subscribed {
		b.Run(fmt.Sprintf("subscribed=%d", r), func(b *testing.B) {
			world := benchWorld(b, r, 10, 0)
			c := benchCache(b, world)
			srv := NewServer(c, ServerOptions{})
			var names []string
			for _, res := range world {
				names = append(names, res.Clusters[0].Name)
			}
			discard := func(*discoveryv3.DiscoveryResponse) error { return nil }
			connect := func(id int64) *stream {
				st := newStream(id, srv)
				st.send = discard
				c.register(st.w)
				for _, t := range []typeIndex{clusterType, endpointType} {
					if err := st.handleSotW(&discoveryv3.DiscoveryRequest{TypeUrl: typeURLs[t], ResourceNames: names}); err != nil {
						b.Fatal(err)
					}
				}
				return st
			}
			before := liveHeap()
			streams := make([]*stream, clients)
			for i := range streams {
				streams[i] = connect(int64(i))
			}
			after := liveHeap()
			for _, st := range streams {
				c.unregister(st.w)
			}
			b.ReportAllocs()
			id := int64(clients)
			for b.Loop() {
				st := connect(id)
				c.unregister(st.w)
				id++
			}
			b.ReportMetric(float64(int64(after)-int64(before))/clients, "heap-B/client")
		})
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
