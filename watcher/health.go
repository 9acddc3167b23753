package watcher

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// health tracks whether an InformerSource's view is current, for
// switchboard_watcher_synced: it is once the initial state was published and
// while every informer's latest list or watch request to the API server
// succeeded.
//
// The requests are observed by wrapping each informer's ListWatch, because
// client-go reports only some failures to the watch error handler: a watch
// that cannot be re-established because the API server refuses connections
// is retried with backoff inside the reflector and never reaches it.
type health struct {
	m   *Metrics
	log *slog.Logger

	mu      sync.Mutex
	synced  bool            // the initial state was published
	failing map[string]bool // informer id -> its latest request failed
}

func newHealth(m *Metrics, log *slog.Logger) *health {
	m.setSynced(false)
	return &health{m: m, log: log, failing: map[string]bool{}}
}

// initialSync records that the initial state was published.
func (h *health) initialSync() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.synced = true
	h.publish()
}

// record notes the outcome of one list or watch request of informer id. A
// request cut short by our own shutdown says nothing about the API server.
func (h *health) record(ctx context.Context, kind, id string, err error) {
	if err != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled)) {
		return
	}
	if err != nil {
		h.m.watchError(kind)
		h.log.Debug("list or watch request failed; client-go retries with backoff", "informer", id, "error", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.failing[id] = true
	} else if h.failing[id] {
		delete(h.failing, id)
		h.log.Debug("list or watch request succeeded again", "informer", id)
	}
	h.publish()
}

// publish sets the gauge; the caller holds h.mu.
func (h *health) publish() { h.m.setSynced(h.synced && len(h.failing) == 0) }

// lister and watcher are one resource's List and Watch calls on a typed
// client, with the namespace and the list options of the informer applied.
type (
	lister  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watcher func(context.Context, metav1.ListOptions) (watch.Interface, error)
)

// informer returns factory's informer for example's type, built over list
// and watch with every request's outcome recorded under kind and id (one id
// per informer). It stands in for the factory's generated informer, whose
// ListWatch cannot be wrapped; the factory still starts and stops it.
func (h *health) informer(factory informers.SharedInformerFactory, example runtime.Object, kind, id string, list lister, watchFn watcher) cache.SharedIndexInformer {
	return factory.InformerFor(example, func(client kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		lw := &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				obj, err := list(ctx, o)
				h.record(ctx, kind, id, err)
				return obj, err
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				w, err := watchFn(ctx, o)
				h.record(ctx, kind, id, err)
				if err != nil {
					return w, err
				}
				// A watch that was accepted can still end at once with an
				// ERROR event: a restarted API server answers a resumed watch
				// with 410 Gone, and the view is stale until the relist, which
				// the reflector starts only after its backoff.
				return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
					if e.Type == watch.Error {
						h.record(ctx, kind, id, apierrors.FromObject(e.Object))
					}
					return e, true
				}), nil
			},
		}
		return cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, client), example,
			cache.SharedIndexInformerOptions{
				ResyncPeriod: resync,
				Indexers:     cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
			})
	})
}
