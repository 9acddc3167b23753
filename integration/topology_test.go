package integration

import (
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestTopologyZones: with trafficDistribution PreferClose a client in
// zone-a calls only zone-a endpoints while zone-a is at least 50 % healthy,
// and all ready endpoints once it drops below; a client without a zone
// always calls every ready endpoint. Each client kind gets the same story.
func TestTopologyZones(t *testing.T) {
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
		ctx := s.ctx
		ns := w.Namespace(t)
		b := backends(t, "z", 4)
		svc := newService(ns, "near", port...)
		prefer := "PreferClose"
		svc.Spec.TrafficDistribution = &prefer
		w.ApplyService(t, svc)
		slice := func(states ...harness.EndpointState) {
			w.ApplySlice(t, newSlice(ns, "near", "near-1", port,
				ep(b[0], states[0], "zone-a"), ep(b[1], states[1], "zone-a"), ep(b[2], states[2], "zone-a"),
				ep(b[3], harness.Ready, "zone-b")))
		}
		slice(harness.Ready, harness.Ready, harness.Ready)

		target := clients.Options{Target: "xds:///near." + ns + ":50051"}
		inA := s.start(target, "--zone", "zone-a")
		anywhere := s.start(target)
		rs, err := inA.WaitSpread(ctx, 60, ids(b[0], b[1], b[2])...)
		s.check("zone-a client calls zone-a only", rs, err)
		rs, err = anywhere.WaitSpread(ctx, 80, ids(b...)...)
		s.check("zone-less client calls every zone", rs, err)

		// 2 of 3 ready (66 %): zone-a still preferred.
		slice(harness.NotReady, harness.Ready, harness.Ready)
		rs, err = inA.WaitSpread(ctx, 40, ids(b[1], b[2])...)
		s.check("zone-a at 66% stays in zone-a", rs, err)

		// 1 of 3 ready (33 % < 50 %): the server widens priority 0.
		t0 := time.Now()
		slice(harness.NotReady, harness.NotReady, harness.Ready)
		rs, err = inA.WaitSpread(ctx, 40, ids(b[2], b[3])...)
		s.check("zone-a at 33% fails over to every ready endpoint", rs, err)
		for _, r := range rs {
			if r.Backend == b[3].ID() {
				t.Logf("failover %s: first call to zone-b %v after the change", kind, r.T.Sub(t0).Round(time.Millisecond))
				break
			}
		}
	})
}
