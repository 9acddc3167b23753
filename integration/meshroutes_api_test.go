package integration

import (
	"context"
	"math"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/internal/poll"
)

// installGatewayCRDs installs the standard-channel CRDs of GRPCRoute,
// HTTPRoute and ReferenceGrant from the pinned sigs.k8s.io/gateway-api
// module and waits until they are served.
func installGatewayCRDs(t *testing.T, admin kubernetes.Interface) {
	t.Helper()
	if err := harness.InstallGatewayCRDs(opCtx(t), admin, harness.GatewayAPIKinds...); err != nil {
		t.Fatal(err)
	}
}

// TestMeshRoutesAPIServer: with the Gateway API CRDs installed from the
// pinned module, a GRPCRoute created in the API server splits each client's
// calls 80/20, as Switchboard (with its least-privilege identity)
// reads it through informers; the replica holding the Lease writes the
// route's status.parents (Accepted, ResolvedRefs at observedGeneration),
// and a route sending to a missing Service reads ResolvedRefs False.
func TestMeshRoutesAPIServer(t *testing.T) {
	bin, runner := binaries(t)
	cp, admin := controlPlane(t)
	installGatewayCRDs(t, admin)
	gw, err := gatewayclient.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, _ := switchboardKubeconfig(t)
	sb := startSwitchboard(t, bin, "--kubeconfig", kubeconfig)
	w := apiWorld{admin}
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		meshRoutesAPIServer(t, newScenario(t, w, sb, runner, kind, 3*time.Minute), w, gw)
	})
}

func meshRoutesAPIServer(t *testing.T, s *scenario, w apiWorld, gw gatewayclient.Interface) {
	ns := w.Namespace(t)
	b := backends(t, "api", 2)
	for _, svc := range []string{"front", "v1", "v2"} {
		w.ApplyService(t, newService(ns, svc, port...))
	}
	w.ApplySlice(t, newSlice(ns, "v1", "v1-1", port, ep(b[0], harness.Ready, "z1")))
	w.ApplySlice(t, newSlice(ns, "v2", "v2-1", port, ep(b[1], harness.Ready, "z1")))
	group, kind, p := gwv1.Group(""), gwv1.Kind("Service"), gwv1.PortNumber(grpcPort)
	weight := func(n int32) *int32 { return &n }
	route := &gwv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "front"},
		Spec: gwv1.GRPCRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Group: &group, Kind: &kind, Name: "front", Port: &p}}},
			Rules: []gwv1.GRPCRouteRule{{BackendRefs: []gwv1.GRPCBackendRef{
				{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "v1", Port: &p}, Weight: weight(80)}},
				{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "v2", Port: &p}, Weight: weight(20)}},
			}}},
		},
	}
	ctx := s.ctx
	if _, err := gw.GatewayV1().GRPCRoutes(ns).Create(ctx, route, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The API server is shared: other tests' sidecar clients see every
	// namespace (and namespaces never finish terminating without
	// controllers), so the route goes with the test.
	t.Cleanup(func() {
		_ = gw.GatewayV1().GRPCRoutes(ns).Delete(context.Background(), "front", metav1.DeleteOptions{})
	})
	c := s.start(clients.Options{Target: "xds:///front." + ns + ":50051", IntervalMS: 1})
	_, err := c.WaitSpread(ctx, 2, b[0].ID(), b[1].ID())
	s.check("both shares answer", nil, err)
	rs, err := c.WaitFor(ctx, c.Len(), func(w []clients.Result) bool { return len(w) >= 1000 })
	s.check("1000 calls", rs, err)
	v2 := 0
	for _, r := range rs[:1000] {
		if r.Backend == b[1].ID() {
			v2++
		}
	}
	t.Logf("%s through the API server: v2 got %d of 1000 calls", s.kind, v2)
	if math.Abs(float64(v2)/10-20) > 5 {
		t.Errorf("v2 got %d of 1000 calls, want 200 ± 50", v2)
	}

	conditions := func() (gen int64, accepted, resolved *metav1.Condition) {
		r, err := gw.GatewayV1().GRPCRoutes(ns).Get(ctx, "front", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ps := range r.Status.Parents {
			if ps.ControllerName != "switchboard.io/mesh" {
				continue
			}
			for i := range ps.Conditions {
				switch ps.Conditions[i].Type {
				case "Accepted":
					accepted = &ps.Conditions[i]
				case "ResolvedRefs":
					resolved = &ps.Conditions[i]
				}
			}
		}
		return r.Generation, accepted, resolved
	}
	poll.Until(t, 30*time.Second, "status written: Accepted, ResolvedRefs", func() bool {
		gen, a, r := conditions()
		return a != nil && r != nil && a.Status == metav1.ConditionTrue && r.Status == metav1.ConditionTrue && r.ObservedGeneration == gen
	})
	cur, err := gw.GatewayV1().GRPCRoutes(ns).Get(ctx, "front", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Rules[0].BackendRefs[1].Name = "missing"
	if _, err := gw.GatewayV1().GRPCRoutes(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "ResolvedRefs False (BackendNotFound) at the new generation", func() bool {
		gen, _, r := conditions()
		return r != nil && r.Status == metav1.ConditionFalse && r.Reason == "BackendNotFound" && r.ObservedGeneration == gen
	})
	_, _, r := conditions()
	t.Logf("status: %s %s %q", r.Type, r.Reason, r.Message)
}
