package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/integration/testbackend"
)

// TestServiceKinds runs against the real API server, for each client: a
// headless multi-port Service whose named targetPort resolves to a
// different container port per pod (one slice per port layout, as the
// EndpointSlice controller writes them), and the terminating fallback: with
// no ready endpoint left, serving-terminating ones are used.
func TestServiceKinds(t *testing.T) {
	bin, runner := binaries(t)
	kubeconfig, admin := switchboardKubeconfig(t)
	sb := startSwitchboard(t, bin, "--kubeconfig", kubeconfig)
	w := apiWorld{admin}
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
		ctx := s.ctx
		ns := w.Namespace(t)
		subnet := subnets.Add(1)
		start := func(i int, port int, id string) *testbackend.Backend {
			b, err := testbackend.Start(fmt.Sprintf("10.244.%d.%d:%d", subnet, i, port), id)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Stop() })
			return b
		}
		// Pod 1 serves "grpc" on 8001 and "admin" on 9001; pod 2 on
		// 8002 and 9002: the Service's named targetPorts resolve per pod.
		grpc1, admin1 := start(1, 8001, "grpc-pod1"), start(1, 9001, "admin-pod1")
		grpc2, admin2 := start(2, 8002, "grpc-pod2"), start(2, 9002, "admin-pod2")

		svc := newService(ns, "multi")
		svc.Spec.ClusterIP = corev1.ClusterIPNone
		svc.Spec.Ports = []corev1.ServicePort{
			{Name: "grpc", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("grpc")},
			{Name: "admin", Port: 81, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("admin")},
		}
		w.ApplyService(t, svc)
		layout := func(pod int, state harness.EndpointState, g, a *testbackend.Backend) {
			w.ApplySlice(t, newSlice(ns, "multi", fmt.Sprintf("multi-%d", pod),
				[]harness.Port{{Name: "grpc", Port: listenPort(g)}, {Name: "admin", Port: listenPort(a)}},
				ep(g, state, "z1")))
		}
		layout(1, harness.Ready, grpc1, admin1)
		layout(2, harness.Ready, grpc2, admin2)

		pg := s.client("xds:///multi." + ns + ":80")
		pa := s.client("xds:///multi." + ns + ":81")
		rs, err := pg.WaitSpread(ctx, 40, grpc1.ID(), grpc2.ID())
		s.check("port 80 reaches each pod on its own grpc port", rs, err)
		rs, err = pa.WaitSpread(ctx, 40, admin1.ID(), admin2.ID())
		s.check("port 81 reaches each pod on its own admin port", rs, err)

		// Pod 2 terminating while still serving, pod 1 ready: only pod 1.
		layout(2, harness.Terminating, grpc2, admin2)
		rs, err = pg.WaitOnlyFrom(ctx, 30, grpc1.ID())
		s.check("terminating endpoint left out while a ready one exists", rs, err)
		// Both terminating and serving: kube-proxy's fallback uses them.
		layout(1, harness.Terminating, grpc1, admin1)
		rs, err = pg.WaitSpread(ctx, 40, grpc1.ID(), grpc2.ID())
		s.check("serving-terminating endpoints used when none is ready", rs, err)
		// Not serving either: nothing left, calls fail with UNAVAILABLE.
		layout(1, harness.TerminatingNotServing, grpc1, admin1)
		layout(2, harness.TerminatingNotServing, grpc2, admin2)
		rs, err = pg.WaitFailing(ctx, 5, codes.Unavailable, "")
		s.check("no serving endpoint: UNAVAILABLE", rs, err)
	})
}

// listenPort returns the port a backend listens on.
func listenPort(b *testbackend.Backend) int32 {
	_, p, _ := strings.Cut(b.Addr(), ":")
	var n int32
	_, _ = fmt.Sscan(p, &n)
	return n
}
