package xds

import "github.com/switchboard-xds/switchboard/translator"

// Scope (translator.Resources.EnvoyOnly): the listeners of the sidecar
// stage are for Envoy clients, and the api_listener listeners of Services
// are for gRPC clients (Envoy does not take those over LDS). The cache
// keeps the names of the sidecar stage's resources; a wildcard
// subscription brings a client of class envoy those listeners and no
// other, and every other client the other listeners and clusters (not the
// passthrough cluster). A listener asked for by name is served
// whatever its scope. Scope is applied where a stream reads what a
// wildcard brings a client (stream.current) and where a wildcard lists
// every name (Cache.all), so it holds in SotW and delta, and in CSDS.

// inScope reports whether a wildcard may bring client the resource of
// type t named name: a resource of the sidecar stage only to an Envoy
// client (the passthrough cluster is ORIGINAL_DST, which gRPC clients
// refuse), and a listener not of the sidecar stage to every client but
// an Envoy one.
func (c *Cache) inScope(t typeIndex, name string, client translator.Client) bool {
	envoy := client.Class == translator.ClassEnvoy
	if !envoy && c.envoyOnlyCount.Load() == 0 {
		return true
	}
	c.mu.RLock()
	_, envoyOnly := c.envoyOnly[t][name]
	c.mu.RUnlock()
	if envoyOnly {
		return envoy
	}
	return !(envoy && t == listenerType)
}

// replaceScope moves the names of one Service group in the Envoy-only
// index from the old group's to b's (either may be nil). Must be called
// with c.mu held.
func (c *Cache) replaceScope(old *group, b *built) {
	if old != nil && old.envoyOnly {
		for t := range numTypes {
			for _, name := range old.resourceNames(t) {
				delete(c.envoyOnly[t], name)
			}
		}
	}
	if b != nil && b.envoyOnly {
		for t := range numTypes {
			for _, r := range b.res[t] {
				if c.envoyOnly[t] == nil {
					c.envoyOnly[t] = map[string]struct{}{}
				}
				c.envoyOnly[t][r.Name] = struct{}{}
			}
		}
	}
	n := 0
	for t := range numTypes {
		n += len(c.envoyOnly[t])
	}
	c.envoyOnlyCount.Store(int64(n))
}

// nsKey is the view key of a namespace variant (translator.NamespaceVariant)
// of listeners and route configurations.
func nsKey(namespace string) string { return "ns/" + namespace }
