package pipeline

import (
	"cmp"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// This file attaches mesh routes (HTTPRoute, GRPCRoute with a Service
// parent) to the Services they name, and works out which Services a batch
// affects: a route change re-translates the Services it names as parents
// (before and after the change); a Service change that can change whether
// a backendRef to it resolves (it appears or goes, or its type or ports
// change: not an endpoint change), the parents of every route that sends
// to it; a
// ReferenceGrant change, the parents of every route sending into the
// grant's namespace from another one.

// meshIndex is the world as the mesh routes need it. It is owned by the
// Syncer's Sink (one goroutine); the maps it hands the translator are read
// during the Sink call only.
type meshIndex struct {
	services map[model.ServiceKey]*model.Service
	routes   map[model.RouteKey]*model.MeshRoute
	grants   map[model.GrantKey]*model.ReferenceGrant
	// byParent and byBackend index routes by the Services they name as
	// parent and as backend (or mirror).
	byParent  map[model.ServiceKey]map[model.RouteKey]bool
	byBackend map[model.ServiceKey]map[model.RouteKey]bool
	// grantList is grants as a sorted slice, rebuilt when a grant changes.
	grantList []*model.ReferenceGrant
	// touched are the routes whose status the last apply may have
	// changed; all is set when every route's may have (a full batch).
	touched map[model.RouteKey]bool
	all     bool
}

func newMeshIndex() *meshIndex {
	return &meshIndex{
		services:  map[model.ServiceKey]*model.Service{},
		routes:    map[model.RouteKey]*model.MeshRoute{},
		grants:    map[model.GrantKey]*model.ReferenceGrant{},
		byParent:  map[model.ServiceKey]map[model.RouteKey]bool{},
		byBackend: map[model.ServiceKey]map[model.RouteKey]bool{},
	}
}

// apply records b and returns the Services to translate: those of b and
// those b's routes, grants and Services affect, each with its current view
// (nil for a deleted one). A Full batch replaces the world.
func (x *meshIndex) apply(b model.Batch) map[model.ServiceKey]*model.Service {
	if b.Full {
		*x = *newMeshIndex()
	}
	affected := map[model.ServiceKey]bool{}
	x.touched, x.all = map[model.RouteKey]bool{}, b.Full
	for key, svc := range b.Services {
		affected[key] = true
		old := x.services[key]
		if svc == nil {
			delete(x.services, key)
		} else {
			x.services[key] = svc
		}
		if len(x.byParent[key])+len(x.byBackend[key]) == 0 || sameSpec(old, svc) {
			// No route names it, or an endpoint change: every route
			// attaches and every backendRef resolves as before.
			continue
		}
		for rk := range x.byParent[key] {
			x.touched[rk] = true
		}
		for rk := range x.byBackend[key] {
			x.parentsOf(x.routes[rk], affected)
			x.touched[rk] = true
		}
	}
	for key, r := range b.Routes {
		x.touched[key] = true
		old := x.routes[key]
		x.parentsOf(old, affected)
		x.index(old, false)
		if r == nil {
			delete(x.routes, key)
			continue
		}
		x.routes[key] = r
		x.index(r, true)
		x.parentsOf(r, affected)
	}
	if len(b.Grants) > 0 {
		for key, g := range b.Grants {
			if g == nil {
				delete(x.grants, key)
			} else {
				x.grants[key] = g
			}
			for rk, r := range x.routes {
				if sendsInto(r, key.Namespace) {
					x.parentsOf(r, affected)
					x.touched[rk] = true
				}
			}
		}
		x.grantList = x.grantList[:0]
		for _, k := range slices.SortedFunc(maps.Keys(x.grants), func(a, b model.GrantKey) int {
			return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
		}) {
			x.grantList = append(x.grantList, x.grants[k])
		}
	}
	if b.Full {
		for key := range x.services {
			affected[key] = true
		}
	}
	out := make(map[model.ServiceKey]*model.Service, len(affected))
	for key := range affected {
		switch svc, ok := x.services[key]; {
		case ok:
			out[key] = svc
		case b.Services[key] == nil && hasKey(b.Services, key):
			out[key] = nil // deleted by this batch
		}
		// Else a Service that a route names but that does not exist: nothing
		// to translate.
	}
	return out
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

// mesh returns the translator's Mesh for Service key: the routes naming it
// as parent (the translator picks the ports), every Service and every grant.
func (x *meshIndex) mesh(key model.ServiceKey) *translator.Mesh {
	rks := x.byParent[key]
	if len(rks) == 0 {
		return nil
	}
	m := &translator.Mesh{Services: x.services, Grants: x.grantList}
	for _, rk := range slices.SortedFunc(maps.Keys(rks), func(a, b model.RouteKey) int {
		return strings.Compare(a.String(), b.String())
	}) {
		m.Routes = append(m.Routes, x.routes[rk])
	}
	return m
}

// sameSpec reports whether views a and b of one Service differ at most in
// their endpoints (both absent counts as the same): a route's status and
// how a backendRef to the Service resolves read only the rest.
func sameSpec(a, b *model.Service) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.Ports) != len(b.Ports) {
		return false
	}
	for i := range a.Ports {
		p, q := a.Ports[i], b.Ports[i]
		p.Endpoints, q.Endpoints = nil, nil
		if !reflect.DeepEqual(p, q) {
			return false
		}
	}
	x, y := *a, *b
	x.Ports, y.Ports, x.SliceCount, y.SliceCount = nil, nil, 0, 0
	return reflect.DeepEqual(x, y)
}

// parentsOf adds the Services r names as parents to set (nothing for nil).
func (x *meshIndex) parentsOf(r *model.MeshRoute, set map[model.ServiceKey]bool) {
	if r == nil {
		return
	}
	for _, p := range r.Parents {
		if key, ok := p.Service(); ok {
			set[key] = true
		}
	}
}

// index adds r to (add) or removes it from the parent and backend indexes.
func (x *meshIndex) index(r *model.MeshRoute, add bool) {
	if r == nil {
		return
	}
	set := func(idx map[model.ServiceKey]map[model.RouteKey]bool, key model.ServiceKey) {
		if add {
			if idx[key] == nil {
				idx[key] = map[model.RouteKey]bool{}
			}
			idx[key][r.Key] = true
			return
		}
		delete(idx[key], r.Key)
		if len(idx[key]) == 0 {
			delete(idx, key)
		}
	}
	for _, p := range r.Parents {
		if key, ok := p.Service(); ok {
			set(x.byParent, key)
		}
	}
	for _, key := range backends(r) {
		set(x.byBackend, key)
	}
}

// backends are the Services r sends to: backendRefs and mirrors.
func backends(r *model.MeshRoute) []model.ServiceKey {
	var out []model.ServiceKey
	addFilters := func(fs []model.RouteFilter) {
		for _, f := range fs {
			if f.Mirror != nil {
				if key, ok := f.Mirror.Backend.Service(); ok {
					out = append(out, key)
				}
			}
		}
	}
	for _, rule := range r.Rules {
		addFilters(rule.Filters)
		for _, b := range rule.Backends {
			if key, ok := b.Service(); ok {
				out = append(out, key)
			}
			addFilters(b.Filters)
		}
	}
	return out
}

// sendsInto reports whether r sends to a Service of namespace ns other
// than its own.
func sendsInto(r *model.MeshRoute, ns string) bool {
	if r.Key.Namespace == ns {
		return false
	}
	for _, key := range backends(r) {
		if key.Namespace == ns {
			return true
		}
	}
	return false
}

// updateRouteStatus recomputes the status of the mesh routes the last
// apply touched (every one after a full batch), keeps them for
// RouteStatuses and hands the changed ones to Options.RouteStatus.
func (s *Syncer) updateRouteStatus() {
	x := s.mesh
	if !x.all && len(x.touched) == 0 {
		return
	}
	world := &translator.Mesh{Services: x.services, Grants: x.grantList}
	status := func(key model.RouteKey) *model.RouteStatus {
		r := x.routes[key]
		if r == nil {
			return nil
		}
		st := translator.RouteStatus(s.opts.Translator, r, world)
		return &st
	}
	changed := map[model.RouteKey]*model.RouteStatus{}
	s.mu.Lock()
	if s.status == nil {
		s.status = map[model.RouteKey]*model.RouteStatus{}
	}
	touched := x.touched
	if x.all {
		// Every route, and every status kept for a route now gone.
		touched = make(map[model.RouteKey]bool, len(x.routes)+len(s.status))
		for key := range x.routes {
			touched[key] = true
		}
		for key := range s.status {
			touched[key] = true
		}
	}
	for key := range touched {
		st, old := status(key), s.status[key]
		switch {
		case st == nil && old != nil:
			delete(s.status, key)
			changed[key] = nil
		case st != nil && (old == nil || !reflect.DeepEqual(old, st)):
			s.status[key] = st
			changed[key] = st
		}
	}
	s.mu.Unlock()
	if len(changed) > 0 && s.opts.RouteStatus != nil {
		s.opts.RouteStatus(changed)
	}
}

// RouteStatuses returns the current status of every mesh route, sorted by
// route; the values are read-only.
func (s *Syncer) RouteStatuses() []*model.RouteStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*model.RouteStatus, 0, len(s.status))
	for _, k := range slices.SortedFunc(maps.Keys(s.status), func(a, b model.RouteKey) int {
		return strings.Compare(a.String(), b.String())
	}) {
		out = append(out, s.status[k])
	}
	return out
}
