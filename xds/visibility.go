package xds

import (
	"slices"
	"strings"

	"github.com/switchboard-xds/switchboard/model"
)

// Visibility (the visible-to annotation): a Service may be limited to
// clients of some namespaces. The cache keeps, for every name of a limited
// Service's resources and aliases, the Service's visibility; the stream
// asks visible before it serves anything it looked up (stream.lookup), so
// a client that may not see a Service gets nothing of it, by name, alias,
// short name or wildcard, in either protocol: to that client the Service
// does not exist (an unknown listener, a name missing from a full state, a
// removed resource). A change of visibility marks every name of the
// Service changed, so every watcher looks again and gains or loses it.
// Services without the annotation cost nothing but one atomic load per
// lookup while no Service is limited.

// visibility is the model.Resources.Visibility of one Service, with
// the Service's namespace that Client.MaySee needs.
type visibility struct {
	namespace string
	visibleTo []string
}

// newVisibility returns the visibility of the Service of key
// ("namespace/name") that visibleTo lists, or nil for one every client may
// see.
func newVisibility(key string, visibleTo []string) *visibility {
	if len(visibleTo) == 0 {
		return nil
	}
	ns, _, _ := strings.Cut(key, "/")
	return &visibility{namespace: ns, visibleTo: visibleTo}
}

func (v *visibility) equal(o *visibility) bool {
	if v == nil || o == nil {
		return v == o
	}
	return v.namespace == o.namespace && slices.Equal(v.visibleTo, o.visibleTo)
}

// visible reports whether client may see the resource of type t named
// name: a resource, alias or variant of a Service limited to other
// namespaces is invisible to it.
func (c *Cache) visible(t typeIndex, name string, client model.Client) bool {
	if !c.anyLimited.Load() {
		return true
	}
	c.mu.RLock()
	v := c.limited[t][name]
	c.mu.RUnlock()
	return v == nil || client.MaySee(v.visibleTo, v.namespace)
}

// replaceVisibility moves the names of one Service in the limited index
// from the old group's to b's (either may be nil), and marks every name of
// b changed when the visibility itself changed. Must be called with c.mu
// held.
func (c *Cache) replaceVisibility(old *group, b *built, mark func(typeIndex, string)) {
	var before, after *visibility
	if old != nil {
		before = old.vis
	}
	if b != nil {
		after = b.vis
	}
	if before == nil && after == nil {
		return
	}
	if before != nil {
		old.eachName(func(t typeIndex, name string) { delete(c.limited[t], name) })
	}
	// Names b no longer has are marked as gone already; the others are
	// marked here when who may see them changed.
	changed := !before.equal(after)
	if b != nil {
		b.eachName(func(t typeIndex, name string) {
			if after != nil {
				if c.limited[t] == nil {
					c.limited[t] = map[string]*visibility{}
				}
				c.limited[t][name] = after
			}
			if changed {
				mark(t, name)
			}
		})
	}
	n := 0
	for t := range numTypes {
		n += len(c.limited[t])
	}
	c.anyLimited.Store(n > 0)
}

// eachName calls f with every resource name of g, type by type, then every
// alias name as a listener name.
func (g *group) eachName(f func(typeIndex, string)) {
	for t := range numTypes {
		for _, name := range g.resourceNames(t) {
			f(t, name)
		}
	}
	for _, alias := range g.aliasNames() {
		f(listenerType, alias)
	}
}

// eachName is group.eachName for what b holds.
func (b *built) eachName(f func(typeIndex, string)) {
	for t := range numTypes {
		for _, r := range b.res[t] {
			f(t, r.Name)
		}
	}
	for alias := range b.aliases {
		f(listenerType, alias)
	}
}
