package xds

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-xds/switchboard/model"
)

// Update is one batch of translated Services for the Cache.
type Update struct {
	// Full is true when Services is the whole world: groups that are missing
	// from it are deleted, and the first full update makes the cache ready.
	Full bool
	// Services maps a group key (a Service's "namespace/name", or a part
	// of the sidecar stage) to its resources; a nil value deletes the
	// group's resources.
	Services map[string]*model.Resources
	// Changed holds, per Service key, when the change that this Update
	// carries happened (model.Batch.Changed); the versions it makes keep
	// it, for switchboard_convergence_seconds. Services without a time
	// (a full world) are not measured.
	Changed map[string]time.Time
	// Coalesce is how long the watcher held the first change of this
	// Update before it published it, and Translate how long translating it
	// took; the cache records both, with the time it takes to store the
	// Update, in switchboard_convergence_stage_seconds (zero: not
	// recorded).
	Coalesce, Translate time.Duration
}

// CacheOptions configure a Cache.
type CacheOptions struct {
	// AliasListener builds the listener served for an alias of a Service
	// port (model.Resources.Aliases), named alias, that routes to the
	// canonical listener's route; UnknownListener the listener served for
	// a listener name that names no Service, so that the client fails
	// fast. The cache builds them only when a client asks for such a name.
	// Both are required.
	AliasListener   func(alias, canonical string) (model.Encoded, error)
	UnknownListener func(name string) (model.Encoded, error)
	// Metrics records the stages of an Update (see Update.Coalesce); nil
	// records nothing.
	Metrics *Metrics
}

// Cache holds the marshalled resources that the ADS server serves, indexed by
// type and name, and tells the streams that watch a name when it changes.
//
// Why not go-control-plane's caches: its SnapshotCache in ADS mode answers a
// SotW request only when it names every resource of the type (a gRPC client
// asking for one listener never gets an answer), it marshals per client and
// resends every watched assignment on each change; its LinearCache re-walks
// every watched name on each ACK. Neither lets the server remember, per
// client, which version a client rejected. Cache keeps one marshalled copy of
// each version, an index from name to the streams that subscribe to it, and
// leaves per-client protocol state to the stream (stream.go).
//
// Cache is safe for concurrent use. Its zero value is not usable; use
// NewCache.
type Cache struct {
	opts CacheOptions
	mu   sync.RWMutex
	// readyC is closed by the first full Update; it is the one record of
	// readiness, read without the lock on every request.
	readyC    chan struct{}
	resources [numTypes]map[string]*Resource
	groups    map[string]*group
	// aliases maps every alias listener name to its canonical listener name;
	// aliasListeners memoizes the alias listeners that somebody subscribed
	// to, by canonical name and then by the name asked for, so names nobody
	// asks for cost a map entry and nothing else.
	aliases        map[string]string
	aliasListeners map[string]map[string]*Resource
	// variants holds, per type, by name and then view (see
	// model.Client.Views), the resources that some clients get instead of the plain
	// one: assignments per zone, per client class and per both, clusters
	// per client class. Clients with one view share one marshalled
	// variant: the cost is per view, not per client.
	variants [numTypes]map[string]map[model.View]*Resource
	// limited maps, per type, every resource and alias name of a Service
	// with a visibility to it (see visibility.go); anyLimited is whether
	// it holds any, read without the lock.
	limited    [numTypes]map[string]*visibility
	anyLimited atomic.Bool
	// envoyListeners holds the names of the sidecar stage's listeners,
	// what an Envoy's wildcard LDS lists (see scope.go).
	envoyListeners map[string]struct{}

	// seq numbers the changes (Apply): Resource.seq, slots.go, state.go.
	seq uint64
	// slots numbers the names of each type (slots.go).
	slots [numTypes]*slotTable
	// lost holds, per type, by name and view, the change that removed a
	// variant of a resource that still has others or a plain one (see
	// lookupView); kept until every Resource of the name is newer.
	lost [numTypes]map[string]map[model.View]uint64

	watchers map[*subscriber]struct{}
	// wildcard holds, per type, the streams told of every change of the
	// type (typeState.watchAll).
	wildcard [numTypes]map[*subscriber]struct{}
	// byName lists, per type and name, the streams that watch it: a slice,
	// not a set, because it is the one index that grows with clients ×
	// names. A stream adds a name once; an unsubscribe scans one name's
	// list; a stream that ends leaves dead entries, dropped lazily (see
	// unregister). entries counts the entries of every list, dead those of
	// ended streams; sweeping is set while an unregister sweeps.
	byName   [numTypes]map[string][]*subscriber
	entries  int
	dead     int
	sweeping bool
}

// group is what one Service owns in the cache: the names of its resources,
// aliases and variants, so that a change or removal of the Service removes
// exactly what it no longer has. The resources themselves, the alias
// targets and the variants live in the cache's indexes only; a group is kept
// per Service, so it is one slice of names and no maps.
type group struct {
	// names holds the resource names type by type, in typeIndex order
	// (those of type t end at ends[t]), then the alias names.
	names []string
	ends  [numTypes]int32
	// variants lists, per type, the names that have variants; nil for a
	// Service without any (most).
	variants *[numTypes][]string
	// vis is who may see the Service; nil for everyone (most).
	vis *visibility
	// envoyOnly is model.Resources.EnvoyOnly (see scope.go).
	envoyOnly bool
}

// newGroup returns the group of the resources, aliases and variants in b.
func newGroup(b *built) *group {
	n := len(b.aliases)
	for t := range numTypes {
		n += len(b.res[t])
	}
	g := &group{names: make([]string, 0, n), vis: b.vis, envoyOnly: b.envoyOnly}
	for t := range numTypes {
		for _, r := range b.res[t] {
			g.names = append(g.names, r.Name)
		}
		g.ends[t] = int32(len(g.names))
	}
	for alias := range b.aliases {
		g.names = append(g.names, alias)
	}
	for t := range numTypes {
		if len(b.variants[t]) == 0 {
			continue
		}
		if g.variants == nil {
			g.variants = new([numTypes][]string)
		}
		g.variants[t] = make([]string, 0, len(b.variants[t]))
		for name := range b.variants[t] {
			g.variants[t] = append(g.variants[t], name)
		}
	}
	return g
}

// resourceNames returns the names of the group's resources of type t.
func (g *group) resourceNames(t typeIndex) []string {
	var start int32
	if t > 0 {
		start = g.ends[t-1]
	}
	return g.names[start:g.ends[t]]
}

// aliasNames returns the group's alias names.
func (g *group) aliasNames() []string { return g.names[g.ends[numTypes-1]:] }

// variantNames returns the names of the group's resources of type t that
// have variants.
func (g *group) variantNames(t typeIndex) []string {
	if g.variants == nil {
		return nil
	}
	return g.variants[t]
}

// NewCache returns an empty Cache that is not ready until the first full
// Update. It panics when opts lacks a required builder (a wiring bug).
func NewCache(opts CacheOptions) *Cache {
	if opts.AliasListener == nil || opts.UnknownListener == nil {
		panic("xds.NewCache: CacheOptions.AliasListener and UnknownListener are required")
	}
	c := &Cache{
		opts:           opts,
		readyC:         make(chan struct{}),
		groups:         map[string]*group{},
		aliases:        map[string]string{},
		aliasListeners: map[string]map[string]*Resource{},
		watchers:       map[*subscriber]struct{}{},
		envoyListeners: map[string]struct{}{},
	}
	for t := range numTypes {
		c.resources[t] = map[string]*Resource{}
		c.byName[t] = map[string][]*subscriber{}
		c.variants[t] = map[string]map[model.View]*Resource{}
		c.wildcard[t] = map[*subscriber]struct{}{}
		c.slots[t] = newSlotTable()
	}
	return c
}

// Ready reports whether the cache has received a full Update, that is,
// whether it holds a complete world that may be served.
func (c *Cache) Ready() bool {
	select {
	case <-c.readyC:
		return true
	default:
		return false
	}
}

// ReadyC returns a channel that is closed when the cache becomes ready.
func (c *Cache) ReadyC() <-chan struct{} { return c.readyC }

// built is a group made ready outside the lock.
type built struct {
	// trigger is Resource.trigger of every resource built.
	trigger   int64
	res       [numTypes][]*Resource
	aliases   map[string]string
	variants  [numTypes]map[string]map[model.View]*Resource
	vis       *visibility
	envoyOnly bool
}

// build wraps the translated resources of the group of key for the cache. The
// translator hands them over encoded and versioned, so nothing is
// marshalled or hashed here; the error is for two variants of one resource
// for one view, which the translator never makes.
func build(key string, r *model.Resources, trigger int64) (*built, error) {
	b := &built{aliases: r.Aliases, vis: newVisibility(key, r.Visibility), trigger: trigger, envoyOnly: r.EnvoyOnly}
	wrap := func(t typeIndex, e model.Encoded) *Resource {
		res := encodedResource(typeURLs[t], e)
		res.trigger = trigger
		res.envoyOnly = r.EnvoyOnly
		return res
	}
	for t := range numTypes {
		list := r.Of(model.ResourceType(t))
		if len(list) > 0 {
			b.res[t] = make([]*Resource, 0, len(list))
		}
		for _, e := range list {
			b.res[t] = append(b.res[t], wrap(t, e))
		}
	}
	var errs []error
	for _, v := range r.Variants {
		t, e := typeIndex(v.Type), v.Resource
		if t < 0 || t >= numTypes {
			errs = append(errs, fmt.Errorf("variant %q of unknown type %d", e.Name, v.Type))
			continue
		}
		if b.variants[t] == nil {
			b.variants[t] = map[string]map[model.View]*Resource{}
		}
		if b.variants[t][e.Name] == nil {
			b.variants[t][e.Name] = map[model.View]*Resource{}
		}
		if _, dup := b.variants[t][e.Name][v.View]; dup {
			errs = append(errs, fmt.Errorf("%s %q: two variants for view %+v", t, e.Name, v.View))
			continue
		}
		b.variants[t][e.Name][v.View] = wrap(t, e)
	}
	return b, errors.Join(errs...)
}

// Apply stores an Update and notifies the streams that watch a changed name.
// Resources are wrapped before the cache lock is taken. A
// Service whose resources cannot be stored (see build) keeps its previous
// resources, and its error is returned (joined with the others) while the
// rest of the Update is applied. Apply returns the number of resources whose
// version changed.
func (c *Cache) Apply(u Update) (int, error) {
	start := time.Now()
	defer func() {
		if u.Coalesce > 0 {
			c.opts.Metrics.ObserveStage(StageCoalesce, u.Coalesce)
		}
		if u.Translate > 0 {
			c.opts.Metrics.ObserveStage(StageTranslate, u.Translate+time.Since(start))
		}
	}()
	var errs []error
	next := make(map[string]*built, len(u.Services))
	for key, r := range u.Services {
		if r == nil {
			next[key] = nil
			continue
		}
		b, err := build(key, r, unixNano(u.Changed[key]))
		if err != nil {
			errs = append(errs, fmt.Errorf("group %s: %w", key, err))
			continue
		}
		next[key] = b
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	// changed maps each changed name to when its change happened, for the
	// oldest-unacked gauge: the group's trigger, or now when unknown.
	var changed [numTypes]map[string]int64
	now := time.Now().UnixNano()
	at := now
	mark := func(t typeIndex, name string) {
		if changed[t] == nil {
			changed[t] = map[string]int64{}
		}
		if old, ok := changed[t][name]; !ok || at < old {
			changed[t][name] = at
		}
	}
	if u.Full {
		for key := range c.groups {
			if _, ok := u.Services[key]; !ok {
				c.replaceGroup(key, nil, mark)
			}
		}
	}
	for key, b := range next {
		at = now
		if b != nil {
			at = older(now, b.trigger)
		}
		c.replaceGroup(key, b, mark)
	}
	n := 0
	for t := range numTypes {
		n += len(changed[t])
	}
	c.renumberLocked(changed)
	becameReady := u.Full && !c.Ready()
	if becameReady {
		close(c.readyC)
	}
	c.notifyLocked(changed, becameReady)
	return n, errors.Join(errs...)
}

// replaceGroup swaps the resources of one Service; b == nil deletes them.
// Must be called with c.mu held.
func (c *Cache) replaceGroup(key string, b *built, mark func(typeIndex, string)) {
	old := c.groups[key]
	if b == nil && old == nil {
		return
	}
	if b != nil {
		for t := range numTypes {
			for _, r := range b.res[t] {
				if cur, ok := c.resources[t][r.Name]; !ok || cur.v != r.v {
					r.seq = c.seq
					c.resources[t][r.Name] = r
					mark(t, r.Name)
				}
			}
		}
	}
	if old != nil {
		for t := range numTypes {
			kept := b.holds(t)
			for _, name := range old.resourceNames(t) {
				if kept(name) {
					continue
				}
				delete(c.resources[t], name)
				if t == listenerType {
					// No alias routes to a listener that is gone.
					delete(c.aliasListeners, name)
				}
				mark(t, name)
			}
		}
		for _, alias := range old.aliasNames() {
			if b != nil && b.aliases[alias] != "" {
				continue
			}
			c.forgetAliasLocked(alias)
			delete(c.aliases, alias)
			mark(listenerType, alias)
		}
	}
	c.replaceVariants(old, b, mark)
	c.replaceVisibility(old, b, mark)
	c.replaceScope(old, b)
	if b == nil {
		delete(c.groups, key)
		return
	}
	for alias, canonical := range b.aliases {
		if c.aliases[alias] == canonical {
			continue
		}
		c.forgetAliasLocked(alias)
		c.aliases[alias] = canonical
		mark(listenerType, alias)
	}
	c.groups[key] = newGroup(b)
}

// holds returns whether b (which may be nil) has a resource of type t of
// a name, as a test to ask once per name.
func (b *built) holds(t typeIndex) func(name string) bool {
	switch {
	case b == nil:
		return func(string) bool { return false }
	case len(b.res[t]) <= 8:
		return func(name string) bool {
			return slices.ContainsFunc(b.res[t], func(r *Resource) bool { return r.Name == name })
		}
	}
	// A Service with many ports: a set, not a scan per name (10,000
	// ports took 0.6 s per endpoint edit).
	set := make(map[string]struct{}, len(b.res[t]))
	for _, r := range b.res[t] {
		set[r.Name] = struct{}{}
	}
	return func(name string) bool { _, ok := set[name]; return ok }
}

// notifyLocked tells every live watcher of a changed name, and drops the
// entries of ended streams from the lists it walks. Must be called with
// c.mu held; a watcher's own lock is never held while taking c.mu.
func (c *Cache) notifyLocked(changed [numTypes]map[string]int64, becameReady bool) {
	if becameReady {
		for w := range c.watchers {
			w.markReady()
		}
		return
	}
	for t := range numTypes {
		if len(changed[t]) == 0 {
			continue
		}
		for w := range c.wildcard[t] {
			w.mark(t, changed[t], c.seq)
		}
		for name, at := range changed[t] {
			dead := false
			for _, w := range c.byName[t][name] {
				if w.dead {
					dead = true
					continue
				}
				w.markOne(t, name, at, c.seq)
			}
			if dead {
				c.compactLocked(t, name)
			}
		}
	}
}

// replaceVariants swaps the variants of one Service's resources, from the
// old group's to b's (either may be nil), and marks a resource changed when
// any of its variants changed, appeared or went. Must be called with c.mu
// held.
func (c *Cache) replaceVariants(old *group, b *built, mark func(typeIndex, string)) {
	for t := range numTypes {
		var after map[string]map[model.View]*Resource
		if b != nil {
			after = b.variants[t]
		}
		for name, vs := range after {
			cur := c.variants[t][name]
			if sameVersions(cur, vs) {
				continue
			}
			// A variant that did not change keeps its Resource (and seq):
			// its clients are not sent it again.
			for view, r := range vs {
				if o := cur[view]; o != nil && o.v == r.v {
					vs[view] = o
				} else {
					r.seq = c.seq
				}
			}
			c.variants[t][name] = vs
			for view := range cur {
				if vs[view] == nil {
					c.lostLocked(t, name, view)
				}
			}
			mark(t, name)
		}
		if old == nil {
			continue
		}
		for _, name := range old.variantNames(t) {
			if _, ok := after[name]; !ok {
				for view := range c.variants[t][name] {
					c.lostLocked(t, name, view)
				}
				delete(c.variants[t], name)
				mark(t, name)
			}
		}
	}
}

// lostLocked records that the variant of view of the resource name went
// with the current change: its clients now get another Resource, whose
// seq may be older than what they were sent (see lookupView). Must be
// called with c.mu held.
func (c *Cache) lostLocked(t typeIndex, name string, view model.View) {
	if c.lost[t] == nil {
		c.lost[t] = map[string]map[model.View]uint64{}
	}
	if c.lost[t][name] == nil {
		c.lost[t][name] = map[model.View]uint64{}
	}
	c.lost[t][name][view] = c.seq
}

// pruneLostLocked forgets the lost variants of name once every Resource
// of the name is newer than their loss (or the name is gone). Must be
// called with c.mu held.
func (c *Cache) pruneLostLocked(t typeIndex, name string) {
	lost := c.lost[t][name]
	if lost == nil {
		return
	}
	oldest := uint64(0)
	if r := c.resources[t][name]; r != nil {
		oldest = r.seq
	}
	for _, r := range c.variants[t][name] {
		if oldest == 0 || r.seq < oldest {
			oldest = r.seq
		}
	}
	for _, seq := range lost {
		if oldest != 0 && seq >= oldest {
			return
		}
	}
	delete(c.lost[t], name)
}

// forgetAliasLocked drops the alias listeners built for alias, which is
// about to point elsewhere or go: one built again is a new Resource, of a
// later change (state.go). Must be called with c.mu held.
func (c *Cache) forgetAliasLocked(alias string) {
	if canonical, ok := c.aliases[alias]; ok {
		delete(c.aliasListeners[canonical], alias)
	}
}

// renumberLocked frees the tombstones no stream can hold bits for, then
// gives the changed names that the cache now holds a slot, and makes
// those it no longer holds tombstones (slots.go). Must be called with
// c.mu held, before the change is notified.
func (c *Cache) renumberLocked(changed [numTypes]map[string]int64) {
	safe, held := uint64(0), int64(0)
	for t := range numTypes {
		held += c.slots[t].ndead.Load()
	}
	for t := range numTypes {
		if oldest := c.slots[t].oldestTomb(); oldest != 0 {
			if safe == 0 {
				safe = c.safeSeqLocked(held > maxHeldTombs)
			}
			c.slots[t].reclaim(safe)
		}
		for name := range changed[t] {
			c.slots[t].set(name, c.holdsLocked(t, name), c.seq)
			c.pruneLostLocked(t, name)
		}
	}
}

// holdsLocked reports whether the cache holds a resource, a variant or
// (for listeners) an alias named name. Must be called with c.mu held.
func (c *Cache) holdsLocked(t typeIndex, name string) bool {
	if c.resources[t][name] != nil || c.variants[t][name] != nil {
		return true
	}
	return t == listenerType && c.aliases[name] != ""
}

// safeSeqLocked returns the latest change whose tombstones no stream can
// hold bits for: every live subscriber has taken every change up to it
// (the changes of this Apply are not yet told). With force, a subscriber
// whose stream is blocked sending is evicted for (subscriber.evictFor)
// rather than waited for. Must be called with c.mu held.
func (c *Cache) safeSeqLocked(force bool) uint64 {
	safe := c.seq - 1
	for w := range c.watchers {
		if s := w.oldestUntaken(); s != 0 && s-1 < safe && !(force && w.evictFor()) {
			safe = s - 1
		}
	}
	return safe
}

// maxHeldTombs is how many tombstones may wait for streams to take their
// changes before the cache evicts for the streams that are blocked
// sending: a client that does not read would otherwise keep every slot of
// every name deleted while it is connected.
const maxHeldTombs = 4096

func sameVersions(a, b map[model.View]*Resource) bool {
	if len(a) != len(b) {
		return false
	}
	for zone, r := range a {
		if o, ok := b[zone]; !ok || o.v != r.v {
			return false
		}
	}
	return true
}

// unixNano is t as Resource.trigger keeps it: 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
