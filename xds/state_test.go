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

// typeState against a plain model, over random operations on the stream
// and on the cache: the same subscriptions, versions held, known names and
// counts, while names come and go, their slots become tombstones and are
// given to other names, and the stream takes changes as handleChanges does
// (evict, then advance). Versions are unique per install, so the bits'
// "in step" must agree with the model's exact versions.
func TestTypeStateMatchesModel(t *testing.T) {
	var pool []string
	for i := range 40 {
		pool = append(pool, string(rune('a'+i%26))+strings.Repeat("x", i/26))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		slots := newSlotTable()
		ts := newTypeState(slots)
		var seq, version uint64
		cache := map[string]*Resource{}
		pending := map[string]struct{}{}
		subscribed := map[string]bool{}
		sent := map[string]uint64{} // version held; 0: one not ours
		had := map[string]bool{}
		known := map[string]bool{}
		install := func(n string) {
			seq++
			version++
			cache[n] = &Resource{Name: n, v: version, seq: seq}
			slots.set(n, true, seq)
			pending[n] = struct{}{}
		}
		for _, n := range pool[:20] {
			install(n)
		}
		for step := range 120 {
			n := pool[r.IntN(len(pool))]
			switch op := r.IntN(11); {
			case op == 0 && !subscribed[n]:
				ts.subscribeName(n, n)
				subscribed[n] = true
			case op == 1 && subscribed[n]:
				if rn := ts.unsubscribeName(n); rn != n {
					t.Fatalf("round %d step %d: unsubscribing %s gave %q to unwatch", round, step, n, rn)
				}
				delete(subscribed, n)
				delete(sent, n)
				delete(had, n)
				delete(known, n)
			case op == 2 && cache[n] != nil:
				ts.setSent(n, cache[n])
				sent[n], had[n] = cache[n].v, true
			case op == 3:
				ts.clearSent(n)
				delete(sent, n)
				delete(had, n)
			case op == 4:
				ts.setKnown(n)
				known[n] = true
			case op == 5 && r.IntN(4) == 0:
				ts.clearAllSent()
				clear(sent)
				clear(had)
			case op == 6:
				install(n)
			case op == 7 && cache[n] != nil:
				seq++
				delete(cache, n)
				slots.set(n, false, seq)
				pending[n] = struct{}{}
			case op == 8:
				// As handleChanges: evict, then bring every changed name
				// the client has up to date, then advance.
				for p := range pending {
					ts.evict(p)
				}
				ts.taking = seq
				for p := range pending {
					switch res := cache[p]; {
					case !ts.had(p):
					case res == nil:
						ts.clearSent(p)
						delete(sent, p)
						delete(had, p)
					case !ts.upToDate(p, res):
						ts.setSent(p, res)
						sent[p] = res.v
					}
				}
				clear(pending)
				ts.advance(seq)
				slots.reclaim(seq)
			case op == 9:
				v := uint64(r.IntN(int(version)) + 1)
				ts.setSentVersion(n, v)
				sent[n], had[n] = v, true
			case op == 10 && cache[n] != nil:
				ts.upToDate(n, cache[n])
			}
			var digest uint64
			for _, name := range pool {
				holds, want := false, false
				if res := cache[name]; res != nil {
					holds = ts.holds(name, res)
					want = had[name] && sent[name] == res.v
				}
				if ts.isSubscribed(name) != subscribed[name] || ts.had(name) != had[name] || holds != want || ts.isKnown(name) != known[name] {
					t.Fatalf("round %d step %d: %s: subscribed %v had %v holds %v known %v; model: %v %v %v %v",
						round, step, name, ts.isSubscribed(name), ts.had(name), holds, ts.isKnown(name), subscribed[name], had[name], want, known[name])
				}
				if subscribed[name] {
					digest += nameHash(name)
				}
			}
			if ts.nsub != len(subscribed) || ts.digest != digest {
				t.Fatalf("round %d step %d: nsub %d digest %x, want %d %x", round, step, ts.nsub, ts.digest, len(subscribed), digest)
			}
			var wantSub, wantSent []string
			for name := range subscribed {
				wantSub = append(wantSub, name)
			}
			for name := range had {
				if !subscribed[name] {
					wantSent = append(wantSent, name)
				}
			}
			for what, pair := range map[string][2][]string{"subscribed": {ts.subscribedNames(), wantSub}, "sent": {ts.sentNames(), wantSent}} {
				slices.Sort(pair[0])
				slices.Sort(pair[1])
				if !slices.Equal(pair[0], pair[1]) {
					t.Fatalf("round %d step %d: %s names %v, want %v", round, step, what, pair[0], pair[1])
				}
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
