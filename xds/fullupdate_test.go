package xds

import (
	"testing"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// A full update must leave the cache exactly as storing every Service one
// by one does (same names, same content versions, same variants).
func TestFullUpdateEqualsOneByOne(t *testing.T) {
	const n = 256
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

	all := make(map[string]*model.Resources, len(svcs))
	for _, svc := range svcs {
		res, _ := translator.Service(translator.Options{}, svc)
		all[svc.Key.String()] = &res
	}
	full := newTestCache()
	apply(t, full, true, all)

	oneByOne := newTestCache()
	apply(t, oneByOne, true, nil)
	for key, res := range all {
		apply(t, oneByOne, false, map[string]*model.Resources{key: res})
	}

	for ty := range numTypes {
		if len(full.resources[ty]) != len(oneByOne.resources[ty]) || len(full.resources[ty]) < n {
			t.Fatalf("%v: %d resources in the full update, %d one by one (want at least %d)", ty, len(full.resources[ty]), len(oneByOne.resources[ty]), n)
		}
		for name, r := range oneByOne.resources[ty] {
			if p := full.resources[ty][name]; p == nil || p.Version() != r.Version() {
				t.Fatalf("%v %s: parallel %v, one by one version %s", ty, name, p, r.Version())
			}
		}
		if len(full.variants[ty]) != len(oneByOne.variants[ty]) {
			t.Fatalf("%v: %d names with variants in the full update, %d one by one", ty, len(full.variants[ty]), len(oneByOne.variants[ty]))
		}
		for name, vs := range oneByOne.variants[ty] {
			if !sameVersions(full.variants[ty][name], vs) {
				t.Fatalf("%v %s: variants differ", ty, name)
			}
		}
	}
	if len(full.variants[endpointType]) == 0 || len(full.variants[clusterType]) == 0 {
		t.Fatal("the world has no zone or class variants: the test covers less than it says")
	}
}
