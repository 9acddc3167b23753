package integration

import (
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/integration/testbackend"
)

// TestDualStack: one pod in an IPv4 and an IPv6 slice is one endpoint whose
// IPv4 address is primary and whose IPv6 address is an additional address
// (gRFC A61). The backend listens on the IPv6 address only, so a call
// succeeds only through the additional address. grpc-go and grpc-js-xds
// use it; C-core 1.51 does not (it predates A61) and fails. The test
// asserts what each client does today, so a change in a client shows.
func TestDualStack(t *testing.T) {
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 2*time.Minute)
		ctx := s.ctx
		b, err := testbackend.Start("[::1]:0", "v6-only")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Stop() })
		_, p, _ := net.SplitHostPort(b.Addr())
		var portNum int32
		_, _ = fmt.Sscan(p, &portNum)
		ports := []harness.Port{{Name: "grpc", Port: portNum}}
		ns := w.Namespace(t)
		w.ApplyService(t, newService(ns, "dual", ports...))
		// Nothing listens on 10.244.255.1 (in BackendCIDR, local to the
		// namespace): connecting there is refused at once.
		v4 := newSlice(ns, "dual", "dual-v4", ports, harness.Endpoint{Address: "10.244.255.1", State: harness.Ready, Zone: "z1", Pod: "pod-1"})
		v6 := newSlice(ns, "dual", "dual-v6", ports, harness.Endpoint{Address: "::1", State: harness.Ready, Zone: "z1", Pod: "pod-1"})
		v6.AddressType = discoveryv1.AddressTypeIPv6
		w.ApplySlice(t, v4)
		w.ApplySlice(t, v6)
		c := s.client("xds:///dual." + ns)
		switch kind {
		case clients.GoGRPC, clients.NodeGRPCJS:
			rs, err := c.WaitOnlyFrom(ctx, 10, b.ID())
			if err != nil {
				t.Fatalf("%s: calls through the additional (IPv6) address: %v", kind, err)
			}
			t.Logf("%s uses additional addresses (A61): %d calls reached the IPv6-only backend", kind, len(rs))
		default:
			rs, err := c.WaitFailing(ctx, 5, codes.Unavailable, "")
			if err != nil {
				t.Fatalf("%s: expected calls to fail (no A61: only the primary IPv4 address is tried); %v", kind, err)
			}
			t.Logf("%s does not use additional addresses: %q", kind, rs[len(rs)-1].Err)
		}
	})
}
