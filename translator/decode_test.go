package translator

import (
	"fmt"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-xds/switchboard/model"
)

// decoded is model.Resources with every resource decoded into its message, the
// form the tests inspect and change.
type decoded struct {
	Listeners        []*listenerv3.Listener
	Routes           []*routev3.RouteConfiguration
	Clusters         []*clusterv3.Cluster
	Assignments      []*endpointv3.ClusterLoadAssignment
	ZoneAssignments  []zoneCLA
	ClusterVariants  []clusterVariant
	ClassAssignments []classCLA
	// RouteVariants are the namespace variants of routes (consumer
	// routes, see meshRoutes).
	RouteVariants []routeVariant
	Aliases       map[string]string
	Visibility    []string
}

// routeVariant is a namespace variant of a RouteConfiguration (for gRPC
// clients, or with Class envoy for Envoy clients), decoded.
type routeVariant struct {
	Class     string
	Namespace string
	Route     *routev3.RouteConfiguration
}

// clusterVariant is a ClusterVariant decoded.
type clusterVariant struct {
	Class   string
	Cluster *clusterv3.Cluster
}

// named is a decoded resource message.
type named[M any] interface {
	*M
	proto.Message
	GetName() string
}

// decodeOne decodes e into a new M, failing t when it does not decode or
// when e's Name is not the name inside.
func decodeOne[M any, P named[M]](t testing.TB, e model.Encoded) P {
	t.Helper()
	m := P(new(M))
	if err := proto.Unmarshal(e.Wire, m); err != nil {
		t.Fatalf("decode %q: %v", e.Name, err)
	}
	if m.GetName() != e.Name {
		t.Fatalf("resource named %q holds name %q", e.Name, m.GetName())
	}
	return m
}

// decodeAll decodes every resource of es.
func decodeAll[M any, P named[M]](t testing.TB, es []model.Encoded) []P {
	t.Helper()
	var out []P
	for _, e := range es {
		out = append(out, decodeOne[M, P](t, e))
	}
	return out
}

// decodeCLA decodes one assignment.
func decodeCLA(t testing.TB, e model.Encoded) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	m := &endpointv3.ClusterLoadAssignment{}
	if err := proto.Unmarshal(e.Wire, m); err != nil {
		t.Fatalf("decode assignment %q: %v", e.Name, err)
	}
	if m.GetClusterName() != e.Name {
		t.Fatalf("assignment named %q holds cluster_name %q", e.Name, m.GetClusterName())
	}
	return m
}

// decode decodes every resource of r.
func decode(t testing.TB, r model.Resources) decoded {
	t.Helper()
	out := decoded{
		Listeners:  decodeAll[listenerv3.Listener](t, r.Listeners),
		Routes:     decodeAll[routev3.RouteConfiguration](t, r.Routes),
		Clusters:   decodeAll[clusterv3.Cluster](t, r.Clusters),
		Aliases:    r.Aliases,
		Visibility: r.Visibility,
	}
	for _, a := range r.Assignments {
		out.Assignments = append(out.Assignments, decodeCLA(t, a))
	}
	for _, v := range r.Variants {
		switch {
		case v.Type == model.Cluster && v.View.Zone == "" && v.View.Namespace == "":
			out.ClusterVariants = append(out.ClusterVariants, clusterVariant{Class: v.View.Class, Cluster: decodeOne[clusterv3.Cluster](t, v.Resource)})
		case v.Type == model.Assignment && v.View.Class == "" && v.View.Namespace == "":
			out.ZoneAssignments = append(out.ZoneAssignments, zoneCLA{Zone: v.View.Zone, Assignment: decodeCLA(t, v.Resource)})
		case v.Type == model.Route && v.View.Zone == "" && (v.View.Class == model.ClassEnvoy || v.View.Class == "" && v.View.Namespace != ""):
			out.RouteVariants = append(out.RouteVariants, routeVariant{Class: v.View.Class, Namespace: v.View.Namespace, Route: decodeOne[routev3.RouteConfiguration](t, v.Resource)})
		case v.Type == model.Assignment && v.View.Class != "" && v.View.Namespace == "":
			out.ClassAssignments = append(out.ClassAssignments, classCLA{Class: v.View.Class, Zone: v.View.Zone, Assignment: decodeCLA(t, v.Resource)})
		default:
			t.Fatalf("a Service translated to a variant no client view reads: %s %q for %+v", v.Type, v.Resource.Name, v.View)
		}
	}
	return out
}

// translate is Service with its assignments decoded.
func translate(t testing.TB, opts Options, svc *model.Service) (decoded, []Diagnostic) {
	t.Helper()
	r, diags := Service(opts, svc)
	return decode(t, r), diags
}

// translateAll is all with every Service's assignments decoded.
func translateAll(t testing.TB, opts Options, svcs []*model.Service) (map[model.ServiceKey]decoded, []Diagnostic) {
	t.Helper()
	byKey, diags := all(opts, svcs)
	out := make(map[model.ServiceKey]decoded, len(byKey))
	for k, r := range byKey {
		out[k] = decode(t, r)
	}
	return out, diags
}

// all translates every Service in svcs (see Service), as a batch of the
// pipeline would; tests only. The map has an entry
// for every Service key in svcs, with empty model.Resources when the Service
// contributes nothing, so a consumer can tell "translated to nothing" from
// "not in the input". Diagnostics are sorted by Service, port and reason.
//
// The result does not depend on the order of svcs. Nil entries are skipped
// with a diagnostic; a key listed more than once is translated for none of
// its entries (which of them is right cannot be known) and reported.
func all(opts Options, svcs []*model.Service) (map[model.ServiceKey]model.Resources, []Diagnostic) {
	out := make(map[model.ServiceKey]model.Resources, len(svcs))
	count := make(map[model.ServiceKey]int, len(svcs))
	var diags []Diagnostic
	for _, svc := range svcs {
		if svc == nil {
			diags = append(diags, Diagnostic{Reason: "nil Service in input; skipped"})
			continue
		}
		count[svc.Key]++
	}
	for _, svc := range svcs {
		if svc == nil {
			continue
		}
		switch n := count[svc.Key]; {
		case n > 1:
			if _, done := out[svc.Key]; !done {
				out[svc.Key] = model.Resources{}
				diags = append(diags, Diagnostic{
					Service: svc.Key,
					Reason:  fmt.Sprintf("Service listed %d times in input; not translated", n),
				})
			}
		default:
			res, d := service(opts, svc, nil)
			out[svc.Key] = res
			diags = append(diags, d...)
		}
	}
	diags = sortDiagnostics(diags)
	return out, diags
}

// variantsOf returns the variants of type t in r.
func variantsOf(r model.Resources, t model.ResourceType) []model.Variant {
	var out []model.Variant
	for _, v := range r.Variants {
		if v.Type == t {
			out = append(out, v)
		}
	}
	return out
}
