package xds

import (
	"github.com/switchboard-xds/switchboard/translator"
)

// viewKeys returns, per resource type, the variant keys that client looks
// resources up under, most specific first (see getView): the
// first key with a variant of a name wins, and with none the client gets
// the plain resource. The view is fixed by the node, so it is computed once
// per stream; clients with one view share one marshalled variant, and the
// cost of variants is per view, not per client.
//
//   - CDS: the client's class, for clusters shaped for it (C-core's round
//     robin).
//   - EDS: for a client with a class and a zone, the
//     class and zone composite, then the zone, then the class: an Envoy in
//     zone Z gets Z's DRAINING-aware variant, else (no draining endpoints)
//     Z's variant, else (Z failed over, or has no endpoints) the un-zoned
//     DRAINING-aware one. translator.ClassAssignment guarantees that the
//     composite exists whenever both of the others do, so the order never
//     hides one.
//   - LDS, RDS: the client's namespace, for the sidecar stage's
//     listeners and route configurations of that namespace
//     (translator.NamespaceVariant).
//
// translator.Client says what class and zone are; this says in which order
// the cache's variants are tried.
func viewKeys(c translator.Client) [numTypes][]string {
	var v [numTypes][]string
	zone, class := c.Zone, c.Class
	if c.Namespace != "" {
		ns := []string{nsKey(c.Namespace)}
		v[listenerType], v[routeType] = ns, ns
	}
	if class != "" {
		v[clusterType] = []string{classKey(class)}
	}
	switch {
	case class != "" && zone != "":
		v[endpointType] = []string{assignmentKey(class, zone), zoneKey(zone), classKey(class)}
	case class != "":
		v[endpointType] = []string{classKey(class)}
	case zone != "":
		v[endpointType] = []string{zoneKey(zone)}
	}
	return v
}

// assignmentKey is the view key of an assignment variant for clients of
// class (may be "") in zone (may be "").
func assignmentKey(class, zone string) string {
	switch {
	case class == "":
		return zoneKey(zone)
	case zone == "":
		return classKey(class)
	}
	// Class names are translator constants without "+", so this cannot
	// collide with a classKey.
	return classKey(class) + "+" + zoneKey(zone)
}

// getView returns the current resource of type t named name for a client
// whose view for t is keys (see viewKeys), or nil: the variant under the
// first key that has one, else the plain resource; a listener name that is
// an alias gets its alias listener.
func (c *Cache) getView(t typeIndex, name string, keys []string) *Resource {
	c.mu.RLock()
	r := c.resources[t][name]
	if vs := c.variants[t][name]; vs != nil {
		for _, k := range keys {
			if v := vs[k]; v != nil {
				r = v
				break
			}
		}
	}
	c.mu.RUnlock()
	if r != nil || t != listenerType {
		return r
	}
	return c.getAlias(name, name)
}
