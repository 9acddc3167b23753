package xds

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-xds/switchboard/internal/parallel"
	"github.com/switchboard-xds/switchboard/translator"
)

// Update is one batch of translated Services for the Cache.
type Update struct {
	// Full is true when Services is the whole world: groups that are missing
	// from it are deleted, and the first full update makes the cache ready.
	Full bool
	// Services maps a Service key ("namespace/name") to its resources; a nil
	// value deletes the Service's resources.
	Services map[string]*translator.Resources
	// Changed holds, per Service key, when the change that this Update
	// carries happened (model.Batch.Changed); the versions it makes keep
	// it, for switchboard_convergence_seconds. Services without a time
	// (a full world) are not measured.
	Changed map[string]time.Time
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
	mu sync.RWMutex
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
	// variants holds, per type, by name and then view key (see
	// viewKeys), the resources that some clients get instead of the plain
	// one: assignments per zone, per client class and per both, clusters
	// per client class. Clients with one view share one marshalled
	// variant: the cost is per view, not per client.
	variants [numTypes]map[string]map[string]*Resource
	// limited maps, per type, every resource and alias name of a Service
	// with a visibility to it (see visibility.go); anyLimited is whether
	// it holds any, read without the lock.
	limited    [numTypes]map[string]*visibility
	anyLimited atomic.Bool
	// envoyListeners holds the names of the sidecar stage's listeners,
	// what an Envoy's wildcard LDS lists (see scope.go).
	envoyListeners map[string]struct{}

	watchers map[*subscriber]struct{}
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
	// envoyOnly is translator.Resources.EnvoyOnly (see scope.go).
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
// Update.
func NewCache() *Cache {
	c := &Cache{
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
		c.variants[t] = map[string]map[string]*Resource{}
		c.wildcard[t] = map[*subscriber]struct{}{}
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
	variants  [numTypes]map[string]map[string]*Resource
	vis       *visibility
	envoyOnly bool
}

// build wraps the translated resources of the group of key for the cache. The
// translator hands them over encoded, so nothing is marshalled here; the
// error is for two variants of one resource for one view, which the
// translator never makes.
func build(key string, r *translator.Resources, trigger int64) (*built, error) {
	b := &built{aliases: r.Aliases, vis: newVisibility(key, r.Visibility), trigger: trigger, envoyOnly: r.EnvoyOnly}
	wireResource := func(name, typeURL string, wire []byte) *Resource {
		res := wireResource(name, typeURL, wire)
		res.trigger = trigger
		res.envoyOnly = r.EnvoyOnly
		return res
	}
	for t, list := range [numTypes][]translator.Encoded{
		listenerType: r.Listeners,
		routeType:    r.Routes,
		clusterType:  r.Clusters,
		endpointType: r.Assignments,
	} {
		for _, e := range list {
			b.res[t] = append(b.res[t], wireResource(e.Name, typeURLs[t], e.Wire))
		}
	}
	var errs []error
	variant := func(t typeIndex, key string, e translator.Encoded) {
		if b.variants[t] == nil {
			b.variants[t] = map[string]map[string]*Resource{}
		}
		if b.variants[t][e.Name] == nil {
			b.variants[t][e.Name] = map[string]*Resource{}
		}
		if _, dup := b.variants[t][e.Name][key]; dup {
			errs = append(errs, fmt.Errorf("%s %q: two variants for view %s", typeLabels[t], e.Name, key))
			return
		}
		b.variants[t][e.Name][key] = wireResource(e.Name, typeURLs[t], e.Wire)
	}
	for _, za := range r.ZoneAssignments {
		variant(endpointType, zoneKey(za.Zone), za.Assignment)
	}
	for _, ca := range r.ClassAssignments {
		variant(endpointType, assignmentKey(ca.Class, ca.Zone), ca.Assignment)
	}
	for _, cv := range r.ClusterVariants {
		variant(clusterType, classKey(cv.Class), cv.Cluster)
	}
	for _, nv := range r.ListenerVariants {
		variant(listenerType, nsKey(nv.Namespace), nv.Resource)
	}
	for _, nv := range r.RouteVariants {
		variant(routeType, nsKey(nv.Namespace), nv.Resource)
	}
	return b, errors.Join(errs...)
}

// Apply stores an Update and notifies the streams that watch a changed name.
// Resources are hashed and wrapped before the cache lock is taken. A
// Service whose resources cannot be stored (see build) keeps its previous
// resources, and its error is returned (joined with the others) while the
// rest of the Update is applied. Apply returns the number of resources whose
// version changed.
func (c *Cache) Apply(u Update) (int, error) {
	var errs []error
	keys := make([]string, 0, len(u.Services))
	for key := range u.Services {
		keys = append(keys, key)
	}
	// Hashing a full world is spread over every core (see parallel.ForEach).
	builds := make([]*built, len(keys))
	buildErrs := make([]error, len(keys))
	parallel.ForEach(len(keys), func(i int) {
		if r := u.Services[keys[i]]; r != nil {
			builds[i], buildErrs[i] = build(keys[i], r, unixNano(u.Changed[keys[i]]))
		}
	})
	next := make(map[string]*built, len(u.Services))
	for i, key := range keys {
		if buildErrs[i] != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", key, buildErrs[i]))
			continue
		}
		next[key] = builds[i]
	}

	c.mu.Lock()
	defer c.mu.Unlock()
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
					c.resources[t][r.Name] = r
					mark(t, r.Name)
				}
			}
		}
	}
	if old != nil {
		for t := range numTypes {
			for _, name := range old.resourceNames(t) {
				if b.has(t, name) {
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
		c.aliases[alias] = canonical
		mark(listenerType, alias)
	}
	c.groups[key] = newGroup(b)
}

// has reports whether b (which may be nil) has a resource of type t named
// name.
func (b *built) has(t typeIndex, name string) bool {
	if b == nil {
		return false
	}
	for _, r := range b.res[t] {
		if r.Name == name {
			return true
		}
	}
	return false
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
			w.mark(t, changed[t])
		}
		for name, at := range changed[t] {
			dead := false
			for _, w := range c.byName[t][name] {
				if w.dead {
					dead = true
					continue
				}
				w.markOne(t, name, at)
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
		var after map[string]map[string]*Resource
		if b != nil {
			after = b.variants[t]
		}
		for name, vs := range after {
			if !sameVersions(c.variants[t][name], vs) {
				c.variants[t][name] = vs
				mark(t, name)
			}
		}
		if old == nil {
			continue
		}
		for _, name := range old.variantNames(t) {
			if _, ok := after[name]; !ok {
				delete(c.variants[t], name)
				mark(t, name)
			}
		}
	}
}

func sameVersions(a, b map[string]*Resource) bool {
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

// zoneKey and classKey are the view keys of variants: a client in zone Z
// sees assignment variants under zoneKey(Z), a client of class C cluster
// variants under classKey(C).
func zoneKey(zone string) string   { return "zone/" + zone }
func classKey(class string) string { return "class/" + class }

// unixNano is t as Resource.trigger keeps it: 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
