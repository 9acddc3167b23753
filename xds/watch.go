package xds

import (
	"slices"
	"sync"

	"github.com/switchboard-xds/switchboard/model"
)

// subscriber collects the names that changed for one stream until the stream
// gets to them. Marking never blocks: a slow client delays only itself, and
// changes that pile up are coalesced into one set.
type subscriber struct {
	mu      sync.Mutex
	pending [numTypes]map[string]struct{}
	signal  chan struct{}
	// entries (the places w holds in the Cache's byName lists) and dead
	// (set when w's stream ended) are guarded by the Cache's mu, not by
	// mu.
	entries int
	ready   bool
	dead    bool
	// since is when the oldest pending change happened (UnixNano, 0 for
	// none), for the oldest-unacked gauge; seq is the Cache's number of
	// that change (0 for none), for slots.go. Both guarded by mu.
	since int64
	seq   uint64
	// evict moves the stream's state off the tombstones among pending
	// names (stream.evict; nil for a subscriber without a stream), and
	// running is held by the stream while it runs (nil outside serve);
	// both are set before register (see take and evictFor).
	running *sync.Mutex
	evict   func(pending *[numTypes]map[string]struct{})
}

func newSubscriber() *subscriber { return &subscriber{signal: make(chan struct{}, 1)} }

func (w *subscriber) wake() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// markOne marks name of type t changed by the change seq, at (UnixNano)
// its change.
func (w *subscriber) markOne(t typeIndex, name string, at int64, seq uint64) {
	w.mu.Lock()
	if w.seq == 0 {
		w.seq = seq
	}
	if w.pending[t] == nil {
		w.pending[t] = map[string]struct{}{}
	}
	w.pending[t][name] = struct{}{}
	w.since = older(w.since, at)
	w.mu.Unlock()
	w.wake()
}

// mark marks names of type t changed by the change seq, each at its
// change (UnixNano).
func (w *subscriber) mark(t typeIndex, names map[string]int64, seq uint64) {
	w.mu.Lock()
	if w.seq == 0 {
		w.seq = seq
	}
	if w.pending[t] == nil {
		w.pending[t] = make(map[string]struct{}, len(names))
	}
	for n, at := range names {
		w.pending[t][n] = struct{}{}
		w.since = older(w.since, at)
	}
	w.mu.Unlock()
	w.wake()
}

func (w *subscriber) markReady() {
	w.mu.Lock()
	w.ready = true
	w.mu.Unlock()
	w.wake()
}

// take returns and clears what is pending.
func (w *subscriber) take() (pending [numTypes]map[string]struct{}, ready bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pending, ready = w.pending, w.ready
	w.pending = [numTypes]map[string]struct{}{}
	w.ready = false
	w.since = 0
	w.seq = 0
	return pending, ready
}

// evictFor moves the state of w's stream off the tombstones among its
// untaken changes, on the stream's behalf, when the stream is not running
// (it is blocked sending to a client that does not read): those changes
// then no longer hold back the reuse of slots. It reports whether it did.
// Must be called with the cache's lock held; it never waits for the
// stream.
func (w *subscriber) evictFor() bool {
	if w.running == nil || w.evict == nil || !w.running.TryLock() {
		return false
	}
	defer w.running.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.evict(&w.pending)
	return true
}

// oldestUntaken returns the number of the oldest change marked for w and
// not yet taken, 0 for none.
func (w *subscriber) oldestUntaken() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq
}

// take returns what changed for w since it last took, and the change up
// to which that is all: no change up to it is left to take. w.evict runs
// on what is taken before the cache may give a tombstone's slot to
// another name (slots.go).
func (c *Cache) take(w *subscriber) (pending [numTypes]map[string]struct{}, ready bool, seq uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	pending, ready = w.take()
	if w.evict != nil {
		w.evict(&pending)
	}
	return pending, ready, c.seq
}

// pendingSince returns when the oldest change pending for w happened
// (UnixNano), 0 when none is.
func (w *subscriber) pendingSince() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.since
}

// register adds w to the cache; it is told when the cache becomes ready.
// It returns the change the cache is at: a stream that holds nothing yet
// is in step with it (state.go).
func (c *Cache) register(w *subscriber) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watchers[w] = struct{}{}
	return c.seq
}

// unregister forgets w, whose stream has ended, in time independent of
// how many names it watched: w is marked dead and leaves the watchers and
// wildcards, but its entries in byName stay for later. notify drops the
// dead entries of every list it walks; and once dead entries outnumber
// half the live ones, the unregister that tipped the balance sweeps every
// list, taking the lock for a bounded share of the work at a time (see
// sweep). A sweep walks at most about three entries per entry it drops, so
// each ended stream pays for its entries a small constant times; and the
// dead entries stay fewer than half the live ones at the last disconnect
// (plus those of streams that end while a sweep runs), so the index
// holds at most half as much again as its live entries. A dead subscriber
// is never marked nor woken, and never watches again.
func (c *Cache) unregister(w *subscriber) {
	c.mu.Lock()
	if w.dead {
		c.mu.Unlock()
		return
	}
	w.dead = true
	c.dead += w.entries
	w.entries = 0
	delete(c.watchers, w)
	for t := range numTypes {
		delete(c.wildcard[t], w)
	}
	todo := c.startSweepLocked()
	c.mu.Unlock()
	// Until its entries are swept, w is held by the index: let what it
	// had pending go now.
	w.take()
	c.sweep(todo)
}

// sweepKey names one list of byName.
type sweepKey struct {
	t    typeIndex
	name string
}

// sweepChunk is how many entries a sweep examines per hold of the lock:
// about a hundred microseconds' work, whatever the size of the index.
const sweepChunk = 1 << 16

// startSweepLocked returns the lists to sweep, and claims the sweep, when
// dead entries outnumber half the live ones and nobody is sweeping; else
// nil. Waiting until they match the live ones would sweep less often but
// makes lists grow past the room the live entries left: with 1000 streams
// of 2×1000 names under churn (BenchmarkDisconnect), 37 KB of index per
// stream instead of 25 KB (17 KB before dead entries were kept). Sweeping
// at a quarter costs twice as much for the same 25 KB. Must be called
// with c.mu held.
func (c *Cache) startSweepLocked() []sweepKey {
	if c.sweeping || 2*c.dead <= c.entries-c.dead {
		return nil
	}
	c.sweeping = true
	return c.listsLocked()
}

// listsLocked names every list of byName. Must be called with c.mu held.
func (c *Cache) listsLocked() []sweepKey {
	n := 0
	for t := range numTypes {
		n += len(c.byName[t])
	}
	out := make([]sweepKey, 0, n)
	for t := range numTypes {
		for name := range c.byName[t] {
			out = append(out, sweepKey{t, name})
		}
	}
	return out
}

// sweep drops the dead entries of the lists in todo, sweepChunk entries
// per hold of the lock, so that updates and other streams get the lock in
// between. Lists may change, appear or go between two holds: a list is
// compacted as it is when its turn comes, and dead entries that a visited
// list gains later are left for the next sweep. If the dead are still too
// many at the end, it starts over, unless this pass dropped none: then the
// next unregister looks again (a pass that finds nothing is not repeated
// in a loop).
func (c *Cache) sweep(todo []sweepKey) {
	dropped := 0
	for len(todo) > 0 {
		c.mu.Lock()
		for budget := sweepChunk; budget > 0 && len(todo) > 0; todo = todo[:len(todo)-1] {
			k := todo[len(todo)-1]
			budget -= 1 + len(c.byName[k.t][k.name])
			dropped += c.compactLocked(k.t, k.name)
		}
		if len(todo) == 0 {
			c.sweeping = false
			if dropped > 0 {
				todo, dropped = c.startSweepLocked(), 0
			}
		}
		c.mu.Unlock()
	}
}

// watch updates w's interest in type t: names added and removed, and
// whether w is told of every change of the type. A stream registers interest
// before it reads, so no change can fall between its read and its watch.
// Once w is unregistered, watch does nothing.
//
// Names are added watchChunk at a time, with the lock let go in between:
// the stream reads only after watch returns, so a change that lands
// between two chunks is still seen, either notified or read.
func (c *Cache) watch(w *subscriber, t typeIndex, all bool, added, removed []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.dead {
		return
	}
	// Told of every change before the names go, and of the names before
	// every change stops: no change falls between (names are added with
	// the lock let go in between).
	if all {
		c.wildcard[t][w] = struct{}{}
	} else {
		defer delete(c.wildcard[t], w)
	}
	for _, name := range removed {
		c.unwatchLocked(t, name, w)
	}
	for len(added) > 0 {
		n := min(len(added), watchChunk)
		for _, name := range added[:n] {
			c.byName[t][name] = append(c.byName[t][name], w)
		}
		w.entries += n
		c.entries += n
		if added = added[n:]; len(added) > 0 {
			c.mu.Unlock()
			c.mu.Lock()
		}
	}
}

// watchChunk is how many names watch adds per hold of the cache's lock.
// When clients watch the same names, every one of those lists reaches a
// capacity step at the same client, whose watch then grows them all: at
// 1000 clients of 2 × 1000 names, the 608th client's watch held the lock
// for about 30 ms in one piece, and every update waited for it. In chunks
// of 32 names the longest hold was 1.9–3.3 ms (timed inside watch, in a
// trial; BenchmarkConnect reports the longest wait for the lock, which
// adds the scheduler's share).
const watchChunk = 32

// unwatchLocked removes w, a live subscriber, from the list of name at
// once: the stream lives on and may watch the name again. Must be called
// with c.mu held.
func (c *Cache) unwatchLocked(t typeIndex, name string, w *subscriber) {
	ws := c.byName[t][name]
	i := slices.Index(ws, w)
	if i < 0 {
		return
	}
	w.entries--
	c.entries--
	last := len(ws) - 1
	ws[i], ws[last] = ws[last], nil
	c.setListLocked(t, name, ws[:last])
}

// compactLocked drops the entries of dead subscribers from the list of
// name and returns how many it dropped. It writes nothing when there are
// none. Must be called with c.mu held.
func (c *Cache) compactLocked(t typeIndex, name string) int {
	ws := c.byName[t][name]
	i := slices.IndexFunc(ws, func(w *subscriber) bool { return w.dead })
	if i < 0 {
		return 0
	}
	kept := ws[:i]
	for _, w := range ws[i+1:] {
		if !w.dead {
			kept = append(kept, w)
		}
	}
	n := len(ws) - len(kept)
	clear(ws[len(kept):])
	c.entries -= n
	c.dead -= n
	c.setListLocked(t, name, kept)
	return n
}

// setListLocked stores ws, shortened in place, as the list of name. Must be
// called with c.mu held.
func (c *Cache) setListLocked(t typeIndex, name string, ws []*subscriber) {
	switch {
	case len(ws) == 0:
		delete(c.byName[t], name)
	case cap(ws) > 64 && len(ws) < cap(ws)/4:
		// Give back the room of a crowd that left.
		c.byName[t][name] = slices.Clip(slices.Clone(ws))
	default:
		c.byName[t][name] = ws
	}
}

// getAlias returns the listener named name that stands for alias (its own
// name, or the full form of a short name): it routes to alias's canonical
// route. It is built on first use and memoized; its content depends only
// on the two names, so a memoized one never goes stale.
func (c *Cache) getAlias(name, alias string) *Resource {
	c.mu.RLock()
	canonical, ok := c.aliases[alias]
	r := c.aliasListeners[canonical][name]
	c.mu.RUnlock()
	if !ok || r != nil {
		return r
	}
	e, err := c.opts.AliasListener(name, canonical)
	if err != nil {
		// Built from two strings, it fails only for a name that is not
		// UTF-8; serve the name as missing rather than take the stream
		// down.
		return nil
	}
	built := encodedResource(typeURLs[listenerType], e)
	c.mu.Lock()
	defer c.mu.Unlock()
	built.seq = c.seq
	if c.aliases[alias] != canonical {
		// The alias moved while we built; the caller will be told.
		return nil
	}
	byName := c.aliasListeners[canonical]
	if byName == nil {
		byName = map[string]*Resource{}
		c.aliasListeners[canonical] = byName
	}
	if prev := byName[name]; prev != nil {
		return prev
	}
	byName[name] = built
	return built
}

// all returns every resource of type t that client may be served (for
// wildcard subscribers): for an Envoy client, only the Envoy-only
// listeners (scope.go). Alias listeners are not part of a wildcard: nobody
// asked for them by name.
func (c *Cache) all(t typeIndex, client model.Client) []*Resource {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if t == listenerType && client.Class == model.ClassEnvoy {
		out := make([]*Resource, 0, len(c.envoyListeners))
		for name := range c.envoyListeners {
			if r := c.resources[t][name]; r != nil {
				out = append(out, r)
			}
		}
		return out
	}
	out := make([]*Resource, 0, len(c.resources[t]))
	for _, r := range c.resources[t] {
		out = append(out, r)
	}
	return out
}

// internAll replaces, in place, every name in names that a resource of type
// t has with the cache's copy (see intern), under one read lock.
func (c *Cache) internAll(t typeIndex, names []string) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, n := range names {
		if r, ok := c.resources[t][n]; ok {
			names[i] = r.Name
		}
	}
	return names
}
