package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestRolloutWithoutDrain is TestRollout's deletion without what makes it
// safe: the backends stop at once on SIGTERM (harness.DrainAnnotation "0s"),
// while each client calls in rounds of 4 with no pause. Kubernetes sends
// SIGTERM as it marks the endpoint terminating, so nothing orders the
// backend's exit after the clients' move. It deletes three Pods one by one
// and asserts that calls recover onto the remaining and replacement Pods;
// the calls that failed on the way are counted and logged, not asserted:
// how many fail is a race, and this is what a backend that does not drain
// risks, which TestRollout's do not.
func TestRolloutWithoutDrain(t *testing.T) {
	bin, runner := binaries(t)
	cp, admin := clusterPlane(t)
	eachClusterClient(t, cp, bin, func(t *testing.T, sb *switchboard, kind clients.Kind) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		r := newRollout(t, ctx, admin, sb, kind, "abrupt")
		r.deploy("abrupt", 3, map[string]string{harness.DrainAnnotation: "0s"})
		pods := r.waitRollout("abrupt", 3)
		p := r.startClient(runner, clients.Options{Concurrency: 4, IntervalMS: 1})
		if _, err := p.WaitOK(ctx); err != nil {
			t.Fatalf("first call: %v", err)
		}
		if _, err := p.WaitSpread(ctx, 60, pods...); err != nil {
			t.Fatal(err)
		}
		total, failed := 0, 0
		for range 3 {
			from := p.Len()
			if err := admin.CoreV1().Pods(r.ns).Delete(ctx, pods[0], metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			victim := pods[0]
			pods = r.waitRollout("abrupt", 3)
			if _, err := p.WaitFor(ctx, from, clients.Spread(60, pods...)); err != nil {
				t.Fatalf("calls did not recover after %s was deleted: %v", victim, err)
			}
			rs := p.Results()[from:]
			var bad []string
			for _, res := range rs {
				if !res.OK() {
					bad = append(bad, fmt.Sprintf("%s %q", res.Code, res.Err))
				}
			}
			total += len(rs)
			failed += len(bad)
			t.Logf("no drain, %s: %s deleted: %d of %d calls failed %v", kind, victim, len(bad), len(rs), bad[:min(len(bad), 3)])
		}
		t.Logf("no drain, %s: %d of %d calls failed over three deletions", kind, failed, total)
	})
}
