package integration

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestTimeoutPolicy: switchboard.io/timeout caps every call's deadline
// (route max_stream_duration, gRFC A31). The backends answer after 500 ms
// and the clients' own deadline is 1 s, so calls succeed without the
// annotation; with timeout=100ms they fail with DEADLINE_EXCEEDED.
func TestTimeoutPolicy(t *testing.T) {
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 2*time.Minute)
		ctx := s.ctx
		ns := w.Namespace(t)
		b := backends(t, "s", 1)
		b[0].SetDelay(500 * time.Millisecond)
		slice := newSlice(ns, "slow", "slow-1", port, ep(b[0], harness.Ready, "z1"))
		w.ApplyService(t, policyService(ns, "slow", "", nil))
		w.ApplySlice(t, slice)
		p := s.start(clients.Options{Target: "xds:///slow." + ns + ":50051", TimeoutMS: 1000})
		if _, err := p.WaitOnlyFrom(ctx, 3, b[0].ID()); err != nil {
			t.Fatalf("%s without a timeout annotation: %v", kind, err)
		}
		w.ApplyService(t, policyService(ns, "slow", "", map[string]string{"switchboard.io/timeout": "100ms"}))
		rs, err := p.WaitFailing(ctx, 3, codes.DeadlineExceeded, "")
		if err != nil {
			t.Fatalf("%s did not cap the deadline: %v", kind, err)
		}
		t.Logf("timeout %s: calls fail with %q", kind, rs[len(rs)-1].Err)
	})
}

// TestRetryPolicy: switchboard.io/retry-on=unavailable retries a call that
// failed with UNAVAILABLE (gRFC A44). One of three backends fails every
// call: under round robin without retries a third of the calls fail, so 40
// successes in a row come only from retries on another backend.
func TestRetryPolicy(t *testing.T) {
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 2*time.Minute)
		ctx := s.ctx
		ns := w.Namespace(t)
		b := backends(t, "r", 3)
		b[2].SetFailing(true)
		w.ApplyService(t, policyService(ns, "retried", "", map[string]string{"switchboard.io/retry-on": "unavailable"}))
		w.ApplySlice(t, newSlice(ns, "retried", "retried-1", port, ep(b[0], harness.Ready, "z1"), ep(b[1], harness.Ready, "z1"), ep(b[2], harness.Ready, "z1")))
		p := s.client("xds:///retried." + ns + ":50051")
		if _, err := p.WaitSpread(ctx, 40, b[0].ID(), b[1].ID()); err != nil {
			t.Fatalf("%s did not retry UNAVAILABLE on another backend: %v", kind, err)
		}
	})
}
