package integration

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestNames: short names resolve in the client's namespace (bootstrap
// --namespace), and a name that does not exist fails at once (Switchboard
// answers the subscription without it) rather than after a client's 15 s
// does-not-exist timer.
func TestNames(t *testing.T) {
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
		ctx := s.ctx
		ns := w.Namespace(t)
		b := backends(t, "n", 1)
		w.ApplyService(t, newService(ns, "greeter", port...))
		w.ApplySlice(t, newSlice(ns, "greeter", "greeter-1", port, ep(b[0], harness.Ready, "z1")))
		short := s.start(clients.Options{Target: "xds:///greeter:50051"}, "--namespace", ns)
		shortest := s.start(clients.Options{Target: "xds:///greeter"}, "--namespace", ns)
		typo := s.client("xds:///greeeter." + ns + ":50051")
		for _, p := range []*clients.Process{short, shortest} {
			rs, err := p.WaitSpread(ctx, 10, b[0].ID())
			s.check("short name in the client's namespace", rs, err)
		}
		if kind == clients.NodeGRPCJS {
			// grpc-js-xds waits on a route that matches nothing, as it
			// waits on a missing listener: its calls time out.
			rs, err := typo.WaitFailing(ctx, 3, codes.DeadlineExceeded, "")
			s.check("grpc-js-xds typo times out", rs, err)
			t.Logf("typo %s: calls time out: %q", kind, rs[len(rs)-1].Err)
			return
		}
		rs, err := typo.WaitFor(ctx, 0, func(rs []clients.Result) bool { return len(rs) > 0 })
		s.check("typo answered", rs, err)
		first := rs[0]
		t.Logf("typo %s: first call failed %v after the client started: %v %q", kind, first.T.Sub(typo.Started()).Round(time.Millisecond), first.Code, first.Err)
		if first.Code != codes.Unavailable || !strings.Contains(first.Err, "greeeter") {
			t.Fatalf("first call to a typo: %v %q, want UNAVAILABLE naming the target", first.Code, first.Err)
		}
	})
}
