package xds

import (
	"runtime"
	"testing"

	"github.com/switchboard-xds/switchboard/internal/parallel"
	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// A full update is hashed and indexed on several goroutines; the cache must
// end up exactly as when every Service is stored one by one (same names,
// same content versions, same variants), whatever the schedule. Under -race
// this also checks that building resources shares nothing mutable between
// Services.
func TestFullBatchInParallelEqualsOneByOne(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	const n = 4 * parallel.Min
	svcs := make(map[model.ServiceKey]*model.Service, n)
	for i := range n {
		svc := benchService(i, 6, i)
		switch i % 4 {
		case 1:
			svc.Annotations = map[string]string{translator.AnnotationLBPolicy: "ring_hash", "switchboard.io/hash-header": "x-user"}
		case 2:
			svc.TrafficDistribution = "PreferClose"
		case 3:
			svc.Annotations = map[string]string{translator.AnnotationLBPolicy: "least_request", "switchboard.io/timeout": "2s"}
		}
		svcs[svc.Key] = svc
	}

	all := make(map[string]*translator.Resources, len(svcs))
	for _, svc := range svcs {
		res, _ := translator.Service(translator.Options{}, svc)
		all[svc.Key.String()] = &res
	}
	parallel := NewCache()
	apply(t, parallel, true, all)

	oneByOne := NewCache()
	apply(t, oneByOne, true, nil)
	for key, res := range all {
		apply(t, oneByOne, false, map[string]*translator.Resources{key: res})
	}

	for ty := range numTypes {
		if len(parallel.resources[ty]) != len(oneByOne.resources[ty]) || len(parallel.resources[ty]) < n {
			t.Fatalf("%v: %d resources in parallel, %d one by one (want at least %d)", ty, len(parallel.resources[ty]), len(oneByOne.resources[ty]), n)
		}
		for name, r := range oneByOne.resources[ty] {
			if p := parallel.resources[ty][name]; p == nil || p.Version() != r.Version() {
				t.Fatalf("%v %s: parallel %v, one by one version %s", ty, name, p, r.Version())
			}
		}
		if len(parallel.variants[ty]) != len(oneByOne.variants[ty]) {
			t.Fatalf("%v: %d names with variants in parallel, %d one by one", ty, len(parallel.variants[ty]), len(oneByOne.variants[ty]))
		}
		for name, vs := range oneByOne.variants[ty] {
			if !sameVersions(parallel.variants[ty][name], vs) {
				t.Fatalf("%v %s: variants differ", ty, name)
			}
		}
	}
	if len(parallel.variants[endpointType]) == 0 || len(parallel.variants[clusterType]) == 0 {
		t.Fatal("the world has no zone or class variants: the test covers less than it says")
	}
}
