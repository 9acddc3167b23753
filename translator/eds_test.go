package translator

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-xds/switchboard/model"
)

// TestDedupNeighbours checks dedup's shortcut for endpoints with one
// address each (duplicates are neighbours once sorted) against dedupSeen,
// which remembers every pair, on random endpoints with many repeats,
// spellings of one IPv6 address and places included.
func TestDedupNeighbours(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	addrs := []string{"10.0.0.1", "10.0.0.2", "10.0.0.10", "fd00::1", "FD00:0::1", "fd00::0:1", "::ffff:10.0.0.1", "fd00::2"}
	zones := []string{"", "a", "b"}
	for round := range 500 {
		eps := make([]model.Endpoint, rng.IntN(30))
		for i := range eps {
			eps[i] = model.Endpoint{
				Addresses: []string{addrs[rng.IntN(len(addrs))]},
				Port:      int32(80 + rng.IntN(2)),
				Zone:      zones[rng.IntN(len(zones))],
				Ready:     true,
			}
		}
		var chosen []candidate
		var buf []ipAddr
		for i := range eps {
			c, b, err := validEndpoint(&eps[i], buf)
			if err != nil {
				t.Fatal(err)
			}
			buf = b
			chosen = append(chosen, c)
		}
		if len(chosen) == 0 {
			continue
		}
		slices.SortFunc(chosen, compareCandidates)
		want, wantExtra := dedupSeen(slices.Clone(chosen))
		got, gotExtra := dedup(slices.Clone(chosen))
		opt := gocmp.Comparer(func(a, b ipAddr) bool { return a == b })
		if d := gocmp.Diff(want, got, gocmp.AllowUnexported(candidate{}, place{}), opt); d != "" || gotExtra != wantExtra {
			t.Fatalf("round %d: extra %d, want %d; (-want +got):\n%s", round, gotExtra, wantExtra, d)
		}
		// And the assignment holds each (address, port) once.
		cla, _ := loadAssignment("c", model.ServiceKey{}, "p", eps)
		served := claAddrs(cla)
		if len(served) != len(slices.Compact(slices.Sorted(slices.Values(served)))) {
			t.Fatalf("round %d: duplicates served: %v", round, served)
		}
		if err := grpcEDS(cla); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// TestSortedWire checks sortedWire, the fast path for views in the usual
// shape, against loadAssignment on random views, some in that shape and
// most not (unsorted, repeated, not ready, IPv6, two addresses): byte for
// byte the wire form of the message encoded, and usualView never true for
// a view that loadAssignment would reorder, trim or diagnose.
func TestSortedWire(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	addrs := []string{"10.0.0.1", "10.0.0.2", "10.0.0.10", "10.0.1.1", "192.168.0.1", "fd00::1", "::ffff:10.0.0.1", "bad"}
	regions := []string{"", "r1"}
	zones := []string{"", "a", "b", "c"}
	shortcuts := 0
	for round := range 3000 {
		eps := make([]model.Endpoint, rng.IntN(12))
		for i := range eps {
			a := addrs[rng.IntN(5)] // IPv4 only, mostly
			if rng.IntN(20) == 0 {
				a = addrs[rng.IntN(len(addrs))]
			}
			eps[i] = model.Endpoint{
				Addresses:   []string{a},
				Port:        int32(80 + rng.IntN(3)),
				Region:      regions[rng.IntN(len(regions))],
				Zone:        zones[rng.IntN(len(zones))],
				Ready:       rng.IntN(30) != 0,
				Serving:     true,
				Terminating: rng.IntN(10) == 0,
			}
			if rng.IntN(40) == 0 {
				eps[i].Addresses = append(eps[i].Addresses, "fd00::9")
			}
		}
		if rng.IntN(2) == 0 {
			// The view's order (model.Port.Endpoints), most of the time.
			slices.SortFunc(eps, func(a, b model.Endpoint) int {
				x, errX := netip.ParseAddr(a.Addresses[0])
				y, errY := netip.ParseAddr(b.Addresses[0])
				if errX != nil || errY != nil {
					return strings.Compare(a.Addresses[0], b.Addresses[0])
				}
				return cmp.Or(x.Compare(y), int(a.Port-b.Port))
			})
		}
		if !usualView(eps) {
			continue
		}
		shortcuts++
		wire := sortedWire("c", eps)
		want, diags := loadAssignment("c", model.ServiceKey{}, "p", eps)
		if len(diags) != 0 {
			t.Fatalf("round %d: shortcut taken for a view with diagnostics %v", round, diags)
		}
		if n := len(claAddrs(want)); n != len(eps) {
			t.Fatalf("round %d: the message serves %d of %d endpoints of a usual view", round, n, len(eps))
		}
		wb, _ := proto.MarshalOptions{Deterministic: true}.Marshal(want)
		if string(wire.Wire) != string(wb) || wire.Name != "c" {
			t.Fatalf("round %d: sortedWire differs from the encoded message; it decodes to %v\nwant %x\ngot  %x", round, decodeCLA(t, wire), wb, wire.Wire)
		}
	}
	if shortcuts < 300 {
		t.Errorf("shortcut taken %d times only; the test does not exercise it", shortcuts)
	}
}

// An endpoint whose address is not an IP is skipped with a diagnostic that
// names it; the rest of the port is served. Neither source lets such an
// address through (the API server and the manifest decoder both validate
// EndpointSlice addresses), so this is the translator's own defence, tested
// on a hand-made view.
func TestBadAddressSkipped(t *testing.T) {
	eps := []model.Endpoint{
		{Addresses: []string{"10.11.0.1"}, Port: 7070, Ready: true, Serving: true, Zone: "z1"},
		{Addresses: []string{"not-an-ip"}, Port: 7070, Ready: true, Serving: true, Zone: "z1"},
		{Addresses: []string{"10.11.0.300"}, Port: 7070, Ready: true, Serving: true, Zone: "z2"},
		{Addresses: []string{"fe80::1%eth0"}, Port: 7070, Ready: true, Serving: true, Zone: "z2"},
	}
	key := model.ServiceKey{Namespace: "mixed", Name: "flaky"}
	cla, diags := loadAssignment("c", key, "grpc", eps)
	if got := claAddrs(cla); !slices.Equal(got, []string{"10.11.0.1:7070"}) {
		t.Fatalf("served %v, want only 10.11.0.1:7070", got)
	}
	if len(diags) != 3 {
		t.Fatalf("diagnostics %v, want one per bad address", diags)
	}
	for i, bad := range []string{"not-an-ip", "10.11.0.300", "fe80::1%eth0"} {
		if d := diags[i]; d.Service != key || d.Port != "grpc" || !strings.Contains(d.Reason, strconv.Quote(bad)) {
			t.Errorf("diagnostic %d = %+v, want one naming %q", i, d, bad)
		}
	}
}
