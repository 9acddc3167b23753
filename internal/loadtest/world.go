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
	"slices"
	"strings"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
)

// Namespace holds every Service of the generated world.
const Namespace = "load"

// servicePort is the one port of every generated Service.
const servicePort = 8080

var zones = []string{"zone-a", "zone-b", "zone-c"}

// World is a deterministic set of Services that the driver and a peer
// process both build from the same two numbers, and change the same way, so
// that they agree on every resource without shipping it between processes.
// A World is not safe for concurrent use.
type World struct {
	services []*model.Service
}

// NewWorld returns services single-port Services with endpoints ready
// endpoints each, spread over three zones.
func NewWorld(services, endpoints int) *World {
	w := &World{services: make([]*model.Service, services)}
	for i := range services {
		eps := make([]model.Endpoint, endpoints)
		for j := range endpoints {
			eps[j] = model.Endpoint{
				// 10.0.0.0/9: never collides with the changed addresses (changeAddress).
				Addresses: []string{fmt.Sprintf("10.%d.%d.%d", (i/256)%128, i%256, j%250+1)},
				Port:      int32(servicePort + j/250),
				Ready:     true,
				Serving:   true,
				Zone:      zones[j%len(zones)],
			}
		}
		sortEndpoints(eps)
		w.services[i] = &model.Service{
			Key:        ServiceKey(i),
			Type:       model.TypeClusterIP,
			Ports:      []model.Port{{Name: "grpc", Port: servicePort, Protocol: "TCP", TargetPort: servicePort, Endpoints: eps}},
			SliceCount: 1,
		}
	}
	return w
}

// ServiceKey names the i-th Service of a World.
func ServiceKey(i int) model.ServiceKey {
	return model.ServiceKey{Namespace: Namespace, Name: fmt.Sprintf("svc-%05d", i)}
}

// ResourceName is the canonical xDS name (cluster and assignment) of the
// i-th Service.
func ResourceName(i int) string { return translator.CanonicalName("", ServiceKey(i), servicePort) }

// Len is the number of Services.
func (w *World) Len() int { return len(w.services) }

// ChangedService is the index of the Service that change k (k ≥ 1) touches.
// Changes walk the Services in a scrambled order, so consecutive changes hit
// different Services.
func (w *World) ChangedService(k int) int {
	return int((uint64(k) * 2654435761) % uint64(len(w.services)))
}

// Change applies change k (k ≥ 1) to the Service ChangedService(k) and
// returns its index.
func (w *World) Change(k int) int {
	i := w.ChangedService(k)
	w.ChangeService(k, i)
	return i
}

// ChangeService applies change k (k ≥ 1) to the i-th Service: one endpoint
// moves to an address never used before, as when a pod is replaced. Change
// numbers must not repeat within a World, so every change gives its Service
// content it never had. Published Services are never mutated: the changed one
// is copied, as the watcher does.
func (w *World) ChangeService(k, i int) {
	old := w.services[i]
	svc := *old
	svc.Ports = slices.Clone(old.Ports)
	eps := slices.Clone(old.Ports[0].Endpoints)
	if len(eps) > 0 {
		j := k % len(eps)
		ep := eps[j]
		ep.Addresses = []string{changeAddress(k)}
		eps[j] = ep
		sortEndpoints(eps)
	}
	svc.Ports[0].Endpoints = eps
	w.services[i] = &svc
}

// changeAddress is a unique address in 10.128.0.0/9 for change k.
func changeAddress(k int) string {
	return fmt.Sprintf("10.%d.%d.%d", 128+(k>>16)%128, (k>>8)%256, k%256)
}

// Translate returns the resources of the i-th Service, translated by
// Switchboard's translator, as every peer serves them.
func (w *World) Translate(i int) (*translator.Resources, error) {
	res, diags := translator.Service(translator.Options{}, w.services[i])
	if len(diags) > 0 {
		return nil, fmt.Errorf("translate %s: %v", w.services[i].Key, diags)
	}
	return &res, nil
}

// TranslateAll returns the resources of every Service, keyed by
// "namespace/name" as xds.Update wants them.
func (w *World) TranslateAll() (map[string]*translator.Resources, error) {
	out := make(map[string]*translator.Resources, len(w.services))
	for i, svc := range w.services {
		res, err := w.Translate(i)
		if err != nil {
			return nil, err
		}
		out[svc.Key.String()] = res
	}
	return out, nil
}

func sortEndpoints(eps []model.Endpoint) {
	slices.SortFunc(eps, func(a, b model.Endpoint) int {
		if c := strings.Compare(a.Addresses[0], b.Addresses[0]); c != 0 {
			return c
		}
		return int(a.Port - b.Port)
	})
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
	for i := range w.services {
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
