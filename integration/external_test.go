package integration

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/testbackend"
)

// TestExternalName: an ExternalName Service is served as a LOGICAL_DNS
// cluster; the client resolves the name itself. "localhost" resolves inside
// the test's network namespace to its own loopback, where the backend is.
func TestExternalName(t *testing.T) {
	w, sb, runner := standalone(t)
	b, err := testbackend.Start("127.0.0.1:0", "external")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	ns := w.Namespace(t)
	svc := newService(ns, "outside")
	svc.Spec.Type = corev1.ServiceTypeExternalName
	svc.Spec.ExternalName = "localhost"
	svc.Spec.Selector = nil
	svc.Spec.Ports = []corev1.ServicePort{{Name: "grpc", Port: listenPort(b), Protocol: corev1.ProtocolTCP}}
	w.ApplyService(t, svc)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 2*time.Minute)
		ctx := s.ctx
		p := s.client("xds:///outside." + ns)
		if _, err := p.WaitOnlyFrom(ctx, 10, b.ID()); err != nil {
			t.Fatalf("%s through an ExternalName Service: %v\n%s", kind, err, p.Stderr())
		}
	})
}
