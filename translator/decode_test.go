package translator

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-xds/switchboard/model"
)

// decoded is Resources with every resource decoded into its message, the
// form the tests inspect and change.
type decoded struct {
	Listeners        []*listenerv3.Listener
	Routes           []*routev3.RouteConfiguration
	Clusters         []*clusterv3.Cluster
	Assignments      []*endpointv3.ClusterLoadAssignment
	ZoneAssignments  []zoneCLA
	ClusterVariants  []clusterVariant
	ClassAssignments []classCLA
	Aliases          map[string]string
	Visibility       []string
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
func decodeOne[M any, P named[M]](t testing.TB, e Encoded) P {
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
func decodeAll[M any, P named[M]](t testing.TB, es []Encoded) []P {
	t.Helper()
	var out []P
	for _, e := range es {
		out = append(out, decodeOne[M, P](t, e))
	}
	return out
}

// decodeCLA decodes one assignment.
func decodeCLA(t testing.TB, e Encoded) *endpointv3.ClusterLoadAssignment {
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
func decode(t testing.TB, r Resources) decoded {
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
	for _, cv := range r.ClusterVariants {
		out.ClusterVariants = append(out.ClusterVariants, clusterVariant{Class: cv.Class, Cluster: decodeOne[clusterv3.Cluster](t, cv.Cluster)})
	}
	for _, za := range r.ZoneAssignments {
		out.ZoneAssignments = append(out.ZoneAssignments, zoneCLA{Zone: za.Zone, Assignment: decodeCLA(t, za.Assignment)})
	}
	for _, ca := range r.ClassAssignments {
		out.ClassAssignments = append(out.ClassAssignments, classCLA{Class: ca.Class, Zone: ca.Zone, Assignment: decodeCLA(t, ca.Assignment)})
	}
	return out
}

// translate is Service with its assignments decoded.
func translate(t testing.TB, opts Options, svc *model.Service) (decoded, []Diagnostic) {
	t.Helper()
	r, diags := Service(opts, svc)
	return decode(t, r), diags
}

// translateAll is All with every Service's assignments decoded.
func translateAll(t testing.TB, opts Options, svcs []*model.Service) (map[model.ServiceKey]decoded, []Diagnostic) {
	t.Helper()
	byKey, diags := All(opts, svcs)
	out := make(map[model.ServiceKey]decoded, len(byKey))
	for k, r := range byKey {
		out[k] = decode(t, r)
	}
	return out, diags
}
