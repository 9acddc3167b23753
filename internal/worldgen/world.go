package worldgen

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/watcher"
)

// Views runs svcs and slices through a new watcher.Store (every Service,
// then every slice, then TakeAll) and returns the view of each Service, in
// the order of svcs. It fails when a Service has no view (the Store does not
// publish it).
func Views(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) ([]*model.Service, error) {
	st, err := load(svcs, slices)
	if err != nil {
		return nil, err
	}
	return views(svcs, st.TakeAll())
}

func load(svcs []*corev1.Service, slices []*discoveryv1.EndpointSlice) (*watcher.Store, error) {
	st, err := watcher.NewStore(watcher.Options{})
	if err != nil {
		return nil, fmt.Errorf("worldgen: %w", err)
	}
	for _, svc := range svcs {
		st.UpsertService(svc)
	}
	for _, es := range slices {
		st.UpsertSlice(es)
	}
	return st, nil
}

func views(svcs []*corev1.Service, all map[model.ServiceKey]*model.Service) ([]*model.Service, error) {
	out := make([]*model.Service, len(svcs))
	for n, svc := range svcs {
		key := model.ServiceKey{Namespace: svc.Namespace, Name: svc.Name}
		if out[n] = all[key]; out[n] == nil {
			return nil, fmt.Errorf("worldgen: the Store publishes no view of %s", key)
		}
	}
	return out, nil
}

// Generate returns the views of the world that o describes: Objects, then
// Views.
func Generate(o Options) ([]*model.Service, error) {
	svcs, slices, err := Objects(o)
	if err != nil {
		return nil, err
	}
	return Views(svcs, slices)
}

// World is a generated world kept in a watcher.Store, so that it can be
// changed the way a cluster changes: by writing EndpointSlices, whose new
// views the Store builds. Services are numbered from 0 in the World (the
// n-th is Options.First+n of the whole world). A World is not safe for
// concurrent use.
type World struct {
	opts   Options
	store  *watcher.Store
	svcs   []*corev1.Service
	slices [][]*discoveryv1.EndpointSlice // per Service, in slot order
	views  []*model.Service
	gens   []map[int]int // per Service: replacements per pod slot
}

// NewWorld generates the world o describes and loads it into a Store.
func NewWorld(o Options) (*World, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	w := &World{
		opts:   o,
		svcs:   make([]*corev1.Service, o.Services),
		slices: make([][]*discoveryv1.EndpointSlice, o.Services),
		gens:   make([]map[int]int, o.Services),
	}
	var all []*discoveryv1.EndpointSlice
	for n := range o.Services {
		w.svcs[n], w.slices[n] = o.service(o.First + n)
		all = append(all, w.slices[n]...)
	}
	st, err := load(w.svcs, all)
	if err != nil {
		return nil, err
	}
	w.store = st
	if w.views, err = views(w.svcs, st.TakeAll()); err != nil {
		return nil, err
	}
	return w, nil
}

// Len is the number of Services.
func (w *World) Len() int { return len(w.svcs) }

// Pods is the number of pod slots of every Service (Options.Endpoints).
func (w *World) Pods() int { return w.opts.Endpoints }

// View returns the current view of the n-th Service. Views are never
// mutated: a change makes a new one.
func (w *World) View(n int) *model.Service { return w.views[n] }

// Views returns the current view of every Service, in order, in a new
// slice.
func (w *World) Views() []*model.Service { return slices.Clone(w.views) }

// ReplacePod replaces the pod in slot j of the n-th Service with a new,
// ready pod at addr, as a Deployment replaces a pod: the EndpointSlice that
// holds the slot is written anew (a copy: objects handed to the Store are
// never changed) with the new pod's endpoint in place of the old one, and
// goes through the Store. It returns the Service's new view, and fails when
// the view did not change (addr is the old address and the pod was ready)
// or j is not a slot.
func (w *World) ReplacePod(n, j int, addr netip.Addr) (*model.Service, error) {
	if n < 0 || n >= len(w.svcs) || j < 0 || j >= w.opts.Endpoints {
		return nil, fmt.Errorf("worldgen: no pod slot %d in Service %d", j, n)
	}
	if w.gens[n] == nil {
		w.gens[n] = map[int]int{}
	}
	w.gens[n][j]++
	i := w.opts.First + n
	s := j / MaxSliceEndpoints
	old := w.slices[n][s]
	es := old.DeepCopy()
	es.Generation++
	es.ResourceVersion = strconv.FormatInt(es.Generation, 10)
	es.Endpoints[j%MaxSliceEndpoints] = w.opts.endpoint(w.opts.key(i), i, j, pod{j: j, gen: w.gens[n][j]}, addr, conditionReady)
	w.slices[n][s] = es

	if !w.store.UpsertSlice(es) {
		return nil, fmt.Errorf("worldgen: replacing pod %d of Service %d with %v changed no view", j, n, addr)
	}
	key := model.ServiceKey{Namespace: w.svcs[n].Namespace, Name: w.svcs[n].Name}
	v := w.store.TakeChanges()[key]
	if v == nil {
		return nil, fmt.Errorf("worldgen: the Store has no new view of %s", key)
	}
	w.views[n] = v
	return v, nil
}
