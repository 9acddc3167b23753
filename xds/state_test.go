package xds

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// typeState's sorted slice against a plain model, over random operations:
// the same subscriptions, versions, known names and watch references, the
// slice sorted with at most half of it empty entries, and nsub, digest and
// the count of empty entries in step.
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
			// Empty entries wait to be dropped all at once, but never
			// make up more than half.
			empty := 0
			for _, s := range ts.names {
				if s.empty() {
					empty++
				}
			}
			if empty != ts.empty || empty*2 > len(ts.names) {
				t.Fatalf("round %d step %d: %d empty entries of %d (counted %d): %+v", round, step, empty, len(ts.names), ts.empty, ts.names)
			}
		}
	}
}

// A stream that ends leaves nothing of itself in the cache's index once
// swept, and the streams that remain keep their entries, short names
// included; when the last stream ends, the index is empty without help.
func TestUnregisterLeavesOnlyOthers(t *testing.T) {
	c := newTestCache()
	world := map[string]*model.Resources{}
	for _, n := range []string{"a", "b", "c"} {
		world["ns/"+n] = svc(n, 1)
	}
	apply(t, c, true, world)
	srv := NewServer(c, ServerOptions{})
	connect := func(id int64, names ...string) *stream {
		st := newStream(id, srv)
		st.send = func(*discoveryv3.DiscoveryResponse) error { return nil }
		c.register(st.w)
		for _, ty := range []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType} {
			if err := st.handleSotW(&discoveryv3.DiscoveryRequest{TypeUrl: ty, ResourceNames: names}); err != nil {
				t.Fatal(err)
			}
		}
		return st
	}
	one := connect(1, "a", "b", "a-alias")
	two := connect(2, "b", "c")
	c.unregister(one.w)
	sweepAll(c)
	for ty := range numTypes {
		for name, ws := range c.byName[ty] {
			if len(ws) == 0 || slices.Contains(ws, one.w) {
				t.Fatalf("%v %s: watchers %v after stream 1 left", ty, name, ws)
			}
		}
		for _, name := range []string{"b", "c"} {
			if ty != routeType && !slices.Contains(c.byName[ty][name], two.w) {
				t.Fatalf("%v %s: stream 2 no longer watches it", ty, name)
			}
		}
	}
	c.unregister(two.w)
	for ty := range numTypes {
		if len(c.byName[ty]) != 0 {
			t.Fatalf("%v: %v left in the index after every stream left", ty, c.byName[ty])
		}
	}
}
