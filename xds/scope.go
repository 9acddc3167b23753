package xds

import "github.com/switchboard-xds/switchboard/translator"

// Scope (translator.Resources.EnvoyOnly): the listeners of the sidecar
// stage are for Envoy clients, and the api_listener listeners of Services
// are for gRPC clients (Envoy does not take those over LDS). The cache
// keeps the names of the Envoy-only listeners; a wildcard subscription
// brings a client of class envoy those listeners and no other, and every
// other client the others. A listener asked for by name is served
// whatever its scope. Scope is applied where a stream reads what a
// wildcard brings a client (stream.current) and where a wildcard lists
// every name (Cache.all), so it holds in SotW and delta, and in CSDS.

// inScope reports whether client may be served the listener named name
// (every resource of another type is in scope).
func (c *Cache) inScope(t typeIndex, name string, client translator.Client) bool {
	if t != listenerType {
		return true
	}
	envoy := client.Class == translator.ClassEnvoy
	if !envoy && c.envoyListenerCount.Load() == 0 {
		return true
	}
	c.mu.RLock()
	_, envoyOnly := c.envoyListeners[name]
	c.mu.RUnlock()
	return envoyOnly == envoy
}

// replaceScope moves the listener names of one Service group in the
// Envoy-only index from the old group's to b's (either may be nil). Must
// be called with c.mu held.
func (c *Cache) replaceScope(old *group, b *built) {
	if old != nil && old.envoyOnly {
		for _, name := range old.resourceNames(listenerType) {
			delete(c.envoyListeners, name)
		}
	}
	if b != nil && b.envoyOnly {
		for _, r := range b.res[listenerType] {
			c.envoyListeners[r.Name] = struct{}{}
		}
	}
	c.envoyListenerCount.Store(int64(len(c.envoyListeners)))
}

// nsKey is the view key of a namespace variant (translator.NamespaceVariant)
// of listeners and route configurations.
func nsKey(namespace string) string { return "ns/" + namespace }
