package integration

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/integration/clients"
)

// TestRingHashSpread: with lb-policy ring_hash and hash-header x-user, one
// client program sends 64 distinct x-user values in turn (--cycle-header).
// In grpc-go and grpc-js-xds (route hash_policy, gRFC A42) every key stays
// on one backend over three passes, and the keys land on at least two of
// the three backends: a ring spreads keys, it does not pin them all to
// one. (With three backends sharing a ring of at least 1024 entries, all
// 64 keys on one backend has odds near 3^-63. In practice all three get
// keys, and the log says how many, but the assertion is the one that
// cannot flake.)
//
// C-core 1.51 gets the cluster as round robin (model.ClassCCore; it
// crashes on ring_hash), so its calls go to the three backends in turn
// whatever the key: a key reaches more than one backend.
func TestRingHashSpread(t *testing.T) {
	const (
		keys   = 64
		passes = 3 // calls per key, all successful and in a row
	)
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
		ns := w.Namespace(t)
		all := serveThree(t, w, ns, "spread", "", map[string]string{
			"switchboard.io/lb-policy":   "ring_hash",
			"switchboard.io/hash-header": "x-user",
		})
		cycle := clients.HeaderCycle{Key: "x-user"}
		for i := range keys {
			cycle.Values = append(cycle.Values, fmt.Sprintf("user-%02d", i))
		}
		p := s.start(clients.Options{Target: "xds:///spread." + ns + ":50051", Cycle: cycle, IntervalMS: 2})
		// Every key called passes times, all successful and in a row: the
		// client is connected to every backend it hashes to.
		rs, err := p.WaitFor(s.ctx, 0, clients.LastK(keys*passes, clients.Result.OK))
		if err != nil {
			t.Fatalf("%s: waiting for %d successful calls in a row: %v", kind, keys*passes, err)
		}
		rs = rs[len(rs)-keys*passes:]
		byKey := map[string]map[string]int{} // key -> backend -> calls
		perBackend := map[string]int{}       // backend -> keys
		for _, r := range rs {
			k := cycle.ValueOf(r)
			if byKey[k] == nil {
				byKey[k] = map[string]int{}
			}
			byKey[k][r.Backend]++
		}
		sticky := 0
		for _, k := range slices.Sorted(maps.Keys(byKey)) {
			if len(byKey[k]) == 1 {
				sticky++
			}
			for b := range byKey[k] {
				perBackend[b]++
			}
		}
		t.Logf("%s: %d keys × %d calls; %d keys stayed on one backend; keys per backend %v (of %v)", kind, keys, passes, sticky, perBackend, all)
		if n := nacks(t, sb, t.Name()); n != 0 {
			t.Errorf("%s NACKed %d responses", kind, n)
		}

		if kind == clients.PythonCCore {
			// Round robin: every backend answers and keys move.
			if len(perBackend) != len(all) || sticky == keys {
				t.Errorf("%s (served round robin): want calls on all of %v and keys on more than one backend; got %v, %d of %d keys on one backend", kind, all, perBackend, sticky, keys)
			}
			return
		}
		for k, bs := range byKey {
			if len(bs) != 1 {
				t.Errorf("%s: x-user=%s reached %v, want one backend", kind, k, bs)
			}
		}
		if len(perBackend) < 2 {
			t.Errorf("%s: %d keys all reached %v, want at least two of %v", kind, keys, perBackend, all)
		}
	})
}
