package worldgen

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/switchboard-xds/switchboard/model"
)

// TestObjectsAsTheControllerWritesThem checks the slices: at most 100
// endpoints, the service-name label, every endpoint with its three
// conditions, zone, node and Pod targetRef, and every pod once.
func TestObjectsAsTheControllerWritesThem(t *testing.T) {
	o := Options{Services: 3, Endpoints: 250, Shape: Zones2}
	svcs, ess, err := Objects(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 3 || len(ess) != 9 {
		t.Fatalf("got %d Services and %d slices, want 3 and 9 (100+100+50 endpoints each)", len(svcs), len(ess))
	}
	perSvc := map[string]int{}
	pods := map[string]bool{}
	for _, es := range ess {
		if len(es.Endpoints) > MaxSliceEndpoints {
			t.Errorf("slice %s has %d endpoints", es.Name, len(es.Endpoints))
		}
		svc := es.Labels[discoveryv1.LabelServiceName]
		perSvc[svc] += len(es.Endpoints)
		if es.AddressType != discoveryv1.AddressTypeIPv4 || len(es.OwnerReferences) != 1 || es.OwnerReferences[0].Name != svc {
			t.Errorf("slice %s: address type %s, owners %v", es.Name, es.AddressType, es.OwnerReferences)
		}
		for _, e := range es.Endpoints {
			c := e.Conditions
			if c.Ready == nil || c.Serving == nil || c.Terminating == nil || e.Zone == nil || e.NodeName == nil ||
				e.TargetRef == nil || e.TargetRef.Kind != "Pod" || len(e.Addresses) != 1 {
				t.Fatalf("slice %s: incomplete endpoint %+v", es.Name, e)
			}
			if pods[e.TargetRef.Name] {
				t.Errorf("pod %s in two endpoints", e.TargetRef.Name)
			}
			pods[e.TargetRef.Name] = true
		}
	}
	for _, svc := range svcs {
		if perSvc[svc.Name] != 250 {
			t.Errorf("%s has %d endpoints in its slices, want 250", svc.Name, perSvc[svc.Name])
		}
	}
}

// TestViewsAreNumericallySorted checks that views come from the Store:
// numeric address order, which string order contradicts.
func TestViewsAreNumericallySorted(t *testing.T) {
	views, err := Generate(Options{Services: 2, Endpoints: 12, Shape: Zones2})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		if len(v.Ports) != 1 || v.SliceCount != 1 || v.Ports[0].TargetPort != Port {
			t.Fatalf("%s: view %+v", v.Key, v)
		}
		eps := v.Ports[0].Endpoints
		if len(eps) != 12 {
			t.Fatalf("%s: %d endpoints, want 12", v.Key, len(eps))
		}
		addrs := make([]string, len(eps))
		zones := map[string]int{}
		for i, e := range eps {
			addrs[i] = e.Addresses[0]
			zones[e.Zone]++
		}
		if !slices.IsSortedFunc(addrs, func(a, b string) int { return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b)) }) {
			t.Errorf("%s: not in numeric order: %v", v.Key, addrs)
		}
		if slices.IsSorted(addrs) {
			t.Errorf("%s: string order agrees with numeric order (%v): the world misses what production hits", v.Key, addrs)
		}
		if zones["zone-a"] != 6 || zones["zone-b"] != 6 {
			t.Errorf("%s: zones %v, want 6 in each of two", v.Key, zones)
		}
	}
	if views[0].Ports[0].Endpoints[0].Addresses[0] == views[1].Ports[0].Endpoints[0].Addresses[0] {
		t.Error("two Services share an address")
	}
}

func TestRolloutConditions(t *testing.T) {
	views, err := Generate(Options{Services: 1, Endpoints: 80, Shape: Rollout})
	if err != nil {
		t.Fatal(err)
	}
	var ready, draining, starting int
	for _, e := range views[0].Ports[0].Endpoints {
		switch {
		case e.Ready && e.Serving && !e.Terminating:
			ready++
		case !e.Ready && e.Serving && e.Terminating:
			draining++
		case !e.Ready && !e.Serving && !e.Terminating:
			starting++
		default:
			t.Errorf("endpoint %v: unexpected conditions %+v", e.Addresses, e)
		}
	}
	if ready != 60 || draining != 10 || starting != 10 {
		t.Errorf("ready %d, terminating %d, starting %d; want 60, 10, 10", ready, draining, starting)
	}
}

// TestWindow checks that First picks a window of a larger world.
func TestWindow(t *testing.T) {
	whole, err := Generate(Options{Services: 5, Endpoints: 3})
	if err != nil {
		t.Fatal(err)
	}
	window, err := Generate(Options{Services: 2, Endpoints: 3, First: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(window, whole[3:]) {
		t.Errorf("window %v, want %v", window, whole[3:])
	}
}

func TestReplacePod(t *testing.T) {
	key := func(i int) model.ServiceKey {
		return model.ServiceKey{Namespace: "load", Name: "s" + string(rune('a'+i))}
	}
	w, err := NewWorld(Options{Services: 2, Endpoints: 150, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	before := w.View(1)
	oldAddr := before.Ports[0].Endpoints[120].Addresses[0]
	v, err := w.ReplacePod(1, 120, ChangeAddress(7))
	if err != nil {
		t.Fatal(err)
	}
	if v != w.View(1) || v.Key != key(1) {
		t.Fatalf("ReplacePod returned %v, View has %v", v.Key, w.View(1).Key)
	}
	eps := v.Ports[0].Endpoints
	if len(eps) != 150 || eps[149].Addresses[0] != ChangeAddress(7).String() {
		t.Fatalf("new address not last of %d endpoints: %v", len(eps), eps[149].Addresses)
	}
	for _, e := range eps {
		if e.Addresses[0] == oldAddr {
			t.Fatalf("old address %s still served", oldAddr)
		}
	}
	if before.Ports[0].Endpoints[120].Addresses[0] != oldAddr {
		t.Error("ReplacePod mutated a published view")
	}
	if _, err := w.ReplacePod(1, 120, ChangeAddress(7)); err == nil {
		t.Error("a replacement that changes no view did not fail")
	}
	if _, err := w.ReplacePod(0, 150, ChangeAddress(8)); err == nil {
		t.Error("replacing a slot that does not exist did not fail")
	}
}

func TestTooLarge(t *testing.T) {
	if _, _, err := Objects(Options{Services: 40000, Endpoints: 10}); err == nil {
		t.Error("a world beyond 10.0.0.0/9 did not fail")
	}
}
