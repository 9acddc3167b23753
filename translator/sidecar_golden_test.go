package translator

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/switchboard-xds/switchboard/internal/envoysim"
	"github.com/switchboard-xds/switchboard/model"
)

// sidecarGoldenOptions are the options the sidecar golden cases are
// translated with: the default DNS listener of switchboard serve.
var sidecarGoldenOptions = Options{ClusterDomain: "cluster.local", SidecarDNS: "127.0.0.1:15053", Sidecars: true}

// TestSidecarGolden builds the sidecar stage (every SidecarPart) of each
// testdata/sidecar/in/NAME.yaml and compares it with
// testdata/sidecar/out/NAME.yaml; testdata/sidecar/out/shared.yaml holds the
// part every world has. Every resource, variants included, must pass
// ValidateAll, down through every Any it packs.
func TestSidecarGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "sidecar", "in", "*.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no sidecar golden inputs: %v", err)
	}
	cases := map[string][]*model.Service{"shared": nil}
	for _, in := range inputs {
		cases[strings.TrimSuffix(filepath.Base(in), ".yaml")] = loadViews(t, in)
	}
	for name, views := range cases {
		t.Run(name, func(t *testing.T) {
			parts := []SidecarPart{{Kind: SidecarShared}}
			if name != "shared" {
				parts = partsOf(views)
			}
			var out []any
			var all []model.Resources
			for _, p := range parts {
				res, err := Sidecar(sidecarGoldenOptions, p, views)
				if err != nil {
					t.Fatalf("Sidecar(%s): %v", p, err)
				}
				if !res.EnvoyOnly {
					t.Errorf("part %s: EnvoyOnly not set", p)
				}
				out = append(out, renderSidecarPart(t, p, res))
				all = append(all, res)
			}
			checkSidecarWorld(t, views, all)
			if routes := renderEnvoyRoutes(t, views); len(routes) > 0 {
				out = append(out, map[string]any{"part": "envoy route variants (Service)", "routes": routes})
			}
			got, err := yaml.Marshal(map[string]any{"parts": out})
			if err != nil {
				t.Fatal(err)
			}
			got = append([]byte(strings.Replace(goldenHeader, "-run Golden", "-run SidecarGolden", 1)), got...)
			path := filepath.Join("testdata", "sidecar", "out", name+".yaml")
			compareGolden(t, path, got)
		})
	}
}

// checkSidecarWorld runs Envoy's load rules (envoysim.Check) over what a
// sidecar of each namespace of views (and of none) would hold.
func checkSidecarWorld(t *testing.T, views []*model.Service, sidecar []model.Resources) {
	t.Helper()
	nss := []string{""}
	for _, v := range views {
		nss = append(nss, v.Key.Namespace)
	}
	slices.Sort(nss)
	for _, ns := range slices.Compact(nss) {
		for _, err := range envoysim.Check(sidecarConfig(t, views, sidecar, ns)) {
			t.Errorf("sidecar of namespace %q: Envoy would refuse: %v", ns, err)
		}
	}
}

// sidecarConfig is what a sidecar of namespace ns holds: every Service's
// clusters and assignments and the Envoy variants of its routes, the
// shared part (unless sidecar has it), and every part of sidecar that ns
// may see (Resources.Visibility).
func sidecarConfig(t *testing.T, views []*model.Service, sidecar []model.Resources, ns string) *envoysim.Config {
	t.Helper()
	if !slices.ContainsFunc(sidecar, func(r model.Resources) bool {
		return slices.ContainsFunc(r.Listeners, func(e model.Encoded) bool { return e.Name == VirtualOutboundName })
	}) {
		shared, err := Sidecar(sidecarGoldenOptions, SidecarPart{Kind: SidecarShared}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sidecar = append(slices.Clip(sidecar), shared)
	}
	byKey, _ := all(sidecarGoldenOptions, views)
	cfg := envoysim.NewConfig()
	add := func(m proto.Message, e model.Encoded) {
		if err := proto.Unmarshal(e.Wire, m); err != nil {
			t.Fatal(err)
		}
		cfg.Add(m)
	}
	envoy := model.Client{Class: model.ClassEnvoy, Namespace: ns}
	for _, res := range byKey {
		for _, e := range res.Clusters {
			add(&clusterv3.Cluster{}, e)
		}
		for _, e := range res.Assignments {
			add(&endpointv3.ClusterLoadAssignment{}, e)
		}
		for _, e := range res.Routes {
			add(&routev3.RouteConfiguration{}, pickView(e, variantsOf(res, model.Route), envoy.Views()[model.Route]))
		}
	}
	for _, res := range sidecar {
		if !envoy.MaySee(res.Visibility, "") {
			continue
		}
		for _, e := range res.Listeners {
			add(&listenerv3.Listener{}, e)
		}
		for _, e := range res.Clusters {
			add(&clusterv3.Cluster{}, e)
		}
	}
	return cfg
}

// pickView returns the variant of plain for the first of views that has
// one, else plain, as the cache serves it.
func pickView(plain model.Encoded, vs []model.Variant, views []model.View) model.Encoded {
	for _, view := range views {
		for _, v := range vs {
			if v.View == view && v.Resource.Name == plain.Name {
				return v.Resource
			}
		}
	}
	return plain
}

// renderEnvoyRoutes renders the Envoy variants of the routes of views, as
// Service builds them with the sidecar stage on.
func renderEnvoyRoutes(t *testing.T, views []*model.Service) []any {
	t.Helper()
	byKey, _ := all(sidecarGoldenOptions, views)
	var out []any
	for _, v := range views {
		for _, rv := range variantsOf(byKey[v.Key], model.Route) {
			if rv.View != (model.View{Class: model.ClassEnvoy}) {
				t.Errorf("%s: route variant for %+v, want Envoy's only", rv.Resource.Name, rv.View)
			}
			m := &routev3.RouteConfiguration{}
			if err := proto.Unmarshal(rv.Resource.Wire, m); err != nil {
				t.Fatal(err)
			}
			validateDeep(t, rv.Resource.Name, m)
			out = append(out, protoValue(t, m))
		}
	}
	return out
}

// partsOf returns every part some view contributes to, sorted.
func partsOf(views []*model.Service) []SidecarPart {
	var parts []SidecarPart
	for _, v := range views {
		for _, p := range SidecarParts(v) {
			if !slices.Contains(parts, p) {
				parts = append(parts, p)
			}
		}
	}
	slices.SortFunc(parts, func(a, b SidecarPart) int { return strings.Compare(a.String(), b.String()) })
	return parts
}

// renderSidecarPart decodes, validates and renders one part.
func renderSidecarPart(t *testing.T, p SidecarPart, res model.Resources) map[string]any {
	t.Helper()
	out := map[string]any{"part": p.String()}
	add := func(key string, msg func() proto.Message, list []model.Encoded) {
		var vs []any
		for _, e := range list {
			m := msg()
			if err := proto.Unmarshal(e.Wire, m); err != nil {
				t.Fatalf("%s %s: %v", key, e.Name, err)
			}
			validateDeep(t, e.Name, m)
			vs = append(vs, protoValue(t, m))
		}
		if len(vs) > 0 {
			out[key] = vs
		}
	}
	if len(res.Visibility) > 0 {
		out["visibility"] = res.Visibility
	}
	add("listeners", func() proto.Message { return &listenerv3.Listener{} }, res.Listeners)
	add("routes", func() proto.Message { return &routev3.RouteConfiguration{} }, res.Routes)
	add("clusters", func() proto.Message { return &clusterv3.Cluster{} }, res.Clusters)
	if len(res.Variants) > 0 {
		t.Errorf("part %s has %d variants; the sidecar stage has none", p, len(res.Variants))
	}
	return out
}

// validateDeep runs ValidateAll on m and on every message packed in an Any
// anywhere inside it (ValidateAll does not open Anys), failing on an Any
// of a type this binary does not know, as Envoy would.
func validateDeep(t *testing.T, name string, m proto.Message) {
	t.Helper()
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			t.Errorf("%s: %s: ValidateAll: %v", name, m.ProtoReflect().Descriptor().FullName(), err)
		}
	}
	var walk func(protoreflect.Message)
	walk = func(r protoreflect.Message) {
		if a, ok := r.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err != nil {
				t.Errorf("%s: Any %s: %v", name, a.GetTypeUrl(), err)
				return
			}
			validateDeep(t, name, inner)
			return
		}
		r.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walk(mv.Message())
					return true
				})
			case fd.IsList() && fd.Message() != nil:
				for i := range v.List().Len() {
					walk(v.List().Get(i).Message())
				}
			case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
				walk(v.Message())
			}
			return true
		})
	}
	walk(m.ProtoReflect())
}
