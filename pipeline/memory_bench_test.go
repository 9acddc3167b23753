package pipeline

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/switchboard-xds/switchboard/internal/worldgen"
	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// BenchmarkSidecarMemory reports the live heap that a world costs once it
// is translated into the cache, with the sidecar stage and without
// (the gRPC-only server, --envoy-sidecars=false), in one run, for the
// worlds of issue #22 that made the sidecar stage cost namespaces ×
// Services: 1000 namespaces with one HTTP Service each; 200 namespaces
// with 25 each; and 1000 Services in 10 namespaces of which 20 are each
// visible to 64 namespaces that do not exist. MB is the heap held after
// the world and one more Service are stored; ratio is MB with the stage
// over MB without.
func BenchmarkSidecarMemory(b *testing.B) {
	type world struct {
		name      string
		services  int
		key       func(i int) model.ServiceKey
		visibleTo func(i int) string
	}
	worlds := []world{
		{"1000ns-x1", 1000, func(i int) model.ServiceKey { return model.ServiceKey{Namespace: fmt.Sprintf("ns-%d", i), Name: "svc"} }, nil},
		{"200ns-x25", 5000, func(i int) model.ServiceKey {
			return model.ServiceKey{Namespace: fmt.Sprintf("ns-%d", i%200), Name: fmt.Sprintf("svc-%d", i)}
		}, nil},
		{"visible-to-64-made-up", 1000, func(i int) model.ServiceKey {
			return model.ServiceKey{Namespace: fmt.Sprintf("ns-%d", i%10), Name: fmt.Sprintf("svc-%d", i)}
		}, func(i int) string {
			if i%10 != 0 || i >= 200 {
				return ""
			}
			made := make([]string, 64)
			for j := range made {
				made[j] = fmt.Sprintf("made-up-%d-%d", i, j)
			}
			return strings.Join(made, ",")
		}},
	}
	if testing.Short() {
		worlds = worlds[:1]
		worlds[0].services = 50
	}
	for _, w := range worlds {
		b.Run(w.name, func(b *testing.B) {
			views, err := worldgen.Generate(worldgen.Options{Services: w.services + 1, Endpoints: 10, Key: w.key})
			if err != nil {
				b.Fatal(err)
			}
			for i, v := range views {
				if w.visibleTo != nil && w.visibleTo(i) != "" {
					v.Annotations = map[string]string{translator.AnnotationVisibleTo: w.visibleTo(i)}
				}
			}
			heap := func(sidecars bool) float64 {
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				s := NewSyncer(NewCache(nil), Options{Sidecars: sidecars, DNSInterval: -1, Translator: translator.Options{SidecarDNS: "127.0.0.1:15053"}})
				full := model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{}}
				for _, v := range views[:w.services] {
					full.Services[v.Key] = v
				}
				s.Sink(full)
				last := views[w.services]
				s.Sink(model.Batch{Services: map[model.ServiceKey]*model.Service{last.Key: last}})
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(s)
				return float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
			}
			var on, off float64
			for b.Loop() {
				on, off = heap(true), heap(false)
			}
			b.ReportMetric(on, "MB")
			b.ReportMetric(off, "MB-off")
			b.ReportMetric(on/off, "ratio")
		})
	}
}
