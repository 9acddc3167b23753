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
	lastErr error           // the latest failure of any request
}

// lastError returns the latest failure of any list or watch request, nil
// if none failed.
func (h *health) lastError() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastErr
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
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.lastErr = err
		if !h.failing[id] {
			h.log.Warn("list or watch request failed; retrying, last state kept", "informer", id, "error", err)
		} else {
			h.log.Debug("list or watch request failed again", "informer", id, "error", err)
		}
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
				return untilReachable(ctx, func() (runtime.Object, error) {
					obj, err := list(ctx, o)
					h.record(ctx, kind, id, err)
					return obj, err
				})
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				w, err := untilReachable(ctx, func() (watch.Interface, error) {
					w, err := watchFn(ctx, o)
					h.record(ctx, kind, id, err)
					return w, err
				})
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

// reachRetry is how often a list or watch request is retried while the API
// server cannot be reached.
const reachRetry = 500 * time.Millisecond

// untilReachable calls f until it returns anything but a failure to reach
// the API server (an error that is not an API status: connection refused or
// reset, a timeout), retrying every reachRetry, or until ctx ends.
//
// Without it a 30 s outage cost about 30 s more of stale state after the API
// server came back (TestFaultAPIServerDown): every failed request grows the
// reflector's backoff (0.8 s doubling to 30 s, jitter up to 2x), shared
// informers offer no way to set it, and the relist after the restarted API
// server's 410 Gone waits that backoff out. Retrying here, the reflector
// sees one slow request instead of many failed ones, so its backoff stays
// at its first step. The cost is one request per reachRetry per informer
// while the API server is down.
func untilReachable[T any](ctx context.Context, f func() (T, error)) (T, error) {
	for {
		v, err := f()
		var status apierrors.APIStatus
		if err == nil || errors.As(err, &status) || ctx.Err() != nil {
			return v, err
		}
		t := time.NewTimer(reachRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
	}
}
