// Package loadtest is the harness behind cmd/switchboard-load: it measures how
// fast and how cheaply an xDS server brings N SotW ADS clients up to date
// after single-endpoint changes, for Switchboard and for peers (go-control-
// plane's LinearCache and SnapshotCache, and a fan-out floor) fed the same
// input through Switchboard's translator.
//
// The server under test runs in a child process (ServePeer), so that its CPU
// can be read from /proc and is not mixed with the clients'. The driver (Run)
// holds the N clients, tells the peer over its stdin which endpoint to
// change, and waits until every affected client has ACKed the new content.
package loadtest

import (
	"fmt"
	"hash/maphash"
	"time"

	"github.com/switchboard-xds/switchboard/internal/worldgen"
	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// Namespace holds every Service of a generated world of one namespace; a
// world of n > 1 namespaces puts Service i in "load-<i mod n>".
const Namespace = "load"

// servicePort is the one port of every generated Service.
const servicePort = worldgen.Port

// World is a deterministic set of Services that the driver and a peer
// process both build from the same two numbers, and change the same way, so
// that they agree on every resource without shipping it between processes.
// It is generated as Services and EndpointSlices (worldgen.Zones2) and kept
// in a watcher.Store, which builds every view, as in production; a change is
// an EndpointSlice write. A World is not safe for concurrent use.
type World struct {
	gen        *worldgen.World
	endpoints  int
	namespaces int
	// added are the Services of AddService, one generated world each,
	// numbered on from Len.
	added []*worldgen.World
	// routes is the number of Services with an HTTPRoute (see SetRoutes).
	routes int
}

// SetRoutes gives each of the first n Services an HTTPRoute of its own
// namespace sending 80 % to itself and 20 % to another Service of the
// namespace, part of the full Batch from then on: a world with mesh routes,
// for measuring what they cost a change that is not theirs.
func (w *World) SetRoutes(n int) { w.routes = min(n, w.Len()) }

// meshRoutes returns the HTTPRoutes of SetRoutes.
func (w *World) meshRoutes() map[model.RouteKey]*model.MeshRoute {
	out := make(map[model.RouteKey]*model.MeshRoute, w.routes)
	for i := range w.routes {
		front := w.Key(i)
		j := (i + w.namespaces) % w.Len()
		if w.NamespaceOf(j) != front.Namespace {
			j = i % w.namespaces
		}
		back := w.Key(j)
		r := &model.MeshRoute{
			Key:     model.RouteKey{Kind: model.KindHTTPRoute, Namespace: front.Namespace, Name: fmt.Sprintf("r-%d", i)},
			Parents: []model.ParentRef{{Kind: "Service", Namespace: front.Namespace, Name: front.Name}},
			Rules: []model.RouteRule{{Backends: []model.BackendRef{
				{Kind: "Service", Namespace: front.Namespace, Name: front.Name, Port: servicePort, Weight: 80},
				{Kind: "Service", Namespace: back.Namespace, Name: back.Name, Port: servicePort, Weight: 20},
			}}},
		}
		out[r.Key] = r
	}
	return out
}

// NewWorld returns services single-port Services with endpoints ready
// endpoints each, spread over two zones and over namespaces namespaces
// (at least 1). It fails when the world does not fit the generator's
// address space (see worldgen.Options).
func NewWorld(services, endpoints, namespaces int) (*World, error) {
	w := &World{endpoints: endpoints, namespaces: max(namespaces, 1)}
	gen, err := worldgen.NewWorld(w.genOptions(services, 0))
	if err != nil {
		return nil, fmt.Errorf("world: %w", err)
	}
	w.gen = gen
	return w, nil
}

func (w *World) genOptions(services, first int) worldgen.Options {
	return worldgen.Options{Services: services, First: first, Endpoints: w.endpoints, Shape: worldgen.Zones2, Key: w.Key}
}

// ServiceKey names the i-th Service of a World of one namespace.
func ServiceKey(i int) model.ServiceKey { return serviceKey(Namespace, i) }

func serviceKey(ns string, i int) model.ServiceKey {
	return model.ServiceKey{Namespace: ns, Name: fmt.Sprintf("svc-%05d", i)}
}

// ResourceName is the canonical xDS name (cluster and assignment) of the
// i-th Service of a World of one namespace.
func ResourceName(i int) string { return translator.CanonicalName("", ServiceKey(i), servicePort) }

// NamespaceOf is the namespace of the i-th Service.
func (w *World) NamespaceOf(i int) string {
	if w.namespaces == 1 {
		return Namespace
	}
	return fmt.Sprintf("%s-%d", Namespace, i%w.namespaces)
}

// Key names the i-th Service (added ones too).
func (w *World) Key(i int) model.ServiceKey { return serviceKey(w.NamespaceOf(i), i) }

// Name is the canonical xDS name (cluster and assignment) of the i-th
// Service.
func (w *World) Name(i int) string { return translator.CanonicalName("", w.Key(i), servicePort) }

// Len is the number of Services the World started with; AddService adds
// more after them.
func (w *World) Len() int { return w.gen.Len() }

// Total is Len plus the Services added since.
func (w *World) Total() int { return w.gen.Len() + len(w.added) }

// View is the current view of the i-th Service, added ones too.
func (w *World) View(i int) *model.Service {
	if i >= w.gen.Len() {
		return w.added[i-w.gen.Len()].View(0)
	}
	return w.gen.View(i)
}

// AddService generates Service Total() (a new name, ClusterIP and pods,
// through a watcher.Store of its own) and returns its index.
func (w *World) AddService() (int, error) {
	i := w.Total()
	gen, err := worldgen.NewWorld(w.genOptions(1, i))
	if err != nil {
		return 0, fmt.Errorf("world: add Service %d: %w", i, err)
	}
	w.added = append(w.added, gen)
	return i, nil
}

// ChangedService is the index of the Service that change k (k ≥ 1) touches.
// Changes walk the Services in a scrambled order, so consecutive changes hit
// different Services.
func (w *World) ChangedService(k int) int {
	return int((uint64(k) * 2654435761) % uint64(w.Len()))
}

// Change applies change k (k ≥ 1) to the Service ChangedService(k) and
// returns its index.
func (w *World) Change(k int) (int, error) {
	i := w.ChangedService(k)
	return i, w.ChangeService(k, i)
}

// ChangeService applies change k (k ≥ 1) to the i-th Service: the pod in
// slot k mod endpoints is replaced by one at an address never used before
// (worldgen.ChangeAddress(k)), written as an EndpointSlice update through
// the Store. Change numbers must not repeat within a World, so every change
// gives its Service content it never had. A Service without endpoints has
// nothing to change.
func (w *World) ChangeService(k, i int) error {
	pods := w.gen.Pods()
	if pods == 0 {
		return nil
	}
	if _, err := w.gen.ReplacePod(i, k%pods, worldgen.ChangeAddress(k)); err != nil {
		return fmt.Errorf("change %d: %w", k, err)
	}
	return nil
}

// Translate returns the resources of the i-th Service, translated by
// Switchboard's translator, as every peer serves them.
func (w *World) Translate(i int) (*model.Resources, error) {
	svc := w.View(i)
	res, diags := translator.Service(translator.Options{}, svc)
	if len(diags) > 0 {
		return nil, fmt.Errorf("translate %s: %v", svc.Key, diags)
	}
	return &res, nil
}

// Batch is the watcher's batch of the Services in indices (all of them,
// Full, when indices is nil), as the Syncer of switchboard serve gets it.
func (w *World) Batch(indices []int, at time.Time) model.Batch {
	if indices == nil {
		b := model.Batch{Full: true, Services: make(map[model.ServiceKey]*model.Service, w.Total())}
		for i := range w.Total() {
			b.Services[w.Key(i)] = w.View(i)
		}
		if w.routes > 0 {
			b.Routes = w.meshRoutes()
		}
		return b
	}
	b := model.Batch{Services: map[model.ServiceKey]*model.Service{}, Changed: map[model.ServiceKey]time.Time{}}
	for _, i := range indices {
		b.Services[w.Key(i)] = w.View(i)
		b.Changed[w.Key(i)] = at
	}
	return b
}

// hasher digests marshalled resources so that N clients × R resources of
// state cost 8 bytes each. Every peer marshals deterministically
// (go-control-plane's MarshalResource, Switchboard's cache and the floor all
// use proto.MarshalOptions{Deterministic: true}), so equal content has equal
// bytes.
type hasher struct{ seed maphash.Seed }

func newHasher() hasher { return hasher{seed: maphash.MakeSeed()} }

func (h hasher) bytes(b []byte) uint64 { return maphash.Bytes(h.seed, b) }

// expectedState is what a fully converged client holds: per type, the
// digest of every resource by name.
type expectedState struct {
	clusters    []uint64 // by Service index
	assignments []uint64
}

// expected digests the current cluster and assignment of every Service.
func (w *World) expected(h hasher) (*expectedState, error) {
	e := &expectedState{clusters: make([]uint64, w.Len()), assignments: make([]uint64, w.Len())}
	for i := range w.Len() {
		if err := w.digest(h, e, i); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// digest updates e for the i-th Service.
func (w *World) digest(h hasher, e *expectedState, i int) error {
	res, err := w.Translate(i)
	if err != nil {
		return err
	}
	if len(res.Clusters) != 1 || len(res.Assignments) != 1 {
		return fmt.Errorf("service %d: %d clusters and %d assignments, want 1 each", i, len(res.Clusters), len(res.Assignments))
	}
	e.clusters[i] = h.bytes(res.Clusters[0].Wire)
	e.assignments[i] = h.bytes(res.Assignments[0].Wire)
	return nil
}
