package xds

import "github.com/switchboard-xds/switchboard/model"

// Scope (model.Resources.EnvoyOnly, model.Client.InScope): the listeners of the sidecar
// stage are for Envoy clients, and the api_listener listeners of Services
// are for gRPC clients (Envoy does not take those over LDS). The cache
// keeps the names of the sidecar stage's resources; a wildcard
// subscription brings a client of class envoy those listeners and no
// other, and every other client the other listeners and clusters (not the
// passthrough cluster). A listener asked for by name is served
// whatever its scope. Scope is applied where a stream reads what a
// wildcard brings a client (stream.current) and where a wildcard lists
// every name (Cache.all), so it holds in SotW and delta, and in CSDS.

// inScope reports whether a wildcard may bring client r, a resource of
// type t: a resource of the sidecar stage only to an Envoy client (the
// passthrough cluster is ORIGINAL_DST, which gRPC clients refuse), and a
// listener not of the sidecar stage to every client but an Envoy one. It
// reads the resource only: no lock.
func inScope(t typeIndex, r *Resource, client model.Client) bool {
	return client.InScope(model.ResourceType(t), r.envoyOnly)
}

// replaceScope moves the listener names of one Service group in the index
// of sidecar listeners, which an Envoy's wildcard LDS lists (Cache.all),
// from the old group's to b's (either may be nil). Must be called with
// c.mu held.
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
}
