package translator

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/switchboard-xds/switchboard/internal/worldgen"
	"github.com/switchboard-xds/switchboard/model"
)

// BenchmarkEncodeAssignment compares, on views built by watcher.Store from
// generated EndpointSlices, the ways an assignment can reach wire form:
// written from the view (sortedWire, the usual shape only), built as a
// message and marshalled by protobuf-go (what every other view takes), and
// the same message marshalled by vtprotobuf (MarshalVTStrict; only with
// -tags vtprotobuf, see encode_bench_vt_test.go), plus the whole Service. It
// is the measurement behind the choice of encoder in buildAssignments.
func BenchmarkEncodeAssignment(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		for _, shape := range []struct {
			name  string
			shape worldgen.Shape
		}{{"zones2", worldgen.Zones2}, {"rollout", worldgen.Rollout}} {
			svc := benchShape(b, shape.shape, 1, n)[0]
			eps := svc.Ports[0].Endpoints
			if usualView(eps) {
				b.Run(fmt.Sprintf("endpoints=%d/%s/view-to-wire", n, shape.name), func(b *testing.B) {
					for b.Loop() {
						sortedWire("c", eps)
					}
				})
			}
			b.Run(fmt.Sprintf("endpoints=%d/%s/msg+protobuf-go", n, shape.name), func(b *testing.B) {
				for b.Loop() {
					cla, _ := loadAssignment("c", svc.Key, "grpc", eps)
					if _, err := deterministic.Marshal(cla); err != nil {
						b.Fatal(err)
					}
				}
			})
			if vtMarshal != nil {
				b.Run(fmt.Sprintf("endpoints=%d/%s/msg+vtproto", n, shape.name), func(b *testing.B) {
					for b.Loop() {
						cla, _ := loadAssignment("c", svc.Key, "grpc", eps)
						if _, err := vtMarshal(cla); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			b.Run(fmt.Sprintf("endpoints=%d/%s/service", n, shape.name), func(b *testing.B) {
				for b.Loop() {
					Service(Options{}, svc)
				}
			})
		}
	}
}

// BenchmarkEncodeSmall compares the hand-written listener, route and
// cluster writers with building the message and marshalling it by
// protobuf-go, and (with -tags vtprotobuf) by vtprotobuf.
func BenchmarkEncodeSmall(b *testing.B) {
	const name = "greeter.demo.svc.cluster.local:50051"
	aliases := []string{"greeter.demo:50051", "greeter.demo.svc:50051"}
	wire := func(e model.Encoded, err error) ([]byte, error) { return e.Wire, err }
	paths := map[string]func() ([]byte, error){
		"listener/hand":        func() ([]byte, error) { return wire(listenerWire(name, name)) },
		"listener/protobuf-go": func() ([]byte, error) { return wire(encode(name, listenerOf(name, newHCM(name)))) },
		"route/hand":           func() ([]byte, error) { return wire(routeWire(policy{}, name, aliases, nil)) },
		"route/protobuf-go":    func() ([]byte, error) { return wire(encode(name, routeConfiguration(name, aliases, nil))) },
		"cluster/hand": func() ([]byte, error) {
			e, _, err := clusterWire(policy{}, name, "")
			return e.Wire, err
		},
		"cluster/protobuf-go": func() ([]byte, error) { return wire(encode(name, edsCluster(name))) },
	}
	for k, f := range vtSmall {
		paths[k+"/vtproto"] = func() ([]byte, error) { return f(name, aliases) }
	}
	for _, k := range slices.Sorted(maps.Keys(paths)) {
		b.Run(k, func(b *testing.B) {
			for b.Loop() {
				if _, err := paths[k](); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
