package watcher

import (
	"context"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/switchboard-xds/switchboard/model"
)

// fakeDiscovery serves the Gateway API group versions a test installs.
type fakeDiscovery struct {
	mu     sync.Mutex
	served map[string][]string // group version → resources
}

func (d *fakeDiscovery) install(gv string, resources ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.served == nil {
		d.served = map[string][]string{}
	}
	d.served[gv] = append(d.served[gv], resources...)
}

func (d *fakeDiscovery) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rs, ok := d.served[gv]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{}, gv)
	}
	out := &metav1.APIResourceList{GroupVersion: gv}
	for _, r := range rs {
		out.APIResources = append(out.APIResources, metav1.APIResource{Name: r})
	}
	return out, nil
}

func meshRoute(name string, gen int64) *gwv1.HTTPRoute {
	group, kind := gwv1.Group(""), gwv1.Kind("Service")
	return &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Generation: gen},
		Spec: gwv1.HTTPRouteSpec{CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{
			Group: &group, Kind: &kind, Name: "web",
		}}}},
	}
}

func meshSource(t *testing.T, d *fakeDiscovery, gw *gwfake.Clientset) *sinkRecorder {
	t.Helper()
	opts := fastOptions()
	opts.Gateway = gw
	opts.CRDCheckInterval = 10 * time.Millisecond
	src, err := NewInformerSource(fake.NewClientset(newSvc("ns", "web", svcPortNum("http", 80, 8080))), opts)
	if err != nil {
		t.Fatal(err)
	}
	src.discovery = d
	rec := newSinkRecorder(t)
	runSource(t, src, rec.sink)
	return rec
}

// untilRoute returns the route of key from the first batch that carries it
// and satisfies cond.
func (r *sinkRecorder) untilRoute(k model.RouteKey, what string, cond func(*model.MeshRoute) bool) {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case b := <-r.ch:
			if v, ok := b.Routes[k]; ok && cond(v) {
				return
			}
		case <-deadline:
			r.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestMeshCRDsInstalledAtStart checks that routes of installed kinds are
// in the first, full batch, and their changes follow.
func TestMeshCRDsInstalledAtStart(t *testing.T) {
	d := &fakeDiscovery{}
	d.install("gateway.networking.k8s.io/v1", "httproutes", "grpcroutes", "referencegrants")
	gw := gwfake.NewClientset(meshRoute("r", 1))
	rec := meshSource(t, d, gw)
	first := rec.next()
	k := model.RouteKey{Kind: model.KindHTTPRoute, Namespace: "ns", Name: "r"}
	if !first.Full || first.Routes[k] == nil || first.Routes[k].Parents[0].Name != "web" {
		t.Fatalf("first batch: full=%v routes=%v, want the route", first.Full, first.Routes)
	}
	if _, err := gw.GatewayV1().HTTPRoutes("ns").Update(context.Background(), meshRoute("r", 2), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.untilRoute(k, "generation 2", func(r *model.MeshRoute) bool { return r != nil && r.Generation == 2 })
	if err := gw.GatewayV1().HTTPRoutes("ns").Delete(context.Background(), "r", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.untilRoute(k, "deletion", func(r *model.MeshRoute) bool { return r == nil })
}

// TestMeshCRDsInstalledLater checks that a cluster without the CRDs is
// served (a full batch without routes), and that routes arrive once the
// CRDs are installed.
func TestMeshCRDsInstalledLater(t *testing.T) {
	d := &fakeDiscovery{}
	gw := gwfake.NewClientset(meshRoute("r", 1))
	rec := meshSource(t, d, gw)
	first := rec.next()
	if !first.Full || len(first.Services) != 1 || len(first.Routes) != 0 {
		t.Fatalf("first batch: full=%v services=%d routes=%d, want full with 1 Service and no route", first.Full, len(first.Services), len(first.Routes))
	}
	d.install("gateway.networking.k8s.io/v1", "httproutes")
	k := model.RouteKey{Kind: model.KindHTTPRoute, Namespace: "ns", Name: "r"}
	rec.untilRoute(k, "the route after the CRD is installed", func(r *model.MeshRoute) bool { return r != nil })
}
