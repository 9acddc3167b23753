package integration

import (
	"fmt"
	"math"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/internal/poll"
)

// applyRoute writes a Gateway API route manifest into the folder world,
// renamed into place as any other object.
func (w folderWorld) applyRoute(t *testing.T, namespace, name, yaml string) {
	t.Helper()
	w.writeBytes(t, w.path("route", namespace, name), []byte(yaml))
}

// meshWorld is a Service "front" (no endpoints of its own) and two backend
// Services v1 and v2, one test backend each, in a namespace of the test's
// own; it returns the namespace and the two backends.
func meshWorld(t *testing.T, w folderWorld, prefix string) (string, string, string) {
	t.Helper()
	ns := w.Namespace(t)
	b := backends(t, prefix, 2)
	for _, svc := range []string{"front", "v1", "v2"} {
		s := newService(ns, svc, port...)
		s.Spec.ClusterIP = w.NewClusterIP()
		w.ApplyService(t, s)
	}
	w.ApplySlice(t, newSlice(ns, "v1", "v1-1", port, ep(b[0], harness.Ready, "z1")))
	w.ApplySlice(t, newSlice(ns, "v2", "v2-1", port, ep(b[1], harness.Ready, "z1")))
	return ns, b[0].ID(), b[1].ID()
}

// TestMeshRouteSplit: a GRPCRoute on Service front splits its calls 80/20
// between Services v1 and v2 (weighted_clusters, decided per call). Over
// 1000 calls, v2's share must be within 5 points of 20 %.
func TestMeshRouteSplit(t *testing.T) {
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
		ns, v1, v2 := meshWorld(t, w, "split")
		w.applyRoute(t, ns, "front", fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: front, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: front, port: %d}]
  rules:
  - backendRefs:
    - {name: v1, port: %d, weight: 80}
    - {name: v2, port: %d, weight: 20}
`, ns, grpcPort, grpcPort, grpcPort))
		p := s.start(clients.Options{Target: "xds:///front." + ns + ":50051", IntervalMS: 1})
		// The route is in place once both backends answered.
		_, err := p.WaitSpread(s.ctx, 2, v1, v2)
		s.check("both shares answer", nil, err)
		const n = 1000
		from := p.Len()
		rs, err := p.WaitFor(s.ctx, from, func(w []clients.Result) bool { return len(w) >= n })
		s.check("1000 calls", rs, err)
		count := map[string]int{}
		for _, r := range rs[:n] {
			if !r.OK() {
				t.Fatalf("%s: call failed: %s", kind, r)
			}
			count[r.Backend]++
		}
		share := 100 * float64(count[v2]) / n
		t.Logf("%s: %d calls, v1 %d, v2 %d: v2 share %.1f %% (want 20 ± 5)", kind, n, count[v1], count[v2], share)
		if count[v1]+count[v2] != n || math.Abs(share-20) > 5 {
			t.Errorf("%s: split %v over %d calls, want 80/20 within 5 points", kind, count, n)
		}
	})
}

// TestMeshRouteMatches: a GRPCRoute sends calls with header x-canary: true
// to v2, calls of method grpc.health.v1.Health/Check to v2 only while the
// method rule names Check, and everything else to v1.
func TestMeshRouteMatches(t *testing.T) {
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
		ns, v1, v2 := meshWorld(t, w, "match")
		route := func(method string) string {
			return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: front, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: front}]
  rules:
  - backendRefs: [{name: v1, port: %[2]d}]
  - matches: [{headers: [{name: x-canary, value: "true"}]}]
    backendRefs: [{name: v2, port: %[2]d}]
  - matches: [{method: {service: grpc.health.v1.Health, method: %[3]s}, headers: [{name: x-method-test, value: "yes"}]}]
    backendRefs: [{name: v2, port: %[2]d}]
`, ns, grpcPort, method)
		}
		w.applyRoute(t, ns, "front", route("Check"))
		target := "xds:///front." + ns + ":50051"
		plain := s.start(clients.Options{Target: target})
		canary := s.start(clients.Options{Target: target, Header: map[string]string{"x-canary": "true"}})
		method := s.start(clients.Options{Target: target, Header: map[string]string{"x-method-test": "yes"}})
		rs, err := plain.WaitOnlyFrom(s.ctx, 20, v1)
		s.check("no header: v1 only", rs, err)
		rs, err = canary.WaitOnlyFrom(s.ctx, 20, v2)
		s.check("x-canary: v2 only", rs, err)
		rs, err = method.WaitOnlyFrom(s.ctx, 20, v2)
		s.check("method Check matched: v2 only", rs, err)
		// The method rule now names another method: Check calls fall
		// through to the first rule.
		w.applyRoute(t, ns, "front", route("Watch"))
		rs, err = method.WaitOnlyFrom(s.ctx, 20, v1)
		s.check("method Watch not matched: v1 only", rs, err)
		rs, err = canary.WaitOnlyFrom(s.ctx, 20, v2)
		s.check("x-canary still v2", rs, err)
	})
}

// TestMeshRouteUnresolvedShare: a backendRef to a Service that does not
// exist fails its share of calls, and only that share, at once with
// UNAVAILABLE (the port's failing cluster, an EDS cluster without
// endpoints), in every client; the other share keeps reaching v1.
func TestMeshRouteUnresolvedShare(t *testing.T) {
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
		ns, v1, _ := meshWorld(t, w, "miss")
		w.applyRoute(t, ns, "front", fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: front, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: front}]
  rules:
  - backendRefs:
    - {name: v1, port: %[2]d, weight: 50}
    - {name: missing, port: %[2]d, weight: 50}
`, ns, grpcPort))
		p := s.start(clients.Options{Target: "xds:///front." + ns + ":50051", IntervalMS: 2})
		_, err := p.WaitBackend(s.ctx, v1)
		s.check("v1's share answers", nil, err)
		const n = 400
		rs, err := p.WaitFor(s.ctx, p.Len(), func(w []clients.Result) bool { return len(w) >= n })
		s.check("400 calls", rs, err)
		ok, unavailable := 0, 0
		var slowest time.Duration
		for i, r := range rs[:n] {
			switch {
			case r.OK() && r.Backend == v1:
				ok++
			case r.Code == codes.Unavailable:
				unavailable++
			default:
				t.Fatalf("%s: unexpected result %s", kind, r)
			}
			if i > 0 {
				slowest = max(slowest, r.T.Sub(rs[i-1].T))
			}
		}
		t.Logf("%s: %d calls: %d to v1, %d UNAVAILABLE (%q); longest gap between calls %v", kind, n, ok, unavailable, lastErr(rs[:n]), slowest)
		if share := 100 * float64(unavailable) / n; math.Abs(share-50) > 10 {
			t.Errorf("%s: %.1f %% of calls failed, want 50 ± 10", kind, share)
		}
		if slowest > time.Second {
			t.Errorf("%s: a call took %v: failing calls must fail at once", kind, slowest)
		}
	})
}

func lastErr(rs []clients.Result) string {
	for i := len(rs) - 1; i >= 0; i-- {
		if !rs[i].OK() {
			return rs[i].Err
		}
	}
	return ""
}

// TestMeshConsumerRoute: a route in the Service's namespace (producer)
// applies to every client; one in another namespace (consumer) applies
// only to the clients of that namespace, in place of the producer route,
// and deleting it gives them the producer route again.
func TestMeshConsumerRoute(t *testing.T) {
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
		ns, v1, v2 := meshWorld(t, w, "cons")
		team := w.Namespace(t)
		route := func(in, backend string) string {
			return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: front, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: front, namespace: %s}]
  rules:
  - backendRefs: [{name: %s, namespace: %[2]s, port: %[4]d}]
`, in, ns, backend, grpcPort)
		}
		w.applyRoute(t, ns, "front", route(ns, "v1"))
		// The consumer route sends to v2 in the Service's namespace: a
		// ReferenceGrant lets routes of the team's namespace do so.
		w.writeBytes(t, w.path("grant", ns, "team"), fmt.Appendf(nil, `apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: team, namespace: %s}
spec:
  from: [{group: gateway.networking.k8s.io, kind: GRPCRoute, namespace: %s}]
  to: [{group: "", kind: Service, name: v2}]
`, ns, team))
		w.applyRoute(t, team, "front", route(team, "v2"))
		target := "xds:///front." + ns + ":50051"
		other := s.start(clients.Options{Target: target}, "--namespace", ns)
		member := s.start(clients.Options{Target: target}, "--namespace", team)
		rs, err := other.WaitOnlyFrom(s.ctx, 20, v1)
		s.check("producer route for the Service's namespace", rs, err)
		rs, err = member.WaitOnlyFrom(s.ctx, 20, v2)
		s.check("consumer route for its namespace", rs, err)
		w.remove(t, w.path("route", team, "front"))
		rs, err = member.WaitOnlyFrom(s.ctx, 20, v1)
		s.check("producer route once the consumer route is gone", rs, err)
	})
}

// TestMeshRouteTimeoutAndRetry: an HTTPRoute's timeouts.request caps every
// call's deadline (max_stream_duration), and its retry on 503 retries calls
// that fail with UNAVAILABLE on another backend (gRPC's HTTP-to-status
// mapping). The slow backend answers after 500 ms and the client's own
// deadline is 1 s, so only the route's timeout fails those calls; one of
// the three flaky backends fails every call, so 40 successes in a row from
// the other two come only from retries.
func TestMeshRouteTimeoutAndRetry(t *testing.T) {
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
		ns := w.Namespace(t)
		b := backends(t, "tr", 4)
		for _, svc := range []string{"front", "slow", "flaky"} {
			sv := newService(ns, svc, port...)
			sv.Spec.ClusterIP = w.NewClusterIP()
			w.ApplyService(t, sv)
		}
		b[0].SetDelay(500 * time.Millisecond)
		b[3].SetFailing(true)
		w.ApplySlice(t, newSlice(ns, "slow", "slow-1", port, ep(b[0], harness.Ready, "z1")))
		w.ApplySlice(t, newSlice(ns, "flaky", "flaky-1", port, ep(b[1], harness.Ready, "z1"), ep(b[2], harness.Ready, "z1"), ep(b[3], harness.Ready, "z1")))
		w.applyRoute(t, ns, "front", fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: front, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: front}]
  rules:
  - matches: [{headers: [{name: x-slow, value: "yes"}]}]
    timeouts: {request: 100ms}
    backendRefs: [{name: slow, port: %[2]d}]
  - retry: {codes: [503], attempts: 2}
    backendRefs: [{name: flaky, port: %[2]d}]
`, ns, grpcPort))
		target := "xds:///front." + ns + ":50051"
		slow := s.start(clients.Options{Target: target, TimeoutMS: 1000, Header: map[string]string{"x-slow": "yes"}})
		rs, err := slow.WaitFailing(s.ctx, 3, codes.DeadlineExceeded, "")
		s.check("timeouts.request caps the deadline", rs, err)
		flaky := s.client(target)
		rs, err = flaky.WaitSpread(s.ctx, 40, b[1].ID(), b[2].ID())
		s.check("retry on 503 retries UNAVAILABLE on another backend", rs, err)
	})
}

// TestMeshRouteDiagnostics: what gRPC clients cannot get of a route is
// reported in /debug/diagnostics (route, feature, flavour), counted in
// switchboard_route_features_not_applied_total, and shown in the route's
// status conditions (/debug/routes and `switchboard status --routes`), in
// standalone mode.
func TestMeshRouteDiagnostics(t *testing.T) {
	w, sb, _ := standalone(t)
	ns := w.Namespace(t)
	for _, name := range []string{"web", "v1"} {
		s := newService(ns, name, port...)
		s.Spec.ClusterIP = w.NewClusterIP()
		w.ApplyService(t, s)
	}
	w.applyRoute(t, ns, "web", fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - matches: [{path: {value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
  - backendRefs: [{name: v1, port: %d}]
`, ns, grpcPort))
	poll.Until(t, 10*time.Second, "the diagnostic in /debug/diagnostics", func() bool {
		_, body := sb.get("/debug/diagnostics")
		return strings.Contains(body, `"route": "HTTPRoute `+ns+`/web"`) && strings.Contains(body, `"feature": "RequestRedirect"`) &&
			strings.Contains(body, `"flavour": "grpc"`)
	})
	_, metrics := sb.get("/metrics")
	if !strings.Contains(metrics, `switchboard_route_features_not_applied_total{feature="RequestRedirect",flavour="grpc"} 1`) {
		t.Errorf("/metrics does not count the RequestRedirect gRPC clients do not get")
	}
	_, routes := sb.get("/debug/routes")
	if !strings.Contains(routes, "UnsupportedValue") {
		t.Errorf("/debug/routes has no PartiallyInvalid condition: %s", routes)
	}
	out, err := exec.Command(sb.bin, "status", "--routes", "--debug", sb.debug).CombinedOutput()
	if err != nil {
		t.Fatalf("status --routes: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "HTTPRoute "+ns+"/web") || !strings.Contains(string(out), "True  ") {
		t.Errorf("status --routes:\n%s", out)
	}
	t.Logf("switchboard status --routes:\n%s", out)
}
