package integration

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/translator"
)

// TestVisibility: a Service annotated switchboard.io/visible-to is served
// to clients of the namespaces it lists (bootstrap --namespace); a grpc-go
// client in another namespace fails at once exactly as for a name of no
// Service; editing the annotation moves the Service from one to the other.
func TestVisibility(t *testing.T) {
	w, sb, runner := standalone(t)
	s := newScenario(t, w, sb, runner, clients.GoGRPC, 3*time.Minute)
	ctx := s.ctx
	ns, allowed, other := w.Namespace(t), w.Namespace(t), w.Namespace(t)
	b := backends(t, "v", 1)
	ledger := func(visibleTo string) *corev1.Service {
		return policyService(ns, "ledger", "", map[string]string{translator.AnnotationVisibleTo: visibleTo})
	}
	w.ApplyService(t, ledger(allowed))
	w.ApplySlice(t, newSlice(ns, "ledger", "ledger-1", port, ep(b[0], harness.Ready, "z1")))

	target := "xds:///ledger." + ns + ":50051"
	seer := s.start(clients.Options{Target: target}, "--namespace", allowed)
	rs, err := seer.WaitSpread(ctx, 10, b[0].ID())
	s.check("client in a listed namespace", rs, err)

	blind := s.start(clients.Options{Target: target}, "--namespace", other)
	typo := s.start(clients.Options{Target: "xds:///nosuch." + ns + ":50051"}, "--namespace", other)
	hidden, _, after := s.failsAsUnknown(blind, "ledger."+ns)
	unknown, _, _ := s.failsAsUnknown(typo, "nosuch."+ns)
	t.Logf("client in an unlisted namespace: failed %v after it started: %v %q", after.Round(time.Millisecond), hidden.Code, hidden.Err)
	if got := strings.ReplaceAll(hidden.Err, "ledger", "nosuch"); got != unknown.Err {
		t.Errorf("the hidden Service's error %q differs from an unknown name's %q: its existence shows", hidden.Err, unknown.Err)
	}
	for _, r := range blind.Results() {
		if r.OK() {
			t.Fatalf("client in an unlisted namespace reached %s", r.Backend)
		}
	}

	// The annotation now lists the other namespace instead.
	t0 := time.Now()
	w.ApplyService(t, ledger(other))
	rs, err = blind.WaitSpread(ctx, 10, b[0].ID())
	s.check("client in the namespace the edit listed", rs, err)
	s.reportNew("visibility-gained", t0, rs[slices.IndexFunc(rs, clients.Result.OK)])
	rs, err = seer.WaitFailing(ctx, 5, codes.Unavailable, "")
	s.check("client in the namespace the edit dropped", rs, err)
	t.Logf("visibility lost: calls fail %v after the edit with %q", rs[len(rs)-1].T.Sub(t0).Round(time.Millisecond), rs[len(rs)-1].Err)
}
