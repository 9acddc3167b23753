// Package routestatus writes the status of mesh routes (HTTPRoute and
// GRPCRoute with Service parents): for each Service parent, an entry of
// status.parents with Switchboard's controller name and the Accepted and
// ResolvedRefs conditions the translator computed (model.RouteStatus), at
// the route's observedGeneration.
//
// Every replica computes the statuses; one writes them: the holder of a
// Lease (client-go leader election). A replica that becomes the writer
// writes every route's status once, then each change. Entries of other
// controllers in status.parents are kept as they are.
package routestatus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/switchboard-xds/switchboard/model"
)

// ControllerName is the controller name of Switchboard's status.parents
// entries.
const ControllerName = "switchboard.io/mesh"

// Options configure a Writer.
type Options struct {
	// Kube holds the Lease; Gateway reads routes and writes their status.
	Kube    kubernetes.Interface
	Gateway gatewayclient.Interface
	// LeaseNamespace and LeaseName name the Lease; Identity is this
	// replica's name in it (a pod name).
	LeaseNamespace, LeaseName, Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are leader election's;
	// zero means 15 s, 10 s and 2 s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Logger receives the writer's logs; nil discards them.
	Logger *slog.Logger
	// Now stamps condition transitions; nil means time.Now.
	Now func() time.Time
}

// Writer keeps the latest status of every route and, while it holds the
// Lease, writes the ones that changed. Update may be called from any
// goroutine and never blocks.
type Writer struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	latest map[model.RouteKey]*model.RouteStatus
	dirty  map[model.RouteKey]bool
	wake   chan struct{}
}

// New returns a Writer; Run makes it take part in the election.
func New(opts Options) (*Writer, error) {
	if opts.Kube == nil || opts.Gateway == nil || opts.LeaseNamespace == "" || opts.LeaseName == "" || opts.Identity == "" {
		return nil, errors.New("route status writer: clients, lease namespace, lease name and identity are required")
	}
	if opts.LeaseDuration == 0 {
		opts.LeaseDuration = 15 * time.Second
	}
	if opts.RenewDeadline == 0 {
		opts.RenewDeadline = 10 * time.Second
	}
	if opts.RetryPeriod == 0 {
		opts.RetryPeriod = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Writer{
		opts: opts, log: log,
		latest: map[model.RouteKey]*model.RouteStatus{},
		dirty:  map[model.RouteKey]bool{},
		wake:   make(chan struct{}, 1),
	}, nil
}

// Update records changed statuses (nil: the route is gone) to be written.
// It is pipeline.Options.RouteStatus.
func (w *Writer) Update(changed map[model.RouteKey]*model.RouteStatus) {
	w.mu.Lock()
	for k, st := range changed {
		if st == nil {
			delete(w.latest, k)
			delete(w.dirty, k)
			continue
		}
		w.latest[k] = st
		w.dirty[k] = true
	}
	w.mu.Unlock()
	w.signal()
}

func (w *Writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run takes part in the election until ctx ends, writing statuses while
// it leads. It returns nil when ctx ends.
func (w *Writer) Run(ctx context.Context) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: w.opts.LeaseNamespace, Name: w.opts.LeaseName},
		Client:     w.opts.Kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: w.opts.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			Name:            w.opts.LeaseName,
			LeaseDuration:   w.opts.LeaseDuration,
			RenewDeadline:   w.opts.RenewDeadline,
			RetryPeriod:     w.opts.RetryPeriod,
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: w.lead,
				OnStoppedLeading: func() { w.log.Info("route status writer: no longer leading", "identity", w.opts.Identity) },
			},
		})
		if err != nil {
			return fmt.Errorf("route status leader election: %w", err)
		}
		le.Run(ctx) // returns when leadership is lost or ctx ends
	}
	return nil
}

// lead writes every known status, then each change, until ctx ends (the
// lease is lost or the process stops).
func (w *Writer) lead(ctx context.Context) {
	w.log.Info("route status writer: leading", "identity", w.opts.Identity)
	w.mu.Lock()
	for k := range w.latest {
		w.dirty[k] = true
	}
	w.mu.Unlock()
	w.signal()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-retry.C:
		}
		w.mu.Lock()
		todo := make(map[model.RouteKey]*model.RouteStatus, len(w.dirty))
		for k := range w.dirty {
			todo[k] = w.latest[k]
		}
		clear(w.dirty)
		w.mu.Unlock()
		var failed []model.RouteKey
		for k, st := range todo {
			if err := w.write(ctx, st); err != nil {
				w.log.Warn("route status not written; retrying", "route", k.String(), "error", err)
				failed = append(failed, k)
			}
		}
		if len(failed) > 0 {
			w.mu.Lock()
			for _, k := range failed {
				if _, ok := w.latest[k]; ok {
					w.dirty[k] = true
				}
			}
			w.mu.Unlock()
			retry.Reset(time.Second)
		}
	}
}

// write puts st in its route's status.parents. A route that is gone is
// not an error.
func (w *Writer) write(ctx context.Context, st *model.RouteStatus) error {
	var err error
	switch st.Route.Kind {
	case model.KindHTTPRoute:
		c := w.opts.Gateway.GatewayV1().HTTPRoutes(st.Route.Namespace)
		var r *gwv1.HTTPRoute
		if r, err = c.Get(ctx, st.Route.Name, metav1.GetOptions{}); err == nil {
			if parents, changed := w.merge(r.Status.Parents, r.Generation, st); changed {
				r.Status.Parents = parents
				_, err = c.UpdateStatus(ctx, r, metav1.UpdateOptions{})
			}
		}
	case model.KindGRPCRoute:
		c := w.opts.Gateway.GatewayV1().GRPCRoutes(st.Route.Namespace)
		var r *gwv1.GRPCRoute
		if r, err = c.Get(ctx, st.Route.Name, metav1.GetOptions{}); err == nil {
			if parents, changed := w.merge(r.Status.Parents, r.Generation, st); changed {
				r.Status.Parents = parents
				_, err = c.UpdateStatus(ctx, r, metav1.UpdateOptions{})
			}
		}
	default:
		return fmt.Errorf("unknown route kind %q", st.Route.Kind)
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// merge returns status.parents with ours replaced by st's (other
// controllers' entries kept, in place), and whether that changed anything
// but condition times. A status computed for another generation than the
// object's is not written: the next batch brings the current one.
func (w *Writer) merge(old []gwv1.RouteParentStatus, generation int64, st *model.RouteStatus) ([]gwv1.RouteParentStatus, bool) {
	if generation != st.Generation {
		return old, false
	}
	ours := map[string]gwv1.RouteParentStatus{}
	out := make([]gwv1.RouteParentStatus, 0, len(old)+len(st.Parents))
	for _, p := range old {
		if p.ControllerName == ControllerName {
			ours[parentID(p.ParentRef)] = p
			continue
		}
		out = append(out, p)
	}
	changed := false
	seen := map[string]bool{}
	for _, ps := range st.Parents {
		ref := parentRef(ps.Parent)
		id := parentID(ref)
		if seen[id] {
			continue
		}
		seen[id] = true
		prev, had := ours[id]
		entry := gwv1.RouteParentStatus{ParentRef: ref, ControllerName: ControllerName}
		entry.Conditions = []metav1.Condition{
			w.condition(prev.Conditions, model.ConditionAccepted, ps.Accepted, generation),
			w.condition(prev.Conditions, model.ConditionResolvedRefs, ps.ResolvedRefs, generation),
		}
		if ps.PartiallyInvalid != nil {
			entry.Conditions = append(entry.Conditions, w.condition(prev.Conditions, model.ConditionPartiallyInvalid, *ps.PartiallyInvalid, generation))
		}
		if !had || !sameConditions(prev.Conditions, entry.Conditions) {
			changed = true
		}
		out = append(out, entry)
	}
	for id := range ours {
		if !seen[id] {
			changed = true // a parent that is no longer one
		}
	}
	return out, changed
}

// condition is c as a metav1.Condition of type typ, keeping the previous
// transition time when the status did not change.
func (w *Writer) condition(prev []metav1.Condition, typ string, c model.Condition, generation int64) metav1.Condition {
	status := metav1.ConditionFalse
	if c.Status {
		status = metav1.ConditionTrue
	}
	out := metav1.Condition{
		Type: typ, Status: status, Reason: c.Reason, Message: c.Message,
		ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(w.opts.Now()),
	}
	for _, p := range prev {
		if p.Type == typ && p.Status == status {
			out.LastTransitionTime = p.LastTransitionTime
		}
	}
	return out
}

func sameConditions(a, b []metav1.Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message || x.ObservedGeneration != y.ObservedGeneration {
			return false
		}
	}
	return true
}

func parentRef(p model.ParentRef) gwv1.ParentReference {
	group, kind, ns := gwv1.Group(p.Group), gwv1.Kind(p.Kind), gwv1.Namespace(p.Namespace)
	out := gwv1.ParentReference{Group: &group, Kind: &kind, Namespace: &ns, Name: gwv1.ObjectName(p.Name)}
	if p.SectionName != "" {
		sn := gwv1.SectionName(p.SectionName)
		out.SectionName = &sn
	}
	if p.Port != 0 {
		port := p.Port
		out.Port = &port
	}
	return out
}

// parentID identifies a parentRef.
func parentID(p gwv1.ParentReference) string {
	s := func(v *string) string {
		if v == nil {
			return ""
		}
		return *v
	}
	var port string
	if p.Port != nil {
		port = fmt.Sprint(*p.Port)
	}
	return fmt.Sprintf("%s/%s/%s/%s/%s/%s", s((*string)(p.Group)), s((*string)(p.Kind)), s((*string)(p.Namespace)), p.Name, s((*string)(p.SectionName)), port)
}

// Statuses returns a copy of the latest statuses (for tests and debug).
func (w *Writer) Statuses() map[model.RouteKey]*model.RouteStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.latest)
}
