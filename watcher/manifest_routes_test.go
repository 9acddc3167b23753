package watcher

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/model"
)

const meshManifest = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: ns}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches: [{headers: [{name: x-v, value: "2"}]}]
    timeouts: {request: 1500ms}
    backendRefs: [{name: web-v2, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: ns}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - matches: [{method: {service: a.B}}]
    backendRefs: [{name: web-v2, port: 80, weight: 0}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: ns}]
  to: [{group: "", kind: Service}]
`

// TestManifestRoutes checks that routes and grants are read from
// manifests with the API's defaults applied.
func TestManifestRoutes(t *testing.T) {
	b, err := ManifestWorld("mesh.yaml", []byte(meshManifest), Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := b.Routes[model.RouteKey{Kind: model.KindHTTPRoute, Namespace: "ns", Name: "r"}]
	if r == nil {
		t.Fatalf("no HTTPRoute in %v", b.Routes)
	}
	rule := r.Rules[0]
	if got := r.Parents[0]; got != (model.ParentRef{Kind: "Service", Namespace: "ns", Name: "web", Port: 80}) {
		t.Errorf("parent %+v", got)
	}
	if m := rule.Matches[0]; m.Path == nil || *m.Path != (model.PathMatch{Type: model.MatchPathPrefix, Value: "/"}) || m.Headers[0].Type != model.MatchExact {
		t.Errorf("match defaults not applied: %+v", m)
	}
	if rule.RequestTimeout != 1500*time.Millisecond || !reflect.DeepEqual(rule.Backends[0], model.BackendRef{Kind: "Service", Namespace: "ns", Name: "web-v2", Port: 80, Weight: 1}) {
		t.Errorf("rule %+v", rule)
	}
	g := b.Routes[model.RouteKey{Kind: model.KindGRPCRoute, Namespace: "ns", Name: "g"}]
	if g == nil || g.Rules[0].Matches[0].GRPC.Type != model.MatchExact || g.Rules[0].Backends[0].Weight != 0 {
		t.Errorf("GRPCRoute %+v", g)
	}
	grant := b.Grants[model.GrantKey{Namespace: "other", Name: "g"}]
	if grant == nil || !grant.Allows("gateway.networking.k8s.io", "HTTPRoute", "ns", "", "Service", "any") {
		t.Errorf("grant %+v", grant)
	}
}

// TestManifestRoutesStrict checks that a misspelt field or a bad duration
// is an error naming the route, as for Services.
func TestManifestRoutesStrict(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"misspelt field", strings.Replace(meshManifest, "backendRefs: [{name: web-v2, port: 80}]", "backendRef: [{name: web-v2, port: 80}]", 1), "backendRef"},
		{"bad duration", strings.Replace(meshManifest, "1500ms", "soon", 1), "HTTPRoute ns/r"},
	} {
		_, err := ManifestWorld("mesh.yaml", []byte(tc.yaml), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
}
