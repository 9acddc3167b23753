package watcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/switchboard-xds/switchboard/model"
)

// InformerSource reads Services and EndpointSlices from an API server through
// client-go shared informers.
//
// With Options.Namespaces empty it watches all namespaces; otherwise it runs
// one pair of informers per listed namespace. Options.Selector is sent to the
// API server for Services only (slices of a selected Service carry other
// labels). Objects are stripped before they enter the informer caches
// (managed fields, annotations other than switchboard.io/, status, owner
// references), which bounds the memory of large clusters.
//
// When the API server goes away, the informers keep retrying with backoff
// (client-go does), the last state keeps being served, and nothing is
// published as empty; after a reconnect the relist brings the view up to date.
type InformerSource struct {
	client kubernetes.Interface
	cfg    config
	// discovery says which Gateway API kinds are installed: the client's
	// discovery, or a test's.
	discovery serverResources
	// lastWatchErr is the latest error from any informer's watch, for the
	// sync timeout error.
	lastWatchErr atomic.Pointer[error]
}

// NewInformerSource returns a Source backed by client. It fails on invalid
// Options (a malformed selector, negative or inverted delays).
func NewInformerSource(client kubernetes.Interface, opts Options) (*InformerSource, error) {
	if client == nil {
		return nil, errors.New("informer source: nil client")
	}
	cfg, err := opts.config()
	if err != nil {
		return nil, fmt.Errorf("informer source: %w", err)
	}
	return &InformerSource{client: client, cfg: cfg, discovery: client.Discovery()}, nil
}

// Run implements Source. It waits for every informer cache to sync, publishes
// a Full batch, then publishes changes until ctx is done. While the caches
// have not synced it logs each watch error and keeps waiting; with
// Options.SyncTimeout set it gives up after that long and returns an error
// that wraps the last watch error.
func (s *InformerSource) Run(ctx context.Context, sink model.Sink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	c := newCoalescer(s.cfg)
	ownerDone := make(chan struct{})
	go func() {
		defer close(ownerDone)
		c.run(ctx, sink)
	}()
	defer func() { <-ownerDone }() // runs after cancel: the owner stops first

	namespaces := s.cfg.filter.namespaceList()
	if namespaces == nil {
		namespaces = []string{metav1.NamespaceAll}
	}
	selector := s.cfg.filter.selector.String()
	var (
		factories []informers.SharedInformerFactory
		synced    []cache.InformerSynced
	)
	defer func() {
		cancel()
		for _, f := range factories {
			f.Shutdown() // waits for the informer goroutines
		}
	}()
	h := newHealth(s.cfg.metrics, s.cfg.log)
	for _, ns := range namespaces {
		// Two factories per namespace, as a factory holds one informer per
		// type; the selector is for Services only.
		svcFactory := informers.NewSharedInformerFactoryWithOptions(s.client, 0, informers.WithNamespace(ns))
		sliceFactory := informers.NewSharedInformerFactoryWithOptions(s.client, 0, informers.WithNamespace(ns))
		factories = append(factories, svcFactory, sliceFactory)
		services, slices := s.client.CoreV1().Services(ns), s.client.DiscoveryV1().EndpointSlices(ns)

		regs, err := s.register(ctx, c, ns,
			h.informer(svcFactory, &corev1.Service{}, kindService, kindService+"/"+ns,
				func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
					o.LabelSelector = selector
					return services.List(ctx, o)
				},
				func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
					o.LabelSelector = selector
					return services.Watch(ctx, o)
				}),
			h.informer(sliceFactory, &discoveryv1.EndpointSlice{}, kindEndpointSlice, kindEndpointSlice+"/"+ns,
				func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return slices.List(ctx, o) },
				func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return slices.Watch(ctx, o) }))
		if err != nil {
			return err
		}
		synced = append(synced, regs...)
	}
	if s.cfg.nodeRegions {
		nodeFactory := informers.NewSharedInformerFactoryWithOptions(s.client, 0)
		factories = append(factories, nodeFactory)
		nodes := s.client.CoreV1().Nodes()
		informer := h.informer(nodeFactory, &corev1.Node{}, kindNode, kindNode,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return nodes.List(ctx, o) },
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return nodes.Watch(ctx, o) })
		synced1, err := s.watch(informer, kindNode, "", handler(ctx, c, s.cfg.metrics, kindNode,
			(*Store).UpsertNode, func(st *Store, _, name string) bool { return st.DeleteNode(name) }))
		if err != nil {
			return err
		}
		synced = append(synced, synced1)
	}
	var mesh *meshWatch
	if s.cfg.gateway != nil {
		mesh = &meshWatch{s: s, c: c, discovery: s.discovery, namespaces: namespaces, started: map[string]bool{}}
		defer func() {
			cancel()
			mesh.wait()
		}()
		synced = append(synced, mesh.start(ctx)...)
		mesh.wg.Go(func() { mesh.poll(ctx) })
	}
	for _, f := range factories {
		f.Start(ctx.Done())
	}

	start := time.Now()
	watched := "all"
	if s.cfg.filter.namespaces != nil {
		watched = strings.Join(namespaces, ",")
	}
	s.cfg.log.Info("waiting for informer caches to sync", "namespaces", watched, "selector", selector)
	// The registrations' HasSynced, not the informers': it turns true only
	// once our handlers have seen every object of the initial list, and the
	// handlers enqueue before they return, so the sync marker below is
	// ordered after the whole initial state.
	waitCtx := ctx
	if s.cfg.syncTimeout > 0 {
		var cancelWait context.CancelFunc
		waitCtx, cancelWait = context.WithTimeout(ctx, s.cfg.syncTimeout)
		defer cancelWait()
	}
	if !cache.WaitForCacheSync(waitCtx.Done(), synced...) {
		if ctx.Err() != nil {
			return nil // a normal shutdown before sync
		}
		err := h.lastError()
		if last := s.lastWatchErr.Load(); err == nil && last != nil {
			err = *last
		}
		if err == nil {
			err = errors.New("no watch error reported")
		}
		return fmt.Errorf("informer caches not synced after %v: %w", s.cfg.syncTimeout, err)
	}
	if !c.send(ctx, update{synced: true}) {
		return nil
	}
	h.initialSync()
	s.cfg.log.Info("informer caches synced", "duration", time.Since(start))
	<-ctx.Done()
	return nil
}

// register sets the transform, the watch error handler and our event handlers
// on one namespace's informers and returns the handler registrations' sync
// functions.
func (s *InformerSource) register(ctx context.Context, c *coalescer, ns string,
	svcInformer, sliceInformer cache.SharedIndexInformer,
) ([]cache.InformerSynced, error) {
	var out []cache.InformerSynced
	for _, in := range []struct {
		kind     string
		informer cache.SharedIndexInformer
		handler  cache.ResourceEventHandler
	}{
		{kindService, svcInformer, handler(ctx, c, s.cfg.metrics, kindService,
			(*Store).UpsertService, (*Store).DeleteService)},
		{kindEndpointSlice, sliceInformer, handler(ctx, c, s.cfg.metrics, kindEndpointSlice,
			(*Store).UpsertSlice, (*Store).DeleteSlice)},
	} {
		synced, err := s.watch(in.informer, in.kind, ns, in.handler)
		if err != nil {
			return nil, err
		}
		out = append(out, synced)
	}
	return out, nil
}

// watch sets the transform, the watch error handler and handler on one
// informer and returns the handler registration's sync function.
func (s *InformerSource) watch(informer cache.SharedIndexInformer, kind, ns string, h cache.ResourceEventHandler) (cache.InformerSynced, error) {
	log := s.cfg.log.With("kind", kind, "namespace", ns)
	err := errors.Join(
		informer.SetTransform(stripObject),
		informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			// client-go retries with backoff; say why we are not current.
			log.Warn("watch failed; retrying, last state kept", "error", err)
			s.lastWatchErr.Store(&err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("set up %s informer in namespace %q: %w", kind, ns, err)
	}
	reg, err := informer.AddEventHandler(h)
	if err != nil {
		return nil, fmt.Errorf("add %s event handler in namespace %q: %w", kind, ns, err)
	}
	return reg.HasSynced, nil
}

// handler turns informer notifications for one kind into updates. It runs
// on the informer's goroutine and touches no state: the owner goroutine
// applies the updates to the Store.
func handler[T metav1.Object](ctx context.Context, c *coalescer, m *Metrics, kind string,
	upsert func(*Store, T) bool, remove func(st *Store, namespace, name string) bool,
) cache.ResourceEventHandler {
	onUpsert := func(event string, obj any) {
		o, ok := obj.(T)
		if !ok {
			return
		}
		m.event(kind, event)
		c.send(ctx, update{apply: func(st *Store) bool { return upsert(st, o) }})
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { onUpsert(eventAdd, obj) },
		UpdateFunc: func(_, obj any) { onUpsert(eventUpdate, obj) },
		DeleteFunc: func(obj any) {
			// A watch that missed the delete hands over a tombstone.
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			o, ok := obj.(metav1.Object)
			if !ok {
				return
			}
			ns, name := o.GetNamespace(), o.GetName()
			m.event(kind, eventDelete)
			c.send(ctx, update{apply: func(st *Store) bool { return remove(st, ns, name) }})
		},
	}
}

// stripObject drops the fields the Store never reads before an object enters
// an informer cache. client-go calls it on freshly decoded objects, so it
// mutates in place; it is idempotent as SetTransform requires.
func stripObject(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		stripMeta(&o.ObjectMeta)
		o.Annotations = keptAnnotations(o.Annotations)
		o.Status = corev1.ServiceStatus{}
	case *discoveryv1.EndpointSlice:
		stripMeta(&o.ObjectMeta)
		// Only the controller's trigger time is read (trigger.go).
		if v, ok := o.Annotations[lastChangeTriggerTime]; !ok {
			o.Annotations = nil
		} else if len(o.Annotations) > 1 {
			o.Annotations = map[string]string{lastChangeTriggerTime: v}
		}
		// Only the service-name label joins a slice to its Service.
		if name, ok := o.Labels[discoveryv1.LabelServiceName]; ok {
			if len(o.Labels) > 1 {
				o.Labels = map[string]string{discoveryv1.LabelServiceName: name}
			}
		} else {
			o.Labels = nil
		}
		for i := range o.Endpoints {
			o.Endpoints[i].DeprecatedTopology = nil
		}
	case *gwv1.HTTPRoute:
		stripMeta(&o.ObjectMeta)
		o.Annotations, o.Labels = nil, nil
		o.Status = gwv1.HTTPRouteStatus{}
	case *gwv1.GRPCRoute:
		stripMeta(&o.ObjectMeta)
		o.Annotations, o.Labels = nil, nil
		o.Status = gwv1.GRPCRouteStatus{}
	case *gwv1.ReferenceGrant:
		stripMeta(&o.ObjectMeta)
		o.Annotations, o.Labels = nil, nil
	case *gwv1beta1.ReferenceGrant:
		stripMeta(&o.ObjectMeta)
		o.Annotations, o.Labels = nil, nil
	case *corev1.Node:
		// Only the region label is read; a Node's status (images,
		// conditions, addresses) is most of its size.
		stripMeta(&o.ObjectMeta)
		o.Annotations = nil
		if region, ok := o.Labels[RegionLabel]; ok {
			o.Labels = map[string]string{RegionLabel: region}
		} else {
			o.Labels = nil
		}
		o.Spec = corev1.NodeSpec{}
		o.Status = corev1.NodeStatus{}
	}
	return obj, nil
}

func stripMeta(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	m.OwnerReferences = nil
	m.Finalizers = nil
	m.GenerateName = ""
}

// Assert at compile time that stripObject fits client-go's type.
var _ cache.TransformFunc = stripObject
