package integration

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/internal/poll"
)

// policyService is newService with annotations and an appProtocol on its
// one port.
func policyService(ns, name, appProtocol string, ann map[string]string) *corev1.Service {
	svc := newService(ns, name, port...)
	svc.Annotations = ann
	if appProtocol != "" {
		svc.Spec.Ports[0].AppProtocol = &appProtocol
	}
	return svc
}

// serveThree applies a Service with three ready backends and returns their ids.
func serveThree(t *testing.T, w world, ns, name, appProtocol string, ann map[string]string) []string {
	t.Helper()
	b := backends(t, name[:1], 3)
	w.ApplyService(t, policyService(ns, name, appProtocol, ann))
	w.ApplySlice(t, newSlice(ns, name, name+"-1", port, ep(b[0], harness.Ready, "z1"), ep(b[1], harness.Ready, "z1"), ep(b[2], harness.Ready, "z1")))
	return ids(b...)
}

// TestPolicyRingHash: with lb-policy ring_hash and a hash header, every call
// carrying the same header value reaches the same backend, in grpc-go and
// grpc-js-xds. C-core 1.51 (Debian's python3-grpcio) dies with a
// segmentation fault on a ring_hash cluster, with or without
// GRPC_EXPERIMENTAL_XDS_CUSTOM_LB_CONFIG (measured), so Switchboard serves
// C-core clients the round-robin variant: they spread, and live.
func TestPolicyRingHash(t *testing.T) {
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
		ctx := s.ctx
		ns := w.Namespace(t)
		all := serveThree(t, w, ns, "sticky", "", map[string]string{
			"switchboard.io/lb-policy":   "ring_hash",
			"switchboard.io/hash-header": "x-user",
		})
		if kind == clients.PythonCCore {
			// C-core gets the round-robin variant of the cluster
			// (model.ClassCCore): it must not crash, and it
			// spreads its calls.
			p := s.start(clients.Options{Target: "xds:///sticky." + ns + ":50051", Header: map[string]string{"x-user": "alice"}})
			if _, err := p.WaitSpread(ctx, 60, all...); err != nil {
				t.Fatalf("C-core on a ring_hash Service: %v\n%s", err, p.Stderr())
			}
			return
		}
		for _, user := range []string{"alice", "bob"} {
			p := s.start(clients.Options{
				Target:    "xds:///sticky." + ns + ":50051",
				Bootstrap: sb.bootstrap(t.Name() + "-" + user),
				Header:    map[string]string{"x-user": user},
			})
			// 40 calls in a row from one backend; round robin would
			// have used all three by then.
			rs, err := p.WaitFor(ctx, 0, func(w []clients.Result) bool {
				if len(w) < 40 {
					return false
				}
				last := w[len(w)-40:]
				for _, r := range last {
					if !r.OK() || r.Backend != last[0].Backend {
						return false
					}
				}
				return true
			})
			if err != nil {
				t.Fatalf("%s x-user=%s: waiting for 40 calls in a row to one backend: %v (exit: %v)\n%s", kind, user, err, p.Stop(), p.Stderr())
			}
			got := rs[len(rs)-1].Backend
			for _, r := range rs {
				if r.OK() && r.Backend != got {
					t.Errorf("%s x-user=%s: a call reached %s, later ones %s", kind, user, r.Backend, got)
					break
				}
			}
			t.Logf("%s x-user=%s: every call to %s (of %v)", kind, user, got, all)
		}
		if n := nacks(t, sb, t.Name()); n != 0 {
			t.Errorf("%s NACKed %d responses", kind, n)
		}
	})
}

// TestPolicyAccepted: Services with least_request, wrr, and a cluster and
// route carrying every other policy (outlier detection, max requests,
// timeout, retries, an HTTP/2 appProtocol) are served by every client
// without a NACK. grpc-go runs least_request and wrr; clients without them
// fall back to round robin through the load_balancing_policy list, so calls
// spread over every backend in all of them.
func TestPolicyAccepted(t *testing.T) {
	w, sb, runner := standalone(t)
	cases := []struct {
		name, appProtocol string
		ann               map[string]string
	}{
		{"least", "", map[string]string{"switchboard.io/lb-policy": "least_request"}},
		{"weighted", "", map[string]string{"switchboard.io/lb-policy": "wrr"}},
		{"guarded", "kubernetes.io/h2c", map[string]string{
			"switchboard.io/outlier-detection": "interval=1s,baseEjectionTime=5s,maxEjectionPercent=50,failurePercentageThreshold=90,enforcingFailurePercentage=100",
			"switchboard.io/max-requests":      "100",
			"switchboard.io/timeout":           "5s",
			"switchboard.io/retry-on":          "unavailable,cancelled",
		}},
	}
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
		ctx := s.ctx
		ns := w.Namespace(t)
		for _, c := range cases {
			all := serveThree(t, w, ns, c.name, c.appProtocol, c.ann)
			node := t.Name() + "-" + c.name
			p := s.start(clients.Options{Target: "xds:///" + c.name + "." + ns + ":50051", Bootstrap: sb.bootstrap(node)})
			if _, err := p.WaitSpread(ctx, 30, all...); err != nil {
				t.Fatalf("%s %s: %v\n%s", kind, c.name, err, p.Stderr())
			}
			if n := nacks(t, sb, node); n != 0 {
				t.Errorf("%s %s: %d NACKs", kind, c.name, n)
			}
		}
	})
}

// TestPolicyInvalidAnnotation: an invalid lb-policy leaves the Service
// serving with round robin (spread over every backend), shows in
// /debug/diagnostics naming annotation and value, and does not touch a
// neighbour whose annotations are valid.
func TestPolicyInvalidAnnotation(t *testing.T) {
	w, sb, runner := standalone(t)
	s := newScenario(t, w, sb, runner, clients.GoGRPC, 3*time.Minute)
	ctx := s.ctx
	ns := w.Namespace(t)
	all := serveThree(t, w, ns, "broken", "", map[string]string{"switchboard.io/lb-policy": "maglev"})
	neighbour := serveThree(t, w, ns, "fine", "", map[string]string{"switchboard.io/timeout": "2s"})
	rs, err := s.client("xds:///broken."+ns+":50051").WaitSpread(ctx, 30, all...)
	s.check("invalid lb-policy serves with round robin", rs, err)
	rs, err = s.client("xds:///fine."+ns+":50051").WaitSpread(ctx, 30, neighbour...)
	s.check("neighbour untouched", rs, err)

	want := func(d diagnostic) bool {
		return d.Service == ns+"/broken" && strings.Contains(d.Reason, "switchboard.io/lb-policy") && strings.Contains(d.Reason, `"maglev"`)
	}
	ds := waitDiagnostic(t, sb, want)
	for _, d := range ds {
		if d.Service == ns+"/fine" {
			t.Errorf("neighbour has a diagnostic: %+v", d)
		}
	}
}

// diagnostic is one entry of /debug/diagnostics.
type diagnostic struct {
	Service string `json:"service"`
	Port    string `json:"port"`
	Reason  string `json:"reason"`
}

// waitDiagnostic polls /debug/diagnostics until one entry satisfies ok and
// returns them all.
func waitDiagnostic(t *testing.T, sb *switchboard, ok func(diagnostic) bool) []diagnostic {
	t.Helper()
	var ds []diagnostic
	var body string
	if !poll.Wait(30*time.Second, func() bool {
		_, body = sb.get("/debug/diagnostics")
		ds = nil
		if err := json.Unmarshal([]byte(body), &ds); err != nil {
			t.Fatalf("/debug/diagnostics: %v: %s", err, body)
		}
		return slices.ContainsFunc(ds, ok)
	}) {
		t.Fatalf("no matching diagnostic after 30s in:\n%s", body)
	}
	return ds
}

// nacks returns the NACKs /debug/clients counts for the streams of nodeID.
func nacks(t *testing.T, sb *switchboard, nodeID string) int {
	t.Helper()
	_, body := sb.get("/debug/clients")
	var cs []struct {
		NodeID string `json:"node_id"`
		Types  map[string]struct {
			Nacks    int    `json:"nacks"`
			LastNack string `json:"last_nack"`
		} `json:"types"`
	}
	if err := json.Unmarshal([]byte(body), &cs); err != nil {
		t.Fatalf("/debug/clients: %v: %s", err, body)
	}
	n := 0
	for _, c := range cs {
		if c.NodeID != nodeID {
			continue
		}
		for typ, s := range c.Types {
			if s.Nacks > 0 {
				t.Logf("%s %s NACK: %s", nodeID, typ, s.LastNack)
			}
			n += s.Nacks
		}
	}
	return n
}
