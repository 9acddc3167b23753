package xds

import (
	"errors"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

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

// group is what one Service owns in the cache.
type group struct {
	names    [numTypes][]string
	aliases  map[string]string
	variants [numTypes]map[string]map[string]*Resource
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

// built is a group marshalled outside the lock.
type built struct {
	res      [numTypes][]*Resource
	aliases  map[string]string
	variants [numTypes]map[string]map[string]*Resource
}

func build(r *translator.Resources) (*built, error) {
	b := &built{aliases: r.Aliases}
	var errs []error
	add := func(t typeIndex, name string, m proto.Message) {
		res, err := newResource(name, m)
		if err != nil {
			errs = append(errs, err)
			return
		}
		b.res[t] = append(b.res[t], res)
	}
	for _, m := range r.Listeners {
		add(listenerType, m.GetName(), m)
	}
	for _, m := range r.Routes {
		add(routeType, m.GetName(), m)
	}
	for _, m := range r.Clusters {
		add(clusterType, m.GetName(), m)
	}
	for _, m := range r.Assignments {
		add(endpointType, m.GetClusterName(), m)
	}
	variant := func(t typeIndex, key, name string, m proto.Message) {
		res, err := newResource(name, m)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if b.variants[t] == nil {
			b.variants[t] = map[string]map[string]*Resource{}
		}
		if b.variants[t][name] == nil {
			b.variants[t][name] = map[string]*Resource{}
		}
		b.variants[t][name][key] = res
	}
	for _, za := range r.ZoneAssignments {
		variant(endpointType, zoneKey(za.Zone), za.Assignment.GetClusterName(), za.Assignment)
	}
	for _, ca := range r.ClassAssignments {
		variant(endpointType, assignmentKey(ca.Class, ca.Zone), ca.Assignment.GetClusterName(), ca.Assignment)
	}
	for _, cv := range r.ClusterVariants {
		variant(clusterType, classKey(cv.Class), cv.Cluster.GetName(), cv.Cluster)
	}
	return b, errors.Join(errs...)
}

// Apply stores an Update and notifies the streams that watch a changed name.
// Resources are marshalled before the cache lock is taken. A Service whose
// resources cannot be marshalled keeps its previous resources, and its error
// is returned (joined with the others) while the rest of the Update is
// applied. Apply returns the number of resources whose version changed.
func (c *Cache) Apply(u Update) (int, error) {
	var errs []error
	keys := make([]string, 0, len(u.Services))
	for key := range u.Services {
		keys = append(keys, key)
	}
	// Marshalling a full world is spread over every core (see forEach).
	builds := make([]*built, len(keys))
	buildErrs := make([]error, len(keys))
	forEach(len(keys), func(i int) {
		if r := u.Services[keys[i]]; r != nil {
			builds[i], buildErrs[i] = build(r)
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
	var changed [numTypes]map[string]struct{}
	mark := func(t typeIndex, name string) {
		if changed[t] == nil {
			changed[t] = map[string]struct{}{}
		}
		changed[t][name] = struct{}{}
	}
	if u.Full {
		for key := range c.groups {
			if _, ok := u.Services[key]; !ok {
				c.replaceGroup(key, nil, mark)
			}
		}
	}
	for key, b := range next {
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
	var g *group
	if b != nil {
		g = &group{aliases: b.aliases, variants: b.variants}
		for t := range numTypes {
			for _, r := range b.res[t] {
				g.names[t] = append(g.names[t], r.Name)
				if cur, ok := c.resources[t][r.Name]; !ok || cur.Version != r.Version {
					c.resources[t][r.Name] = r
					mark(t, r.Name)
				}
			}
		}
	}
	if old != nil {
		for t := range numTypes {
			for _, name := range old.names[t] {
				if g != nil && contains(g.names[t], name) {
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
		for alias := range old.aliases {
			if g != nil && g.aliases[alias] != "" {
				continue
			}
			delete(c.aliases, alias)
			mark(listenerType, alias)
		}
	}
	c.replaceVariants(old, g, mark)
	if g == nil {
		delete(c.groups, key)
		return
	}
	for alias, canonical := range g.aliases {
		if c.aliases[alias] == canonical {
			continue
		}
		c.aliases[alias] = canonical
		mark(listenerType, alias)
	}
	c.groups[key] = g
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// notifyLocked tells every live watcher of a changed name, and drops the
// entries of ended streams from the lists it walks. Must be called with
// c.mu held; a watcher's own lock is never held while taking c.mu.
func (c *Cache) notifyLocked(changed [numTypes]map[string]struct{}, becameReady bool) {
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
		for name := range changed[t] {
			for _, w := range c.byName[t][name] {
				if !w.dead {
					w.markOne(t, name)
				}
			}
			if c.dead > 0 {
				c.compactLocked(t, name)
			}
		}
	}
}

// replaceVariants swaps the variants of one Service's resources and marks
// a resource changed when any of its variants changed, appeared or went.
// Must be called with c.mu held.
func (c *Cache) replaceVariants(old, g *group, mark func(typeIndex, string)) {
	for t := range numTypes {
		var before, after map[string]map[string]*Resource
		if old != nil {
			before = old.variants[t]
		}
		if g != nil {
			after = g.variants[t]
		}
		for name, vs := range after {
			if !sameVersions(before[name], vs) {
				c.variants[t][name] = vs
				mark(t, name)
			}
		}
		for name := range before {
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
		if o, ok := b[zone]; !ok || o.Version != r.Version {
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
