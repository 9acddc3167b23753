package xds

import (
	"slices"
	"sync"

	"github.com/switchboard-xds/switchboard/translator"
)

// subscriber collects the names that changed for one stream until the stream
// gets to them. Marking never blocks: a slow client delays only itself, and
// changes that pile up are coalesced into one set.
type subscriber struct {
	mu      sync.Mutex
	pending [numTypes]map[string]struct{}
	ready   bool
	signal  chan struct{}
}

func newSubscriber() *subscriber { return &subscriber{signal: make(chan struct{}, 1)} }

func (w *subscriber) wake() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *subscriber) markOne(t typeIndex, name string) {
	w.mu.Lock()
	if w.pending[t] == nil {
		w.pending[t] = map[string]struct{}{}
	}
	w.pending[t][name] = struct{}{}
	w.mu.Unlock()
	w.wake()
}

func (w *subscriber) mark(t typeIndex, names map[string]struct{}) {
	w.mu.Lock()
	if w.pending[t] == nil {
		w.pending[t] = make(map[string]struct{}, len(names))
	}
	for n := range names {
		w.pending[t][n] = struct{}{}
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
	return pending, ready
}

// register adds w to the cache; it is told when the cache becomes ready.
func (c *Cache) register(w *subscriber) {
	c.mu.Lock()
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
}

// unregister forgets w and the names it watched, per type (what its
// stream passed to watch and did not remove).
func (c *Cache) unregister(w *subscriber, watched [numTypes][]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.watchers, w)
	for t := range numTypes {
		delete(c.wildcard[t], w)
		for _, name := range watched[t] {
			c.unwatchLocked(t, name, w)
		}
	}
}

// watch updates w's interest in type t: names added and removed, and
// whether w watches every name of the type. A stream registers interest
// before it reads, so no change can fall between its read and its watch.
func (c *Cache) watch(w *subscriber, t typeIndex, wildcard bool, added, removed []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if wildcard {
		c.wildcard[t][w] = struct{}{}
	} else {
		delete(c.wildcard[t], w)
	}
	for _, name := range added {
		c.byName[t][name] = append(c.byName[t][name], w)
	}
	for _, name := range removed {
		c.unwatchLocked(t, name, w)
	}
}

func (c *Cache) unwatchLocked(t typeIndex, name string, w *subscriber) {
	ws := c.byName[t][name]
	i := slices.Index(ws, w)
	if i < 0 {
		return
	}
	last := len(ws) - 1
	ws[i], ws[last] = ws[last], nil
	ws = ws[:last]
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
	built, err := newResource(name, translator.AliasListener(name, canonical))
	if err != nil {
		// Built from two strings, it cannot fail to marshal unless the
		// proto library is broken; serve the name as missing rather than
		// take the stream down.
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
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

// all returns every resource of type t (for wildcard subscribers). Alias
// listeners are not part of a wildcard: nobody asked for them by name.
func (c *Cache) all(t typeIndex) []*Resource {
	c.mu.RLock()
	defer c.mu.RUnlock()
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

// intern returns the cache's copy of name when a resource of type t has
// that name, else name itself: per-stream state then shares one string per
// name instead of holding one per client.
func (c *Cache) intern(t typeIndex, name string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if r, ok := c.resources[t][name]; ok {
		return r.Name
	}
	return name
}
