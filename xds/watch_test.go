package xds

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// checkIndex fails unless the cache's name index is consistent: no empty
// list, no subscriber twice in one list, the counts of entries and of dead
// entries true, every live subscriber's count of entries true, and no dead
// subscriber among the watchers. It returns the dead entries it found.
func checkIndex(t *testing.T, c *Cache) int {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	entries, dead := 0, 0
	live := map[*subscriber]int{}
	for ty := range numTypes {
		for name, ws := range c.byName[ty] {
			if len(ws) == 0 {
				t.Fatalf("%v %s: an empty list is kept", ty, name)
			}
			seen := map[*subscriber]bool{}
			for _, w := range ws {
				if seen[w] {
					t.Fatalf("%v %s: a subscriber is listed twice", ty, name)
				}
				seen[w] = true
				entries++
				if w.dead {
					dead++
				} else {
					live[w]++
				}
			}
		}
	}
	if entries != c.entries || dead != c.dead {
		t.Fatalf("index holds %d entries, %d dead; the cache counts %d, %d", entries, dead, c.entries, c.dead)
	}
	for w, n := range live {
		if w.entries != n {
			t.Fatalf("a subscriber has %d entries and counts %d", n, w.entries)
		}
		if _, ok := c.watchers[w]; !ok {
			t.Fatal("a live subscriber in the index is not registered")
		}
	}
	for w := range c.watchers {
		if w.dead {
			t.Fatal("a dead subscriber is still registered")
		}
	}
	return dead
}

// sweepAll sweeps every list now, whatever the count of dead entries.
func sweepAll(c *Cache) {
	c.mu.Lock()
	for c.sweeping {
		// Wait for a sweep under way to hand back the lock and finish.
		c.mu.Unlock()
		c.mu.Lock()
	}
	c.sweeping = true
	todo := c.listsLocked()
	c.mu.Unlock()
	c.sweep(todo)
}

// notify marks names of type t as changed, as Apply does.
func notify(c *Cache, t typeIndex, names ...string) {
	var changed [numTypes]map[string]int64
	changed[t] = map[string]int64{}
	for _, n := range names {
		changed[t][n] = 1
	}
	c.mu.Lock()
	c.notifyLocked(changed, false)
	c.mu.Unlock()
}

// takePending returns the names of type t pending for w, and whether w was
// woken, and clears both.
func takePending(w *subscriber, t typeIndex) (names []string, woken bool) {
	select {
	case <-w.signal:
		woken = true
	default:
	}
	p, _ := w.take()
	return slices.Sorted(maps.Keys(p[t])), woken
}

// The index against a plain model, over random connects, subscriptions,
// unsubscriptions, resubscriptions, disconnects and changes: every live
// subscriber is told of exactly the changed names it watches (all of them
// when it watches the wildcard), a disconnected one is never told nor
// woken, the counts stay true, the dead entries never outnumber half the
// live ones of the last disconnect, and nothing is left once all are gone.
func TestIndexMatchesModel(t *testing.T) {
	var pool []string
	for i := range 30 {
		pool = append(pool, fmt.Sprintf("n%d", i))
	}
	const ty = endpointType
	type model struct {
		w        *subscriber
		names    map[string]bool
		wildcard bool
	}
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		c := newTestCache()
		var live []*model
		var dead []*subscriber
		liveEntries := func() int {
			n := 0
			for _, m := range live {
				n += len(m.names)
			}
			return n
		}
		bound := 0
		for step := range 300 {
			switch op := r.IntN(10); {
			case op < 2 || len(live) == 0:
				m := &model{w: newSubscriber(), names: map[string]bool{}}
				c.register(m.w)
				live = append(live, m)
			case op < 5:
				// Subscribe to some names and drop others, as a stream
				// does: added names are not watched yet, removed ones are.
				m := live[r.IntN(len(live))]
				var added, removed []string
				for _, n := range pool {
					switch {
					case r.IntN(4) != 0:
					case m.names[n]:
						removed = append(removed, n)
						delete(m.names, n)
					default:
						added = append(added, n)
						m.names[n] = true
					}
				}
				m.wildcard = r.IntN(8) == 0
				c.watch(m.w, ty, m.wildcard, added, removed)
			case op < 7:
				i := r.IntN(len(live))
				c.unregister(live[i].w)
				dead = append(dead, live[i].w)
				live = slices.Delete(live, i, i+1)
				bound = liveEntries()
			default:
				changed := map[string]bool{}
				for range r.IntN(5) + 1 {
					changed[pool[r.IntN(len(pool))]] = true
				}
				notify(c, ty, slices.Collect(maps.Keys(changed))...)
				for n := range changed {
					if slices.ContainsFunc(c.byName[ty][n], func(w *subscriber) bool { return w.dead }) {
						t.Fatalf("round %d step %d: %s still lists a dead subscriber after a change", round, step, n)
					}
				}
				for _, m := range live {
					var want []string
					for n := range changed {
						if m.names[n] || m.wildcard {
							want = append(want, n)
						}
					}
					slices.Sort(want)
					got, woken := takePending(m.w, ty)
					if !slices.Equal(got, want) || woken != (len(want) > 0) {
						t.Fatalf("round %d step %d: told of %v (woken %v), want %v", round, step, got, woken, want)
					}
				}
			}
			for _, w := range dead {
				if got, woken := takePending(w, ty); len(got) > 0 || woken {
					t.Fatalf("round %d step %d: a disconnected subscriber was told of %v (woken %v)", round, step, got, woken)
				}
			}
			if n := checkIndex(t, c); 2*n > bound {
				t.Fatalf("round %d step %d: %d dead entries; %d live ones at the last disconnect", round, step, n, bound)
			}
		}
		for _, m := range live {
			c.unregister(m.w)
		}
		checkIndex(t, c)
		for ty := range numTypes {
			if len(c.byName[ty]) != 0 {
				t.Fatalf("round %d: %d lists left in the index after every subscriber left", round, len(c.byName[ty]))
			}
		}
	}
}

// Through real streams: a stream that drops a name and asks for it again
// is told of its changes once, and a stream that ended is told of nothing,
// whether its entries are swept yet or not.
func TestEndedStreamIsNotNotified(t *testing.T) {
	c := newTestCache()
	world := map[string]*model.Resources{}
	for _, n := range []string{"a", "b"} {
		world["ns/"+n] = svc(n, 1)
	}
	apply(t, c, true, world)
	srv := NewServer(c, ServerOptions{})
	types := []typeIndex{listenerType, clusterType, endpointType}
	request := func(st *stream, names ...string) {
		t.Helper()
		for _, ty := range types {
			req := &discoveryv3.DiscoveryRequest{TypeUrl: typeURLs[ty], ResourceNames: names, ResponseNonce: st.types[ty].nonce}
			if err := st.handleSotW(req); err != nil {
				t.Fatal(err)
			}
		}
	}
	connect := func(id int64, names ...string) *stream {
		st := newStream(id, srv)
		st.send = func(*discoveryv3.DiscoveryResponse) error { return nil }
		c.register(st.w)
		request(st, names...)
		return st
	}
	one := connect(1, "a", "b")
	two := connect(2, "a", "b")
	three := connect(3, "a", "b")
	four := connect(4, "a", "b")
	request(two, "b")
	request(two, "a", "b")
	c.unregister(one.w)
	if checkIndex(t, c) == 0 {
		t.Fatal("the ended stream's entries were swept at once; the test wants them there")
	}
	for _, st := range []*stream{one, two, three, four} {
		takePending(st.w, listenerType)
	}

	// A new weight changes a's assignment and nothing else.
	apply(t, c, false, map[string]*model.Resources{"ns/a": svc("a", 2)})
	for _, ty := range types {
		if got, woken := takePending(one.w, ty); len(got) > 0 || woken {
			t.Fatalf("%v: the ended stream was told of %v (woken %v)", ty, got, woken)
		}
	}
	if slices.Contains(c.byName[endpointType]["a"], one.w) {
		t.Fatal("eds a: the ended stream is still listed after a change to a")
	}
	for _, st := range []*stream{two, three, four} {
		p, _ := st.w.take()
		for _, ty := range types {
			var want []string
			if ty == endpointType {
				want = []string{"a"}
			}
			if got := slices.Sorted(maps.Keys(p[ty])); !slices.Equal(got, want) {
				t.Fatalf("stream %d %v: told of %v, want %v", st.id, ty, got, want)
			}
			if n := countOf(c.byName[ty]["a"], st.w); n != 1 {
				t.Fatalf("stream %d %v a: listed %d times", st.id, ty, n)
			}
		}
	}

	sweepAll(c)
	if n := checkIndex(t, c); n != 0 {
		t.Fatalf("%d dead entries after a sweep", n)
	}
	for _, st := range []*stream{two, three, four} {
		c.unregister(st.w)
	}
	checkIndex(t, c)
	for ty := range numTypes {
		if len(c.byName[ty]) != 0 {
			t.Fatalf("%v: %d lists left after every stream ended", ty, len(c.byName[ty]))
		}
	}
}

func countOf(ws []*subscriber, w *subscriber) int {
	n := 0
	for _, x := range ws {
		if x == w {
			n++
		}
	}
	return n
}

// Streams that connect, watch, are told of changes and end from several
// goroutines at once, with more entries than one sweep takes per hold of
// the lock: the counts stay true, nothing is told to a subscriber after
// it ended, and nothing is left once all have ended.
func TestSweepUnderConcurrentUse(t *testing.T) {
	const workers, perWorker, rounds = 4, 25, 30
	names := make([]string, 400)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	if workers*perWorker*len(names)*2 <= sweepChunk {
		t.Fatalf("%d entries fit in one sweep chunk of %d", workers*perWorker*len(names)*2, sweepChunk)
	}
	c := newTestCache()
	connect := func() *subscriber {
		w := newSubscriber()
		c.register(w)
		c.watch(w, clusterType, false, names, nil)
		c.watch(w, endpointType, false, names, nil)
		return w
	}
	ended := make([][]*subscriber, workers)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 5))
			ws := make([]*subscriber, perWorker)
			for i := range ws {
				ws[i] = connect()
			}
			for range rounds {
				i := r.IntN(len(ws))
				c.unregister(ws[i])
				takePending(ws[i], endpointType)
				ended[g] = append(ended[g], ws[i])
				notify(c, endpointType, names[r.IntN(len(names))])
				ws[i] = connect()
			}
			for _, w := range ws {
				c.unregister(w)
				takePending(w, endpointType)
				ended[g] = append(ended[g], w)
			}
		}()
	}
	wg.Wait()
	notify(c, endpointType, names...)
	for _, ws := range ended {
		for _, w := range ws {
			if got, woken := takePending(w, endpointType); len(got) > 0 || woken {
				t.Fatalf("an ended subscriber was told of %d names (woken %v)", len(got), woken)
			}
		}
	}
	checkIndex(t, c)
	for ty := range numTypes {
		if len(c.byName[ty]) != 0 {
			t.Fatalf("%v: %d lists left after every subscriber ended", ty, len(c.byName[ty]))
		}
	}
}

// A watch of more names than one hold of the lock takes (see watchChunk),
// with changes landing while it runs: every name is listed once, the counts
// are true, and a change to any of the names, the last chunk's included,
// reaches the stream.
func TestWatchInChunks(t *testing.T) {
	names := make([]string, 3*watchChunk+5)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	c := newTestCache()
	w := newSubscriber()
	c.register(w)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			notify(c, endpointType, names[i%len(names)])
		}
	}()
	c.watch(w, endpointType, false, names, nil)
	<-done
	checkIndex(t, c)
	if c.entries != len(names) {
		t.Fatalf("index holds %d entries, want %d", c.entries, len(names))
	}
	for _, n := range names {
		if got := c.byName[endpointType][n]; len(got) != 1 || got[0] != w {
			t.Fatalf("%s is listed for %d watchers, want the one", n, len(got))
		}
	}
	takePending(w, endpointType)
	notify(c, endpointType, names[0], names[len(names)-1])
	if got, _ := takePending(w, endpointType); !slices.Equal(got, []string{names[0], names[len(names)-1]}) {
		t.Fatalf("told of %v, want the first and last names", got)
	}
}
