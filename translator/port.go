package translator

import (
	"fmt"

	"github.com/switchboard-xds/switchboard/model"
)

// portOut is what one Service port contributes, encoded.
type portOut struct {
	listener, route, cluster model.Encoded
	clusterVariants          []model.Variant
	// routeVariants is the Envoy variant of the route, when asked for.
	routeVariants []model.Variant
	// hasAssignments is false for an ExternalName port: its DNS cluster
	// carries its one endpoint, and there is no EDS.
	hasAssignments bool
	assignments    portAssignments
}

// portAssignments are one port's assignments.
type portAssignments struct {
	plain model.Encoded
	// zones are the per-zone variants (see zoneAssignments), classes the
	// per-class ones (see envoyAssignments).
	zones   []model.Variant
	classes []model.Variant
}

// translatePort builds and encodes the resources of port p of svc, named
// canonical, whose route also answers to aliases and short, and with
// envoyRoute the Envoy variant of that route (envoyRouteWire). The error is
// for a resource that does not encode, which a valid Service never has (the
// strings in a resource are checked before it is built); the port is then
// not served.
func translatePort(svc *model.Service, p *model.Port, pol policy, threshold int, canonical string, aliases, short []string, envoyRoute bool) (portOut, []Diagnostic, error) {
	var out portOut
	var err error
	if out.listener, err = listenerWire(canonical, canonical); err != nil {
		return portOut{}, nil, err
	}
	if out.route, err = routeWire(pol, canonical, aliases, short); err != nil {
		return portOut{}, nil, err
	}
	if envoyRoute {
		e, err := envoyRouteWire(pol, canonical)
		if err != nil {
			return portOut{}, nil, err
		}
		out.routeVariants = []model.Variant{{Type: model.Route, View: model.View{Class: model.ClassEnvoy}, Resource: e}}
	}
	if svc.Type == model.TypeExternalName {
		// No endpoints: the client resolves the name itself.
		out.cluster, err = encode(canonical, dnsCluster(canonical, svc.ExternalName, p.Port))
		return out, nil, err
	}
	label := portLabel(p)
	var diags []Diagnostic
	var perr error
	out.cluster, perr, err = clusterWire(pol, canonical, p.AppProtocol)
	if perr != nil {
		diags = append(diags, Diagnostic{Service: svc.Key, Port: label, Reason: perr.Error()})
	}
	if err != nil {
		return portOut{}, diags, err
	}
	if pol.lb == lbRingHash {
		// C-core 1.51 crashes on ring hash: it gets round robin.
		compat := pol
		compat.lb, compat.hashHeader = lbRoundRobin, ""
		if cc, err := policyCluster(compat, canonical, p.AppProtocol); err == nil {
			e, err := encode(canonical, cc)
			if err != nil {
				return portOut{}, diags, err
			}
			out.clusterVariants = append(out.clusterVariants, model.Variant{Type: model.Cluster, View: model.View{Class: model.ClassCCore}, Resource: e})
		}
	}
	as, d, err := buildAssignments(canonical, svc.Key, label, p.Endpoints, topologyPreference(svc, p.Endpoints), threshold)
	diags = append(diags, d...)
	if err != nil {
		return portOut{}, diags, err
	}
	out.hasAssignments, out.assignments = true, as
	return out, diags, nil
}

// udpName is the name of the Cluster and ClusterLoadAssignment of a UDP
// Service port, whose canonical name is canonical: "S.N.svc.<domain>:P/udp",
// so that a Service with TCP and UDP on one port number (DNS) has two
// clusters. Only Envoy uses them (its UDP listeners, see SidecarPart).
func udpName(canonical string) string { return canonical + "/udp" }

// translateUDPPort builds the cluster and assignments of UDP port p of
// svc, named name (see udpName): the same EDS cluster, policy and endpoint
// data as a TCP port, without listener or route (gRPC clients do not speak
// UDP; Envoy's UDP listeners come from the sidecar stage).
func translateUDPPort(svc *model.Service, p *model.Port, pol policy, threshold int, name string) (portOut, []Diagnostic, error) {
	var out portOut
	label := portLabel(p)
	var diags []Diagnostic
	var perr, err error
	out.cluster, perr, err = clusterWire(pol, name, "")
	if perr != nil {
		diags = append(diags, Diagnostic{Service: svc.Key, Port: label, Reason: perr.Error()})
	}
	if err != nil {
		return portOut{}, diags, err
	}
	as, d, err := buildAssignments(name, svc.Key, label, p.Endpoints, topologyPreference(svc, p.Endpoints), threshold)
	diags = append(diags, d...)
	if err != nil {
		return portOut{}, diags, err
	}
	out.hasAssignments, out.assignments = true, as
	return out, diags, nil
}

// buildAssignments builds the assignments of one port (see loadAssignment,
// zoneAssignments and envoyAssignments), encoded. It is the one builder of
// assignments, with one fast path chosen by one predicate: a view in the
// usual shape (usualView) with no topology preference has no variants and
// is written straight from the view to wire form (sortedWire), the bytes
// protobuf-go writes for the message loadAssignment would build. Measured
// on views built by watcher.Store that is 2.5 to 5 times faster than
// building the message and marshalling it with the fastest library
// (vtprotobuf), so it stays (see the README's performance section). Any
// other view is built as a message and marshalled by protobuf-go.
func buildAssignments(canonical string, key model.ServiceKey, label string, eps []model.Endpoint, pref preference, threshold int) (portAssignments, []Diagnostic, error) {
	if pref == preferNone && usualView(eps) {
		return portAssignments{plain: sortedWire(canonical, eps)}, nil, nil
	}
	cla, diags := loadAssignment(canonical, key, label, eps)
	zas := zoneAssignments(pref, eps, cla, threshold)
	cas := envoyAssignments(pref, eps, cla, zas, threshold)
	var out portAssignments
	var err error
	if out.plain, err = encode(canonical, cla); err != nil {
		return portAssignments{}, diags, err
	}
	for _, za := range zas {
		a, err := encode(canonical, za.Assignment)
		if err != nil {
			return portAssignments{}, diags, fmt.Errorf("zone %s: %w", za.Zone, err)
		}
		out.zones = append(out.zones, model.Variant{Type: model.Assignment, View: model.View{Zone: za.Zone}, Resource: a})
	}
	for _, ca := range cas {
		a, err := encode(canonical, ca.Assignment)
		if err != nil {
			return portAssignments{}, diags, fmt.Errorf("class %s: %w", ca.Class, err)
		}
		out.classes = append(out.classes, model.Variant{Type: model.Assignment, View: model.View{Class: ca.Class, Zone: ca.Zone}, Resource: a})
	}
	return out, diags, nil
}
