package translator

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-xds/switchboard/watcher"
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
		eps := make([]watcher.Endpoint, rng.IntN(30))
		for i := range eps {
			eps[i] = watcher.Endpoint{
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
		opt := cmp.Comparer(func(a, b ipAddr) bool { return a == b })
		if d := cmp.Diff(want, got, cmp.AllowUnexported(candidate{}, place{}), opt); d != "" || gotExtra != wantExtra {
			t.Fatalf("round %d: extra %d, want %d; (-want +got):\n%s", round, gotExtra, wantExtra, d)
		}
		// And the assignment holds each (address, port) once.
		cla, _ := loadAssignment("c", watcher.ServiceKey{}, "p", eps)
		served := claAddrs(cla)
		if len(served) != len(slices.Compact(slices.Sorted(slices.Values(served)))) {
			t.Fatalf("round %d: duplicates served: %v", round, served)
		}
		if err := grpcEDS(cla); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}
