package integration

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/internal/poll"
)

// TestMeshRoutesCRDRemoved: deleting the GRPCRoute CRD while Switchboard
// runs deletes every GRPCRoute with it (the API server's CRD finalizer),
// and Switchboard follows: a grpc-go client sent to v2 by a route goes back
// to the Service's own endpoints, with at most a few calls failing in the
// instant the client switches clusters (see below). Installing the CRD
// again and creating the route again steers the client again, without a
// restart: the informer's reflector keeps retrying while the kind is gone.
func TestMeshRoutesCRDRemoved(t *testing.T) {
	bin, runner := binaries(t)
	cp, admin := controlPlane(t)
	installGatewayCRDs(t, admin)
	// Whatever happens here, the tests after this one find the CRDs.
	t.Cleanup(func() { installGatewayCRDs(t, admin) })
	gw, err := gatewayclient.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, _ := switchboardKubeconfig(t)
	sb := startSwitchboard(t, bin, "--kubeconfig", kubeconfig)
	w := apiWorld{admin}
	s := newScenario(t, w, sb, runner, clients.GoGRPC, 3*time.Minute)
	ctx := s.ctx

	ns := w.Namespace(t)
	b := backends(t, "crd", 2)
	for _, svc := range []string{"front", "v2"} {
		w.ApplyService(t, newService(ns, svc, port...))
	}
	w.ApplySlice(t, newSlice(ns, "front", "front-1", port, ep(b[0], harness.Ready, "z1")))
	w.ApplySlice(t, newSlice(ns, "v2", "v2-1", port, ep(b[1], harness.Ready, "z1")))
	group, kind, p := gwv1.Group(""), gwv1.Kind("Service"), gwv1.PortNumber(grpcPort)
	route := &gwv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "to-v2"},
		Spec: gwv1.GRPCRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Group: &group, Kind: &kind, Name: "front", Port: &p}}},
			Rules: []gwv1.GRPCRouteRule{{BackendRefs: []gwv1.GRPCBackendRef{
				{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "v2", Port: &p}}},
			}}},
		},
	}
	create := func() {
		t.Helper()
		if _, err := gw.GatewayV1().GRPCRoutes(ns).Create(ctx, route.DeepCopy(), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create()
	c := s.start(clients.Options{Target: "xds:///front." + ns + ":50051", IntervalMS: 1})
	_, err = c.WaitOnlyFrom(ctx, 20, b[1].ID())
	s.check("the route sends every call to v2", nil, err)

	from := c.Len()
	deleteCRD(t, admin, "grpcroutes.gateway.networking.k8s.io")
	_, err = c.WaitOnlyFrom(ctx, 20, b[0].ID())
	s.check("with the CRD gone, calls go to front's own endpoint", nil, err)
	// grpc-go can fail a call with "unknown cluster selected for RPC" in
	// the instant its route moves the calls to a cluster it was not using
	// (a race inside the client between its config selector and its
	// cluster manager; grpc-java fixed the same in grpc/grpc-java#11947):
	// one call in two of four runs here, never while the route stood
	// still. So a few failed calls are logged, and more fail the test.
	failed := 0
	for _, r := range c.Results()[from:] {
		if !r.OK() {
			failed++
			t.Logf("a call failed while the route moved: %s", r)
		}
	}
	if failed > 3 {
		t.Errorf("%d calls failed while the CRD was removed, want at most 3", failed)
	}

	installGatewayCRDs(t, admin)
	// The new CRD is served before the informer's next retry lists it; a
	// create can race the API server's own cache of the new kind, so retry.
	poll.Until(t, 30*time.Second, "the route created again", func() bool {
		_, err := gw.GatewayV1().GRPCRoutes(ns).Create(ctx, route.DeepCopy(), metav1.CreateOptions{})
		return err == nil || apierrors.IsAlreadyExists(err)
	})
	_, err = c.WaitOnlyFrom(ctx, 20, b[1].ID())
	s.check("the route steers again once the CRD is back", nil, err)
	_ = gw.GatewayV1().GRPCRoutes(ns).Delete(context.Background(), "to-v2", metav1.DeleteOptions{})
}

// deleteCRD deletes the CustomResourceDefinition name and waits until the
// API server has finished (its finalizer deletes every object of the kind).
func deleteCRD(t *testing.T, admin kubernetes.Interface, name string) {
	t.Helper()
	ctx := opCtx(t)
	path := "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + name
	if err := admin.CoreV1().RESTClient().Delete().AbsPath(path).Do(ctx).Error(); err != nil {
		t.Fatalf("delete CRD %s: %v", name, err)
	}
	poll.Until(t, time.Minute, "CRD "+name+" gone", func() bool {
		err := admin.CoreV1().RESTClient().Get().AbsPath(path).Do(ctx).Error()
		return apierrors.IsNotFound(err)
	})
}
