package watcher

import (
	"context"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/switchboard-xds/switchboard/model"
)

// This file watches the Gateway API kinds that mesh routing reads
// (HTTPRoute, GRPCRoute, ReferenceGrant) with informers, when their CRDs
// are installed. A cluster without them runs as before: the source says so
// once, asks API discovery every Options.CRDCheckInterval, and starts the
// informers of a kind when it appears. Kinds installed at start are part of
// the initial sync (no batch is published before they are listed); a kind
// installed later arrives as ordinary changes.

// meshKind is one Gateway API kind the source may watch.
type meshKind struct {
	kind     string // label, as in kindHTTPRoute
	resource string // in API discovery
	// versions are the group versions served for it that we read, best
	// first.
	versions []string
}

var meshKinds = []meshKind{
	{kindHTTPRoute, "httproutes", []string{"v1"}},
	{kindGRPCRoute, "grpcroutes", []string{"v1"}},
	{kindReferenceGrant, "referencegrants", []string{"v1", "v1beta1"}},
}

// serverResources is the one call of API discovery the source makes.
type serverResources interface {
	ServerResourcesForGroupVersion(groupVersion string) (*metav1.APIResourceList, error)
}

// meshWatch starts and keeps the informers of mesh kinds.
type meshWatch struct {
	s          *InformerSource
	c          *coalescer
	discovery  serverResources
	namespaces []string

	wg      sync.WaitGroup
	started map[string]bool // by kind
	told    bool            // "not installed" was logged
}

// available returns, per mesh kind served by the API server, the group
// version to read it in. An error from discovery (other than "group
// version not found") is returned with what could be found.
func (m *meshWatch) available() (map[string]string, error) {
	out := map[string]string{}
	served := map[string]map[string]bool{}
	var lastErr error
	for _, v := range []string{"v1", "v1beta1"} {
		list, err := m.discovery.ServerResourcesForGroupVersion(gwv1.GroupName + "/" + v)
		if err != nil {
			if !apierrors.IsNotFound(err) {
				lastErr = err
			}
			continue
		}
		served[v] = map[string]bool{}
		for _, r := range list.APIResources {
			served[v][r.Name] = true
		}
	}
	for _, k := range meshKinds {
		for _, v := range k.versions {
			if served[v][k.resource] {
				out[k.kind] = v
				break
			}
		}
	}
	return out, lastErr
}

// start starts the informers of every available kind not started yet and
// returns their handlers' sync functions.
func (m *meshWatch) start(ctx context.Context) []cache.InformerSynced {
	avail, err := m.available()
	log := m.s.cfg.log
	if err != nil {
		log.Warn("Gateway API discovery failed; mesh routes of the kinds not found are retried later", "error", err)
	}
	var synced []cache.InformerSynced
	var missing []string
	for _, k := range meshKinds {
		if m.started[k.kind] {
			continue
		}
		v, ok := avail[k.kind]
		if !ok {
			missing = append(missing, k.kind)
			continue
		}
		for _, ns := range m.namespaces {
			informer, h := m.informer(ctx, k.kind, v, ns)
			sync1, err := m.s.watch(informer, k.kind, ns, h)
			if err != nil {
				log.Error("cannot watch a Gateway API kind", "kind", k.kind, "error", err)
				continue
			}
			synced = append(synced, sync1)
			m.wg.Go(func() { informer.RunWithContext(ctx) })
		}
		m.started[k.kind] = true
		log.Info("watching Gateway API mesh routes", "kind", k.kind, "version", v)
	}
	if len(missing) > 0 && !m.told {
		m.told = true
		log.Info("Gateway API CRDs not installed: mesh routes of these kinds are off until they are",
			"kinds", missing, "check every", m.s.cfg.crdCheck)
	}
	return synced
}

// poll starts the informers of kinds installed after start, checking every
// Options.CRDCheckInterval until every kind is watched or ctx ends.
func (m *meshWatch) poll(ctx context.Context) {
	t := m.s.cfg.clock.NewTicker(m.s.cfg.crdCheck)
	defer t.Stop()
	for len(m.started) < len(meshKinds) {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			m.start(ctx)
		}
	}
}

// informer builds the informer of kind in group version v for namespace
// ns, and its event handler.
func (m *meshWatch) informer(ctx context.Context, kind, v, ns string) (cache.SharedIndexInformer, cache.ResourceEventHandler) {
	gw := m.s.cfg.gateway
	metrics := m.s.cfg.metrics
	var (
		example runtime.Object
		list    lister
		watchFn watcher
		h       cache.ResourceEventHandler
	)
	switch {
	case kind == kindHTTPRoute:
		c := gw.GatewayV1().HTTPRoutes(ns)
		example = &gwv1.HTTPRoute{}
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }
		watchFn = func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return c.Watch(ctx, o) }
		h = handler(ctx, m.c, metrics, kind, func(st *Store, r *gwv1.HTTPRoute) bool {
			view, err := trimHTTPRoute(r)
			if err != nil {
				// The API server validated it; a duration Go cannot parse
				// leaves the route out rather than half applied.
				m.s.cfg.log.Warn("HTTPRoute not applied", "namespace", r.Namespace, "name", r.Name, "error", err)
				return st.DeleteRoute(view.Key)
			}
			return st.UpsertRoute(view)
		}, routeRemover(model.KindHTTPRoute))
	case kind == kindGRPCRoute:
		c := gw.GatewayV1().GRPCRoutes(ns)
		example = &gwv1.GRPCRoute{}
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }
		watchFn = func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return c.Watch(ctx, o) }
		h = handler(ctx, m.c, metrics, kind, func(st *Store, r *gwv1.GRPCRoute) bool {
			return st.UpsertRoute(trimGRPCRoute(r))
		}, routeRemover(model.KindGRPCRoute))
	case v == "v1":
		c := gw.GatewayV1().ReferenceGrants(ns)
		example = &gwv1.ReferenceGrant{}
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }
		watchFn = func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return c.Watch(ctx, o) }
		h = handler(ctx, m.c, metrics, kind, func(st *Store, g *gwv1.ReferenceGrant) bool {
			return st.UpsertGrant(trimGrant(g))
		}, grantRemover)
	default:
		c := gw.GatewayV1beta1().ReferenceGrants(ns)
		example = &gwv1beta1.ReferenceGrant{}
		list = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }
		watchFn = func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return c.Watch(ctx, o) }
		h = handler(ctx, m.c, metrics, kind, func(st *Store, g *gwv1beta1.ReferenceGrant) bool {
			return st.UpsertGrant(trimGrant((*gwv1.ReferenceGrant)(g)))
		}, grantRemover)
	}
	lw := &cache.ListWatch{ListWithContextFunc: cache.ListWithContextFunc(list), WatchFuncWithContext: cache.WatchFuncWithContext(watchFn)}
	informer := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, gw), example, cache.SharedIndexInformerOptions{
		Indexers: cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
	})
	return informer, h
}

func routeRemover(kind string) func(*Store, string, string) bool {
	return func(st *Store, ns, name string) bool {
		return st.DeleteRoute(model.RouteKey{Kind: kind, Namespace: ns, Name: name})
	}
}

func grantRemover(st *Store, ns, name string) bool {
	return st.DeleteGrant(model.GrantKey{Namespace: ns, Name: name})
}

// wait returns once every mesh informer has stopped (their context ended).
func (m *meshWatch) wait() { m.wg.Wait() }
