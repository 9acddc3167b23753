package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/internal/envoysim"
)

// TestMeshRoutesEnvoy: an HTTPRoute on a Service, through the built binary
// on a manifest folder, to Envoy-shaped ADS clients (envoysim): a sidecar
// in the Service's namespace walks requests through the listener, RDS and
// the route rules it holds and lands where the rules say — path (Exact,
// segment-wise PathPrefix), header and method matches, an 80/20 split, a
// redirect and a request header modifier — while a sidecar in a namespace
// with a consumer route gets that route instead. envoysim.Check finds
// nothing Envoy would reject.
func TestMeshRoutesEnvoy(t *testing.T) {
	bin := switchboardBinary(t)
	w := newFolderWorld(t)
	sb := startSwitchboard(t, bin, "--manifests", w.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns, team := w.Namespace(t), w.Namespace(t)
	ips := map[string]string{}
	p := harness.Port{Name: "http", Port: 80}
	for i, name := range []string{"web", "v1", "v2"} {
		svc := newService(ns, name, p)
		svc.Spec.ClusterIP = w.NewClusterIP()
		ips[name] = svc.Spec.ClusterIP
		w.ApplyService(t, svc)
		w.ApplySlice(t, newSlice(ns, name, name+"-1", []harness.Port{p}, harness.Endpoint{Address: fmt.Sprintf("10.244.9.%d", i+1), State: harness.Ready, Zone: "z1"}))
	}
	w.applyRoute(t, ns, "web", fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: %[1]s}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - backendRefs: [{name: v1, port: 80, weight: 80}, {name: v2, port: 80, weight: 20}]
  - matches: [{path: {type: Exact, value: /v2}}, {headers: [{name: x-version, value: "2"}]}]
    backendRefs: [{name: v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api}, method: POST}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-api, value: "yes"}]}}]
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}}]
`, ns))
	w.applyRoute(t, team, "web", fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: web, namespace: %s}]
  rules:
  - backendRefs: [{name: web, namespace: %[2]s, port: 80}]
`, team, ns))

	dial := func(name, nsName string) *envoysim.Client {
		md, err := structpb.NewStruct(map[string]any{"NAMESPACE": nsName})
		if err != nil {
			t.Fatal(err)
		}
		c, err := envoysim.Dial(ctx, sb.xds, &corev3.Node{Id: name + "." + nsName, Cluster: "app", UserAgentName: "envoy", Metadata: md}, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	web := envoysim.Conn{Protocol: "tcp", DstIP: ips["web"], DstPort: 80, Host: "web." + ns + ":80"}
	cluster := func(name string) string { return name + "." + ns + ".svc.cluster.local:80" }
	producer := dial("producer", ns)
	consumer := dial("consumer", team)
	// The rules are in place, and every resource they need has arrived
	// (an RDS or EDS response may trail the CDS one).
	if err := producer.WaitFor(ctx, func(cfg *envoysim.Config) bool {
		res, err := cfg.RouteHTTP(envoysim.Request{Conn: web, Path: "/v2"})
		return err == nil && res.Clusters[cluster("v2")] == 1 && len(envoysim.Check(cfg)) == 0
	}); err != nil {
		t.Errorf("producer sidecar: %v", err)
		for _, err := range envoysim.Check(producer.Snapshot()) {
			t.Errorf("producer sidecar: %v", err)
		}
		t.FailNow()
	}
	cfg := producer.Snapshot()
	for _, tc := range []struct {
		what     string
		req      envoysim.Request
		clusters map[string]uint32
		header   string
		redirect string
	}{
		{"default: 80/20", envoysim.Request{Path: "/"}, map[string]uint32{cluster("v1"): 80, cluster("v2"): 20}, "", ""},
		{"exact path", envoysim.Request{Path: "/v2"}, map[string]uint32{cluster("v2"): 1}, "", ""},
		{"exact path is not a prefix", envoysim.Request{Path: "/v2/x"}, map[string]uint32{cluster("v1"): 80, cluster("v2"): 20}, "", ""},
		{"header", envoysim.Request{Path: "/x", Headers: map[string]string{"x-version": "2"}}, map[string]uint32{cluster("v2"): 1}, "", ""},
		{"prefix and method, with a header set", envoysim.Request{Method: "POST", Path: "/api/items"}, map[string]uint32{cluster("v1"): 1}, "x-api", ""},
		{"prefix is segment-wise", envoysim.Request{Method: "POST", Path: "/apis"}, map[string]uint32{cluster("v1"): 80, cluster("v2"): 20}, "", ""},
		{"method must match", envoysim.Request{Method: "GET", Path: "/api/items"}, map[string]uint32{cluster("v1"): 80, cluster("v2"): 20}, "", ""},
		{"redirect", envoysim.Request{Path: "/old/page"}, nil, "", "/new"},
	} {
		tc.req.Conn = web
		res, err := cfg.RouteHTTP(tc.req)
		if err != nil {
			t.Errorf("%s: %v", tc.what, err)
			continue
		}
		if tc.redirect != "" {
			if res.Redirect == nil || res.Redirect.GetPrefixRewrite() != tc.redirect || res.Redirect.GetResponseCode().String() != "MOVED_PERMANENTLY" {
				t.Errorf("%s: redirect %v, want prefix %s with 301", tc.what, res.Redirect, tc.redirect)
			}
			continue
		}
		if fmt.Sprint(res.Clusters) != fmt.Sprint(tc.clusters) {
			t.Errorf("%s: route %s sends to %v, want %v", tc.what, res.Route, res.Clusters, tc.clusters)
		}
		gotHeader := ""
		for _, h := range res.AddHeaders {
			gotHeader = h.GetHeader().GetKey()
		}
		if gotHeader != tc.header {
			t.Errorf("%s: adds header %q, want %q", tc.what, gotHeader, tc.header)
		}
	}
	if err := consumer.WaitFor(ctx, func(cfg *envoysim.Config) bool {
		res, err := cfg.RouteHTTP(envoysim.Request{Conn: web, Path: "/v2"})
		return err == nil && res.Clusters[cluster("web")] == 1 && len(envoysim.Check(cfg)) == 0
	}); err != nil {
		res, rerr := consumer.Snapshot().RouteHTTP(envoysim.Request{Conn: web, Path: "/v2"})
		t.Errorf("consumer sidecar: want its namespace's route to web: %v (last: %+v, %v)", err, res, rerr)
		for _, err := range envoysim.Check(consumer.Snapshot()) {
			t.Errorf("consumer sidecar: %v", err)
		}
	}
}
