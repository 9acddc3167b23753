package watcher

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/switchboard-xds/switchboard/model"
)

// Store holds trimmed copies of Services and EndpointSlices, kube-proxy style
// (kubernetes pkg/proxy/endpointslicecache.go), and the published view of
// every Service built from them.
//
// Slices are keyed by their own namespace/name and joined to a Service by the
// kubernetes.io/service-name label; slices without it are ignored. Slices
// that arrive before their Service are kept and published with it. Services
// outside the watched namespaces or not matching the selector are not
// published; one that stops matching is removed from the view.
//
// Every mutator rebuilds the view of the Services it touches and reports
// whether any of them changed; changes to fields the view does not keep
// (resourceVersion, status, managed fields, unrelated labels and annotations)
// report false. Changed Services are marked dirty until TakeChanges or
// TakeAll hands them out.
//
// A Store is not safe for concurrent use: one goroutine owns it.
type Store struct {
	filter   filter
	services map[model.ServiceKey]*svcInfo
	slices   map[sliceKey]*sliceInfo
	// bySvc indexes slices by the Service they name, whether or not that
	// Service exists yet.
	bySvc map[model.ServiceKey]map[sliceKey]*sliceInfo
	// views holds the current view of every published Service.
	views map[model.ServiceKey]*model.Service
	// published holds what the last TakeChanges or TakeAll handed out, so a
	// Service that changes and changes back within one batch is left out.
	published map[model.ServiceKey]*model.Service
	// dirty holds the Services changed since the last take, each with the
	// time of its earliest change (see trigger.go); zero when unknown.
	dirty map[model.ServiceKey]time.Time
	// at is when the change being applied happened (see setTrigger), and
	// started when the Store's owner started: a slice trigger time before
	// it is stale.
	at, started time.Time
	// regions maps a Node name to its region label, for Nodes that have one
	// (only when Nodes are watched).
	regions map[string]string
	// mesh holds the mesh routes and ReferenceGrants (store_routes.go).
	mesh meshState
}

type sliceKey struct{ namespace, name string }

// NewStore returns an empty Store that publishes the Services selected by
// opts.Namespaces and opts.Selector; the other Options are not used. It fails
// only on a malformed selector.
func NewStore(opts Options) (*Store, error) {
	f, err := newFilter(opts.Namespaces, opts.Selector)
	if err != nil {
		return nil, err
	}
	return newStore(f), nil
}

func newStore(f filter) *Store {
	return &Store{
		filter:    f,
		services:  map[model.ServiceKey]*svcInfo{},
		slices:    map[sliceKey]*sliceInfo{},
		bySvc:     map[model.ServiceKey]map[sliceKey]*sliceInfo{},
		views:     map[model.ServiceKey]*model.Service{},
		published: map[model.ServiceKey]*model.Service{},
		dirty:     map[model.ServiceKey]time.Time{},
		regions:   map[string]string{},
		mesh:      newMeshState(),
	}
}

// UpsertService records svc (which the Store does not retain or modify) and
// reports whether the view of any Service changed.
func (s *Store) UpsertService(svc *corev1.Service) bool {
	if !s.filter.watches(svc.Namespace) {
		return false
	}
	if !s.filter.selects(svc.Labels) {
		return s.DeleteService(svc.Namespace, svc.Name)
	}
	key := model.ServiceKey{Namespace: svc.Namespace, Name: svc.Name}
	info := trimService(svc)
	if old, ok := s.services[key]; ok && old.equal(info) {
		return false
	}
	s.services[key] = info
	return s.refresh(key)
}

// DeleteService forgets a Service (its slices stay, waiting for it to come
// back) and reports whether the view of any Service changed.
func (s *Store) DeleteService(namespace, name string) bool {
	key := model.ServiceKey{Namespace: namespace, Name: name}
	if _, ok := s.services[key]; !ok {
		return false
	}
	delete(s.services, key)
	return s.refresh(key)
}

// UpsertSlice records es (which the Store does not retain or modify) and
// reports whether the view of any Service changed. A slice that loses its
// service-name label, or whose address type is not IPv4 or IPv6, is treated
// as deleted.
func (s *Store) UpsertSlice(es *discoveryv1.EndpointSlice) bool {
	if !s.filter.watches(es.Namespace) {
		return false
	}
	info := trimSlice(es)
	if info == nil {
		return s.DeleteSlice(es.Namespace, es.Name)
	}
	key := sliceKey{namespace: es.Namespace, name: es.Name}
	old := s.slices[key]
	if old != nil && old.equal(info) {
		return false
	}
	defer s.sliceTrigger(es)()
	changed := false
	if old != nil && old.service != info.service {
		s.unindex(key, old.service)
		changed = s.refresh(old.service)
	}
	s.slices[key] = info
	if s.bySvc[info.service] == nil {
		s.bySvc[info.service] = map[sliceKey]*sliceInfo{}
	}
	s.bySvc[info.service][key] = info
	return s.refresh(info.service) || changed
}

// DeleteSlice forgets an EndpointSlice and reports whether the view of any
// Service changed.
func (s *Store) DeleteSlice(namespace, name string) bool {
	key := sliceKey{namespace: namespace, name: name}
	old, ok := s.slices[key]
	if !ok {
		return false
	}
	delete(s.slices, key)
	s.unindex(key, old.service)
	return s.refresh(old.service)
}

func (s *Store) unindex(key sliceKey, svc model.ServiceKey) {
	delete(s.bySvc[svc], key)
	if len(s.bySvc[svc]) == 0 {
		delete(s.bySvc, svc)
	}
}

// Service returns the current view of a Service, or nil if it is not
// published.
func (s *Store) Service(key model.ServiceKey) *model.Service { return s.views[key] }

// Len returns the number of published Services.
func (s *Store) Len() int { return len(s.views) }

// Dirty reports whether any Service changed since the last TakeChanges or
// TakeAll.
func (s *Store) Dirty() bool {
	return len(s.dirty) > 0 || len(s.mesh.dirtyRoutes) > 0 || len(s.mesh.dirtyGrants) > 0
}

// TakeChanges returns the Services changed since the last TakeChanges or
// TakeAll, with a nil view for each one that is no longer published, and
// clears the dirty marks. A Service that changed and changed back is left
// out. The map is new and belongs to the caller.
func (s *Store) TakeChanges() map[model.ServiceKey]*model.Service {
	out, _ := s.takeChanges()
	return out
}

// takeChanges is TakeChanges that also returns when each Service's
// earliest change happened, for those where it is known.
func (s *Store) takeChanges() (map[model.ServiceKey]*model.Service, map[model.ServiceKey]time.Time) {
	out := make(map[model.ServiceKey]*model.Service, len(s.dirty))
	changed := make(map[model.ServiceKey]time.Time, len(s.dirty))
	for key, at := range s.dirty {
		v := s.views[key]
		if model.Equal(v, s.published[key]) {
			continue
		}
		out[key] = v
		if !at.IsZero() {
			changed[key] = at
		}
		if v == nil {
			delete(s.published, key)
		} else {
			s.published[key] = v
		}
	}
	clear(s.dirty)
	return out, changed
}

// TakeAll returns every published Service and clears the dirty marks. The map
// is new and belongs to the caller.
func (s *Store) TakeAll() map[model.ServiceKey]*model.Service {
	s.published = maps.Clone(s.views)
	clear(s.dirty)
	return maps.Clone(s.views)
}

// refresh rebuilds the view of one Service, marks it dirty if it changed and
// reports whether it did.
func (s *Store) refresh(key model.ServiceKey) bool {
	v := s.build(key)
	if model.Equal(v, s.views[key]) {
		return false
	}
	if v == nil {
		delete(s.views, key)
	} else {
		s.views[key] = v
	}
	s.markDirty(key)
	return true
}

// build returns the view of one Service, or nil if the Service is not known.
// It costs one pass over the Service's slices per port and a sort; it runs
// only when a trimmed input really changed.
func (s *Store) build(key model.ServiceKey) *model.Service {
	info := s.services[key]
	if info == nil {
		return nil
	}
	byName := s.bySvc[key]
	names := slices.SortedFunc(maps.Keys(byName), func(a, b sliceKey) int { return strings.Compare(a.name, b.name) })
	v := &model.Service{
		Key:                 key,
		Type:                info.typ,
		Headless:            info.headless,
		ClusterIPs:          info.clusterIPs, // never mutated, like Annotations
		ExternalName:        info.externalName,
		TrafficDistribution: info.trafficDistribution,
		Annotations:         info.annotations, // never mutated: a new svcInfo replaces it
		SliceCount:          len(byName),
	}
	if len(info.ports) > 0 {
		v.Ports = make([]model.Port, 0, len(info.ports))
	}
	for _, sp := range info.ports {
		p := model.Port{
			Name:           sp.name,
			Port:           sp.port,
			Protocol:       sp.protocol,
			AppProtocol:    sp.appProtocol,
			TargetPort:     sp.targetPort,
			TargetPortName: sp.targetPortName,
		}
		var cands []candidate
		resolved := false
		for order, name := range names {
			si := byName[name]
			for _, slp := range si.ports {
				if slp.name != sp.name || slp.protocol != sp.protocol {
					continue
				}
				resolved = true
				for i := range si.endpoints {
					cands = append(cands, candidate{ep: &si.endpoints[i], port: slp.port, ipv6: si.ipv6, order: order})
				}
			}
		}
		p.Unresolved = len(byName) > 0 && !resolved
		p.Endpoints = endpoints(cands)
		if len(s.regions) > 0 {
			for i := range p.Endpoints {
				p.Endpoints[i].Region = s.regions[p.Endpoints[i].NodeName]
			}
		}
		v.Ports = append(v.Ports, p)
	}
	return v
}

// candidate is one address of one slice for one Service port.
type candidate struct {
	ep    *sliceEndpoint
	port  int32
	ipv6  bool
	order int // position of the slice in name order: the tie-breaker
}

// better reports whether a should be kept over b for the same (address,
// port): the more usable one wins (ready, then serving, then not
// terminating), as kube-proxy prefers a ready copy of a duplicated endpoint.
func (a candidate) better(b candidate) bool {
	rank := func(c candidate) int {
		r := 0
		if c.ep.ready {
			r += 4
		}
		if c.ep.serving {
			r += 2
		}
		if !c.ep.terminating {
			r++
		}
		return r
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra > rb
	}
	return a.order < b.order
}

type addrPort struct {
	addr netip.Addr
	port int32
}

type mergeKey struct {
	ref  targetRef
	port int32
}

// endpoints deduplicates candidates per (address, port), merges the IPv4 and
// IPv6 address of one target into one endpoint, and sorts the result.
func endpoints(cands []candidate) []model.Endpoint {
	if len(cands) == 0 {
		return nil
	}
	best := make(map[addrPort]int, len(cands))
	kept := cands[:0:0]
	for _, c := range cands {
		k := addrPort{c.ep.addr, c.port}
		if i, ok := best[k]; ok {
			if c.better(kept[i]) {
				kept[i] = c
			}
			continue
		}
		best[k] = len(kept)
		kept = append(kept, c)
	}

	// Dual-stack: pair the IPv4 and IPv6 candidate of one target and port,
	// but only when each family has exactly one; anything else stays apart.
	type pair struct{ v4, v6, n4, n6 int }
	var pairs map[mergeKey]*pair
	for i, c := range kept {
		if c.ep.ref == (targetRef{}) {
			continue
		}
		if pairs == nil {
			pairs = map[mergeKey]*pair{}
		}
		k := mergeKey{c.ep.ref, c.port}
		p := pairs[k]
		if p == nil {
			p = &pair{}
			pairs[k] = p
		}
		if c.ipv6 {
			p.v6, p.n6 = i, p.n6+1
		} else {
			p.v4, p.n4 = i, p.n4+1
		}
	}
	merged := make([]bool, len(kept)) // true for an IPv6 candidate folded into its IPv4 twin
	twin := make(map[int]int)         // IPv4 index -> IPv6 index
	for _, p := range pairs {
		if p.n4 == 1 && p.n6 == 1 {
			twin[p.v4] = p.v6
			merged[p.v6] = true
		}
	}

	type sorted struct {
		addr netip.Addr
		e    model.Endpoint
	}
	out := make([]sorted, 0, len(kept)-len(twin))
	for i, c := range kept {
		if merged[i] {
			continue
		}
		e := model.Endpoint{
			Addresses:   []string{c.ep.addr.String()},
			Port:        c.port,
			Ready:       c.ep.ready,
			Serving:     c.ep.serving,
			Terminating: c.ep.terminating,
			Zone:        c.ep.zone,
			NodeName:    c.ep.node,
			Hostname:    c.ep.hostname,
			ForZones:    c.ep.forZones, // never mutated: a new sliceInfo replaces it
		}
		if j, ok := twin[i]; ok {
			// The two families of one pod normally agree; while one slice
			// lags the other, the merged endpoint takes the more cautious
			// value of each condition.
			v6 := kept[j].ep
			e.Addresses = append(e.Addresses, v6.addr.String())
			e.Ready = e.Ready && v6.ready
			e.Serving = e.Serving && v6.serving
			e.Terminating = e.Terminating || v6.terminating
		}
		out = append(out, sorted{c.ep.addr, e})
	}
	// Numeric address order (IPv4 before IPv6), then port.
	slices.SortFunc(out, func(a, b sorted) int {
		return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(a.e.Port, b.e.Port))
	})
	eps := make([]model.Endpoint, len(out))
	for i := range out {
		eps[i] = out[i].e
	}
	return eps
}

// RegionLabel is the Node label that gives an endpoint's region.
const RegionLabel = "topology.kubernetes.io/region"

// UpsertNode records the region of a Node and reports whether the view of
// any Service changed (Services with endpoints on that Node).
func (s *Store) UpsertNode(node *corev1.Node) bool {
	return s.setRegion(node.Name, node.Labels[RegionLabel])
}

// DeleteNode forgets a Node's region and reports whether any view changed.
func (s *Store) DeleteNode(name string) bool { return s.setRegion(name, "") }

func (s *Store) setRegion(node, region string) bool {
	if s.regions[node] == region {
		return false
	}
	if region == "" {
		delete(s.regions, node)
	} else {
		s.regions[node] = region
	}
	// Nodes change rarely: a scan of the slices finds the Services with
	// endpoints on this one.
	changed := false
	for key, bySlice := range s.bySvc {
		if !onNode(bySlice, node) {
			continue
		}
		if s.refresh(key) {
			changed = true
		}
	}
	return changed
}

func onNode(bySlice map[sliceKey]*sliceInfo, node string) bool {
	for _, si := range bySlice {
		for i := range si.endpoints {
			if si.endpoints[i].node == node {
				return true
			}
		}
	}
	return false
}
