package integration

import (
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestOutlierDetection: with switchboard.io/outlier-detection set, a client
// ejects a backend whose every call fails and keeps calling the others
// (gRFC A50). Under plain round robin 40 successful calls in a row could
// never happen while one of three backends fails every call, so the wait
// below holds only once the failing backend is ejected.
func TestOutlierDetection(t *testing.T) {
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 2*time.Minute)
		ctx := s.ctx
		ns := w.Namespace(t)
		b := backends(t, "o", 3)
		b[2].SetFailing(true)
		w.ApplyService(t, policyService(ns, "flaky", "", map[string]string{
			"switchboard.io/outlier-detection": "interval=1s,baseEjectionTime=60s,maxEjectionPercent=50," +
				"enforcingSuccessRate=0,failurePercentageThreshold=50,enforcingFailurePercentage=100," +
				"failurePercentageMinimumHosts=3,failurePercentageRequestVolume=10",
		}))
		w.ApplySlice(t, newSlice(ns, "flaky", "flaky-1", port, ep(b[0], harness.Ready, "z1"), ep(b[1], harness.Ready, "z1"), ep(b[2], harness.Ready, "z1")))
		p := s.client("xds:///flaky." + ns + ":50051")
		start := time.Now()
		rs, err := p.WaitSpread(ctx, 40, b[0].ID(), b[1].ID())
		if err != nil {
			t.Fatalf("%s did not eject the failing backend: %v", kind, err)
		}
		failed := 0
		for _, r := range rs {
			if !r.OK() {
				failed++
			}
		}
		t.Logf("outlier %s: failing backend ejected; 40 calls in a row to the others %v after the wait began (%d failed calls before)", kind, time.Since(start).Round(time.Millisecond), failed)
	})
}
