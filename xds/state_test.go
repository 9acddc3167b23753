package xds

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// typeState's sorted slice against a plain model, over random operations:
// the same subscriptions, versions, known names and watch references, the
// slice sorted with no empty entry, and nsub and digest in step.
func TestTypeStateMatchesModel(t *testing.T) {
	var pool []string
	for i := range 40 {
		pool = append(pool, string(rune('a'+i%26))+strings.Repeat("x", i/26))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		ts := newTypeState()
		subscribed := map[string]bool{}
		sent := map[string]uint64{}
		known := map[string]bool{}
		for step := range 80 {
			n := pool[r.IntN(len(pool))]
			switch op := r.IntN(7); {
			case op == 0:
				// As stream.subscribe does: room for the names, then each
				// subscribed; sometimes enough names for reserve to act.
				var added []string
				for _, m := range pool[:r.IntN(len(pool))+1] {
					if !subscribed[m] && r.IntN(2) == 0 {
						added = append(added, m)
					}
				}
				ts.reserve(added)
				for _, m := range added {
					ts.subscribeName(m, m)
					subscribed[m] = true
				}
			case op == 1 && subscribed[n]:
				ts.unsubscribeName(n)
				delete(subscribed, n)
				delete(sent, n)
				delete(known, n)
			case op == 2:
				v := uint64(r.IntN(3) + 1)
				ts.setSent(n, v)
				sent[n] = v
			case op == 3:
				ts.clearSent(n)
				delete(sent, n)
			case op == 4:
				ts.setKnown(n)
				known[n] = true
			case op == 5:
				ts.clearAllSent()
				clear(sent)
			}
			var digest uint64
			for _, name := range pool {
				s := ts.get(name)
				v, had := sent[name]
				if s.subscribed != subscribed[name] || s.hasSent != had || s.sent != v || s.known != known[name] {
					t.Fatalf("round %d step %d: %s is %+v; model: subscribed %v, sent %v %v, known %v", round, step, name, s, subscribed[name], v, had, known[name])
				}
				if wantRefs := int32(0); subscribed[name] {
					wantRefs = 1
					if s.refs != wantRefs {
						t.Fatalf("round %d step %d: %s has %d watch references, want 1", round, step, name, s.refs)
					}
				}
				if subscribed[name] {
					digest += nameHash(name)
				}
			}
			if ts.nsub != len(subscribed) || ts.digest != digest {
				t.Fatalf("round %d step %d: nsub %d digest %x, want %d %x", round, step, ts.nsub, ts.digest, len(subscribed), digest)
			}
			if !slices.IsSortedFunc(ts.names, func(a, b nameState) int { return strings.Compare(a.name, b.name) }) {
				t.Fatalf("round %d step %d: names not sorted: %+v", round, step, ts.names)
			}
			if slices.ContainsFunc(ts.names, nameState.empty) {
				t.Fatalf("round %d step %d: an empty entry is kept: %+v", round, step, ts.names)
			}
		}
	}
}
