package xds

import "github.com/switchboard-xds/switchboard/model"

// getView returns the current resource of type t named name for a client
// whose views for t are views (see model.Client.Views), or nil: the
// variant of the first view that has one, else the plain resource; a
// listener name that is an alias gets its alias listener.
func (c *Cache) getView(t typeIndex, name string, views []model.View) *Resource {
	c.mu.RLock()
	r := c.resources[t][name]
	if vs := c.variants[t][name]; vs != nil {
		for _, k := range views {
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
