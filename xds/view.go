package xds

import "github.com/switchboard-xds/switchboard/model"

// getView returns the current resource of type t named name for a client
// whose views for t are views (see model.Client.Views), or nil: the
// variant of the first view that has one, else the plain resource; a
// listener name that is an alias gets its alias listener.
//
// When a variant of a view before the one found went (Cache.lost), the
// client was moved to this Resource by that change, which may be newer
// than the Resource: it gets a copy stamped with that change (state.go
// compares seqs), until a newer version of the name makes that moot.
func (c *Cache) getView(t typeIndex, name string, views []model.View) *Resource {
	c.mu.RLock()
	r := c.resources[t][name]
	lost := c.lost[t][name]
	var fellAt uint64
	if vs := c.variants[t][name]; vs != nil || lost != nil {
		for _, k := range views {
			if v := vs[k]; v != nil {
				r = v
				break
			}
			fellAt = max(fellAt, lost[k])
		}
	}
	c.mu.RUnlock()
	if r != nil && fellAt > r.seq {
		return r.restamped(fellAt)
	}
	if r != nil || t != listenerType {
		return r
	}
	return c.getAlias(name, name)
}
