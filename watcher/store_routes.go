package watcher

import (
	"maps"
	"reflect"

	"github.com/switchboard-xds/switchboard/model"
)

// This file keeps the mesh routes and ReferenceGrants in the Store. They
// are published as they are (attaching them to Services is the pipeline's
// work), in the same batches as Services, so a batch is one consistent
// step of the whole world.

// meshState is the Store's routes and grants, and which changed since the
// last take. The published views are the current ones; a change is marked
// only when the trimmed view differs.
type meshState struct {
	routes      map[model.RouteKey]*model.MeshRoute
	grants      map[model.GrantKey]*model.ReferenceGrant
	dirtyRoutes map[model.RouteKey]bool
	dirtyGrants map[model.GrantKey]bool
}

func newMeshState() meshState {
	return meshState{
		routes:      map[model.RouteKey]*model.MeshRoute{},
		grants:      map[model.GrantKey]*model.ReferenceGrant{},
		dirtyRoutes: map[model.RouteKey]bool{},
		dirtyGrants: map[model.GrantKey]bool{},
	}
}

// UpsertRoute records the view r (which the Store keeps: it must not be
// changed after) and reports whether it changed. Routes outside the
// watched namespaces are ignored.
func (s *Store) UpsertRoute(r *model.MeshRoute) bool {
	if !s.filter.watches(r.Key.Namespace) {
		return false
	}
	if old, ok := s.mesh.routes[r.Key]; ok && reflect.DeepEqual(old, r) {
		return false
	}
	s.mesh.routes[r.Key] = r
	s.mesh.dirtyRoutes[r.Key] = true
	return true
}

// DeleteRoute forgets a route and reports whether it was known.
func (s *Store) DeleteRoute(key model.RouteKey) bool {
	if _, ok := s.mesh.routes[key]; !ok {
		return false
	}
	delete(s.mesh.routes, key)
	s.mesh.dirtyRoutes[key] = true
	return true
}

// UpsertGrant records the view g (kept, like UpsertRoute's) and reports
// whether it changed.
func (s *Store) UpsertGrant(g *model.ReferenceGrant) bool {
	if !s.filter.watches(g.Key.Namespace) {
		return false
	}
	if old, ok := s.mesh.grants[g.Key]; ok && reflect.DeepEqual(old, g) {
		return false
	}
	s.mesh.grants[g.Key] = g
	s.mesh.dirtyGrants[g.Key] = true
	return true
}

// DeleteGrant forgets a ReferenceGrant and reports whether it was known.
func (s *Store) DeleteGrant(key model.GrantKey) bool {
	if _, ok := s.mesh.grants[key]; !ok {
		return false
	}
	delete(s.mesh.grants, key)
	s.mesh.dirtyGrants[key] = true
	return true
}

// takeMesh returns the routes and grants changed since the last take (nil
// for a deleted one), or every one of them when all is set, and clears the
// marks. Empty maps come back nil.
func (s *Store) takeMesh(all bool) (map[model.RouteKey]*model.MeshRoute, map[model.GrantKey]*model.ReferenceGrant) {
	defer func() {
		clear(s.mesh.dirtyRoutes)
		clear(s.mesh.dirtyGrants)
	}()
	if all {
		return nilIfEmpty(maps.Clone(s.mesh.routes)), nilIfEmpty(maps.Clone(s.mesh.grants))
	}
	var routes map[model.RouteKey]*model.MeshRoute
	if len(s.mesh.dirtyRoutes) > 0 {
		routes = make(map[model.RouteKey]*model.MeshRoute, len(s.mesh.dirtyRoutes))
		for k := range s.mesh.dirtyRoutes {
			routes[k] = s.mesh.routes[k]
		}
	}
	var grants map[model.GrantKey]*model.ReferenceGrant
	if len(s.mesh.dirtyGrants) > 0 {
		grants = make(map[model.GrantKey]*model.ReferenceGrant, len(s.mesh.dirtyGrants))
		for k := range s.mesh.dirtyGrants {
			grants[k] = s.mesh.grants[k]
		}
	}
	return routes, grants
}

func nilIfEmpty[K comparable, V any](m map[K]V) map[K]V {
	if len(m) == 0 {
		return nil
	}
	return m
}
