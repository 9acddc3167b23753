package routestatus

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/switchboard-xds/switchboard/internal/poll"
	"github.com/switchboard-xds/switchboard/model"
)

func routeWithOtherController() *gwv1.HTTPRoute {
	return &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "r", Generation: 2},
		Status: gwv1.HTTPRouteStatus{RouteStatus: gwv1.RouteStatus{Parents: []gwv1.RouteParentStatus{{
			ParentRef:      gwv1.ParentReference{Name: "gw"},
			ControllerName: "example.com/gateway",
		}}}},
	}
}

func status(gen int64, resolved bool) *model.RouteStatus {
	refs := model.Condition{Status: true, Reason: model.ReasonResolvedRefs}
	if !resolved {
		refs = model.Condition{Reason: model.ReasonBackendNotFound, Message: "backendRef ns/b:80: Service not found"}
	}
	return &model.RouteStatus{
		Route:      model.RouteKey{Kind: model.KindHTTPRoute, Namespace: "ns", Name: "r"},
		Generation: gen,
		Parents: []model.ParentStatus{{
			Parent:       model.ParentRef{Kind: "Service", Namespace: "ns", Name: "web", Port: 80},
			Accepted:     model.Condition{Status: true, Reason: model.ReasonAccepted},
			ResolvedRefs: refs,
		}},
	}
}

func writer(t *testing.T, kube *fake.Clientset, gw *gwfake.Clientset, id string) *Writer {
	t.Helper()
	w, err := New(Options{
		Kube: kube, Gateway: gw, LeaseNamespace: "sys", LeaseName: "route-status", Identity: id,
		LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

func ours(r *gwv1.HTTPRoute) *gwv1.RouteParentStatus {
	for i := range r.Status.Parents {
		if r.Status.Parents[i].ControllerName == ControllerName {
			return &r.Status.Parents[i]
		}
	}
	return nil
}

// TestWriter: the leader writes status.parents for the route's Service
// parent (other controllers' entries kept), follows changes, and a second
// replica never writes while the first holds the Lease.
func TestWriter(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset()
	var leaseReads atomic.Int32 // by either replica: each reads the Lease once per retry period
	kube.PrependReactor("get", "leases", func(clienttesting.Action) (bool, runtime.Object, error) {
		leaseReads.Add(1)
		return false, nil, nil
	})
	gw := gwfake.NewClientset(routeWithOtherController())
	var secondWrites atomic.Int32
	gw2 := gwfake.NewClientset()
	gw2.PrependReactor("*", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		secondWrites.Add(1)
		return false, nil, nil
	})
	first := writer(t, kube, gw, "first")
	first.Update(map[model.RouteKey]*model.RouteStatus{status(2, false).Route: status(2, false)})
	get := func() *gwv1.HTTPRoute {
		r, err := gw.GatewayV1().HTTPRoutes("ns").Get(ctx, "r", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	poll.Until(t, 10*time.Second, "the leader writes the status", func() bool {
		p := ours(get())
		return p != nil && len(p.Conditions) == 2 && p.Conditions[1].Reason == model.ReasonBackendNotFound
	})
	r := get()
	if len(r.Status.Parents) != 2 || r.Status.Parents[0].ControllerName != "example.com/gateway" {
		t.Fatalf("other controllers' entries not kept: %+v", r.Status.Parents)
	}
	p := ours(r)
	if *p.ParentRef.Kind != "Service" || p.ParentRef.Name != "web" || *p.ParentRef.Port != 80 ||
		p.Conditions[0].Type != "Accepted" || p.Conditions[0].Status != metav1.ConditionTrue || p.Conditions[0].ObservedGeneration != 2 {
		t.Fatalf("our entry: %+v", p)
	}
	second := writer(t, kube, gw2, "second")
	second.Update(map[model.RouteKey]*model.RouteStatus{status(2, true).Route: status(2, true)})
	first.Update(map[model.RouteKey]*model.RouteStatus{status(2, true).Route: status(2, true)})
	poll.Until(t, 10*time.Second, "the leader writes the change", func() bool {
		p := ours(get())
		return p != nil && p.Conditions[1].Status == metav1.ConditionTrue
	})
	// Several retry periods of both replicas, counted in Lease reads
	// rather than waited for.
	from := leaseReads.Load()
	poll.Until(t, 10*time.Second, "both replicas read the Lease several times more", func() bool { return leaseReads.Load() >= from+10 })
	if n := secondWrites.Load(); n != 0 {
		t.Fatalf("the replica without the Lease made %d requests to routes", n)
	}
}
