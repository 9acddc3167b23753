package translator

import (
	"cmp"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/watcher"
)

// TestRouteGolden translates each testdata/routes/in/NAME.yaml (Services,
// EndpointSlices, HTTPRoutes, GRPCRoutes, ReferenceGrants, read by the
// manifest source's decoder) with every route and grant as the Mesh of
// every Service, and compares, for each Service port that routes attach
// to, the gRPC RouteConfiguration, its namespace variants, the failing
// cluster and the routes Envoy gets (RouteRules, FlavourEnvoy), with the
// diagnostics, with testdata/routes/out/NAME.yaml. conformance-*.yaml are
// the Gateway API conformance suite's mesh manifests (hack/mesh-conformance.sh).
//
// The whole world (every Service's resources) must pass ValidateAll and
// the gRPC client rules, once with each namespace's variants in place of
// the plain routes; Envoy's routes must pass ValidateAll in a
// RouteConfiguration.
func TestRouteGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "routes", "in", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no inputs in testdata/routes/in")
	}
	want := map[string]bool{}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		out := filepath.Join("testdata", "routes", "out", name+".yaml")
		want[out] = true
		t.Run(name, func(t *testing.T) {
			got := routeGolden(t, in)
			compareGolden(t, out, got)
		})
	}
	removeStaleGoldens(t, filepath.Join("testdata", "routes"), want)
}

// routeGoldenFile is the layout of testdata/routes/out/*.yaml.
type routeGoldenFile struct {
	Diagnostics []routeGoldenDiagnostic `json:"diagnostics"`
	// Statuses are RouteStatus of every route, by route.
	Statuses map[string]model.RouteStatus `json:"statuses,omitempty"`
	Ports    []routeGoldenPort            `json:"ports"`
}

type routeGoldenDiagnostic struct {
	Service string `json:"service"`
	Port    string `json:"port,omitempty"`
	Route   string `json:"route,omitempty"`
	Feature string `json:"feature,omitempty"`
	Flavour string `json:"flavour,omitempty"`
	Reason  string `json:"reason"`
}

type routeGoldenPort struct {
	Name string `json:"name"`
	// GRPC is the RouteConfiguration every gRPC client gets.
	GRPC any `json:"grpc"`
	// Namespaces maps a namespace to its variant (consumer routes).
	Namespaces map[string]any `json:"namespaces,omitempty"`
	// Failing is set when the port's failing cluster is served.
	Failing bool `json:"failing,omitempty"`
	// Envoy maps "" (producer routes) or a namespace (consumer routes) to
	// the routes of Envoy's virtual host.
	Envoy map[string][]any `json:"envoy"`
}

func routeGolden(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := watcher.ManifestWorld(filepath.Base(path), data, watcher.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mesh := meshOf(b)
	f := routeGoldenFile{Diagnostics: []routeGoldenDiagnostic{}, Ports: []routeGoldenPort{}}
	byKey := map[model.ServiceKey]decoded{}
	var diags []Diagnostic
	keys := slices.SortedFunc(maps.Keys(b.Services), func(a, b model.ServiceKey) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	for _, key := range keys {
		svc := b.Services[key]
		res, d := ServiceMesh(routeGoldenOptions, svc, mesh)
		diags = append(diags, d...)
		dec := decode(t, res)
		byKey[key] = dec
		validateAll(t, dec)
		for _, v := range dec.RouteVariants {
			if err := v.Route.ValidateAll(); err != nil {
				t.Errorf("variant %s %q: ValidateAll: %v", v.Namespace, v.Route.GetName(), err)
			}
		}
		for i := range svc.Ports {
			p := &svc.Ports[i]
			producer, consumers := attachedRoutes(svc, p, mesh.Routes)
			if len(producer) == 0 && len(consumers) == 0 {
				continue
			}
			canonical := CanonicalName("cluster.local", key, p.Port)
			gp := routeGoldenPort{Name: canonical, Envoy: map[string][]any{}}
			for _, rc := range dec.Routes {
				if rc.GetName() == canonical {
					gp.GRPC = protoValue(t, rc)
				}
			}
			for _, v := range dec.RouteVariants {
				if v.Route.GetName() == canonical && v.Class == "" {
					if gp.Namespaces == nil {
						gp.Namespaces = map[string]any{}
					}
					gp.Namespaces[v.Namespace] = protoValue(t, v.Route)
				}
			}
			for _, c := range dec.Clusters {
				gp.Failing = gp.Failing || c.GetName() == FailingCluster(canonical)
			}
			in := RuleInput{Domain: "cluster.local", Service: key, Port: portLabel(p), Canonical: canonical, Mesh: mesh}
			envoy := map[string][]*model.MeshRoute{"": producer}
			for ns, rs := range consumers {
				envoy[ns] = rs
			}
			for ns, rs := range envoy {
				if len(rs) == 0 {
					continue
				}
				ro := RouteRules(in, rs, FlavourEnvoy)
				diags = append(diags, ro.Diagnostics...)
				rc := &routev3.RouteConfiguration{Name: canonical, VirtualHosts: []*routev3.VirtualHost{{Name: canonical, Domains: []string{"*"}, Routes: ro.Routes}}}
				if err := rc.ValidateAll(); err != nil {
					t.Errorf("Envoy routes of %s (namespace %q): ValidateAll: %v", canonical, ns, err)
				}
				for _, r := range ro.Routes {
					gp.Envoy[ns] = append(gp.Envoy[ns], protoValue(t, r))
				}
				checkEnvoyVariant(t, res, canonical, ns, ro.Routes)
			}
			f.Ports = append(f.Ports, gp)
		}
	}
	checkWorld(t, byKey)
	for _, r := range mesh.Routes {
		if f.Statuses == nil {
			f.Statuses = map[string]model.RouteStatus{}
		}
		f.Statuses[r.Key.String()] = RouteStatus(routeGoldenOptions, r, mesh)
	}
	for _, d := range sortDiagnostics(diags) {
		gd := routeGoldenDiagnostic{Service: d.Service.String(), Port: d.Port, Feature: d.Feature, Reason: d.Reason}
		if d.Route != (model.RouteKey{}) {
			gd.Route = d.Route.String()
		}
		if d.Feature != "" {
			gd.Flavour = d.Flavour.String()
		}
		f.Diagnostics = append(f.Diagnostics, gd)
	}
	out, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(routeGoldenHeader), out...)
}

const routeGoldenHeader = "# Generated by `go test ./translator -run RouteGolden -update` from testdata/routes/in; do not edit.\n"

// routeGoldenOptions turn on the Envoy route variants (for ports with a
// cluster IP).
var routeGoldenOptions = Options{ClusterDomain: "cluster.local", Sidecars: true}

// checkEnvoyVariant checks that the Envoy variant of route canonical for
// the clients of ns ("" for every namespace), when res has one, routes
// with routes.
func checkEnvoyVariant(t *testing.T, res model.Resources, canonical, ns string, routes []*routev3.Route) {
	t.Helper()
	for _, v := range res.Variants {
		if v.Type != model.Route || v.View.Class != model.ClassEnvoy || v.View.Namespace != ns || v.Resource.Name != canonical {
			continue
		}
		rc := decodeOne[routev3.RouteConfiguration](t, v.Resource)
		got := rc.GetVirtualHosts()[0].GetRoutes()
		if len(got) != len(routes) {
			t.Errorf("Envoy variant of %s for %q has %d routes, want %d", canonical, ns, len(got), len(routes))
			return
		}
		for i := range got {
			if !proto.Equal(got[i], routes[i]) {
				t.Errorf("Envoy variant of %s for %q: route %d is %v, want %v", canonical, ns, i, got[i], routes[i])
			}
		}
		return
	}
	if ns != "" && hasEnvoyVariant(res, canonical) {
		t.Errorf("Envoy variant of %s: none for namespace %q", canonical, ns)
	}
}

func hasEnvoyVariant(res model.Resources, canonical string) bool {
	for _, v := range res.Variants {
		if v.Type == model.Route && v.View.Class == model.ClassEnvoy && v.Resource.Name == canonical {
			return true
		}
	}
	return false
}

// meshOf is the Mesh of a whole world: every route and grant, sorted, and
// every Service.
func meshOf(b model.Batch) *Mesh {
	m := &Mesh{Services: b.Services}
	for _, k := range slices.SortedFunc(maps.Keys(b.Routes), func(a, b model.RouteKey) int {
		return strings.Compare(a.String(), b.String())
	}) {
		m.Routes = append(m.Routes, b.Routes[k])
	}
	for _, k := range slices.SortedFunc(maps.Keys(b.Grants), func(a, b model.GrantKey) int {
		return strings.Compare(a.String(), b.String())
	}) {
		m.Grants = append(m.Grants, b.Grants[k])
	}
	return m
}

// checkWorld applies the gRPC client rules to the resources of every
// Service at once (a route's backends are other Services' clusters), and
// again for each namespace with variants, as that namespace's clients see
// the world.
func checkWorld(t *testing.T, byKey map[model.ServiceKey]decoded) {
	t.Helper()
	namespaces := map[string]bool{"": true}
	for _, d := range byKey {
		for _, v := range d.RouteVariants {
			if v.Class == "" {
				namespaces[v.Namespace] = true
			}
		}
	}
	for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
		var world decoded
		world.Aliases = map[string]string{}
		for _, d := range byKey {
			routes := d.Routes
			if ns != "" {
				routes = slices.Clone(routes)
				for _, v := range d.RouteVariants {
					if v.Namespace != ns || v.Class != "" {
						continue
					}
					for i, rc := range routes {
						if rc.GetName() == v.Route.GetName() {
							routes[i] = v.Route
						}
					}
				}
			}
			world.Listeners = append(world.Listeners, d.Listeners...)
			world.Routes = append(world.Routes, routes...)
			world.Clusters = append(world.Clusters, d.Clusters...)
			world.Assignments = append(world.Assignments, d.Assignments...)
			maps.Copy(world.Aliases, d.Aliases)
		}
		for _, err := range grpcRuleErrors(world) {
			t.Errorf("clients of namespace %q: %v", ns, err)
		}
	}
}
