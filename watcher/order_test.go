package watcher

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/switchboard-xds/switchboard/model"
)

// TestStoreEndpointOrder checks the one endpoint order that model.Port
// documents and the translator's fast path relies on: every view the Store
// publishes lists its endpoints by primary address as a number (IPv4 before
// IPv6), then by port, one entry per pair, whatever the order of the slices
// and of the endpoints in them.
func TestStoreEndpointOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		s := newTestStore(t)
		s.UpsertService(newSvc("ns", "svc", svcPortNum("http", 80, 8080)))
		for k := range 1 + rng.IntN(4) {
			family := discoveryv1.AddressTypeIPv4
			if rng.IntN(4) == 0 {
				family = discoveryv1.AddressTypeIPv6
			}
			var eps []discoveryv1.Endpoint
			for range rng.IntN(30) {
				var addr string
				if family == discoveryv1.AddressTypeIPv4 {
					addr = fmt.Sprintf("10.%d.%d.%d", rng.IntN(2), rng.IntN(3), rng.IntN(120))
				} else {
					addr = fmt.Sprintf("fd00::%x", rng.IntN(300))
				}
				eps = append(eps, newEp(addr))
			}
			port := 8080 + rng.IntN(2)
			s.UpsertSlice(newSlice("ns", fmt.Sprintf("svc-%d", k), "svc", family, slicePorts("http", port), eps...))
		}
		view := s.Service(model.ServiceKey{Namespace: "ns", Name: "svc"})
		if view == nil {
			t.Fatalf("round %d: no view", round)
		}
		checkEndpointOrder(t, view.Ports[0].Endpoints)
	}
}

// checkEndpointOrder fails t unless eps is in the one endpoint order of
// model.Port.Endpoints, strictly (one entry per address and port).
func checkEndpointOrder(t *testing.T, eps []model.Endpoint) {
	t.Helper()
	for i := 1; i < len(eps); i++ {
		a, errA := netip.ParseAddr(eps[i-1].Addresses[0])
		b, errB := netip.ParseAddr(eps[i].Addresses[0])
		if errA != nil || errB != nil {
			t.Fatalf("endpoint address that is not an IP in a view: %v %v", errA, errB)
		}
		if c := cmp.Or(a.Compare(b), cmp.Compare(eps[i-1].Port, eps[i].Port)); c >= 0 {
			t.Fatalf("endpoint %d (%s:%d) does not sort after %d (%s:%d)", i, b, eps[i].Port, i-1, a, eps[i-1].Port)
		}
	}
}

func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := NewStore(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
