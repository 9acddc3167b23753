package translator

import (
	"maps"
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// This file decides which mesh routes apply to a Service port and for which
// clients (GEP-1426), and builds the port's RouteConfiguration and its
// namespace variants from them.

// attachedRoutes returns the routes of mesh whose parentRefs name port p of
// svc (the Service, with no port, p's number or p's name as section),
// split as GEP-1426 splits them: producer routes, in the Service's own
// namespace, apply to every client; consumer routes, in another namespace,
// apply only to the clients of that namespace, keyed here by it, and for
// them replace the producer routes.
func attachedRoutes(svc *model.Service, p *model.Port, routes []*model.MeshRoute) (producer []*model.MeshRoute, consumers map[string][]*model.MeshRoute) {
	for _, r := range routes {
		if !attaches(r, svc.Key, p) {
			continue
		}
		if r.Key.Namespace == svc.Key.Namespace {
			producer = append(producer, r)
			continue
		}
		if consumers == nil {
			consumers = map[string][]*model.MeshRoute{}
		}
		consumers[r.Key.Namespace] = append(consumers[r.Key.Namespace], r)
	}
	return producer, consumers
}

// attaches reports whether a parentRef of r names port p of Service key.
func attaches(r *model.MeshRoute, key model.ServiceKey, p *model.Port) bool {
	for _, ref := range r.Parents {
		k, ok := ref.Service()
		if !ok || k != key {
			continue
		}
		if (ref.Port == 0 || ref.Port == p.Port) && (ref.SectionName == "" || ref.SectionName == p.Name) {
			return true
		}
	}
	return false
}

// meshOut is what the mesh routes of one port contribute.
type meshOut struct {
	// plain is the RouteConfiguration every gRPC client gets, and envoy
	// Envoy's variant of it, when producer routes apply (else the port's
	// own route and Envoy variant are kept).
	plain, envoy *model.Encoded
	// variants are the consumer routes' namespace variants, for gRPC
	// clients and (with Envoy) for Envoy clients of the namespace.
	variants []model.Variant
	failing  bool
}

// meshRoutes builds the RouteConfigurations of port p of svc that the mesh
// routes attached to it call for, for gRPC clients: the plain one from the
// producer routes, and one variant per namespace with consumer routes
// (model.View{Namespace}: the xds cache serves it to that namespace's
// clients). Each has the virtual host of routeConfiguration with the routes
// of RouteRules. With envoy (the port has an Envoy route variant, see
// envoyRouteWire), the same for Envoy clients: the producer routes in
// place of the Envoy variant (View{Class: envoy}), and consumer routes as
// View{Class: envoy, Namespace}, each with envoyRouteWire's one virtual
// host whose domains are "*". The Service's route policy annotations (pol)
// fill in what a rule leaves unset (policy.applyRoute).
func meshRoutes(in RuleInput, svc *model.Service, p *model.Port, pol policy, aliases, short []string, envoy bool) (meshOut, []Diagnostic, error) {
	var out meshOut
	if in.Mesh == nil || len(in.Mesh.Routes) == 0 {
		return out, nil, nil
	}
	producer, consumers := attachedRoutes(svc, p, in.Mesh.Routes)
	var diags []Diagnostic
	build := func(routes []*model.MeshRoute) (model.Encoded, error) {
		ro := RouteRules(in, routes, FlavourGRPC)
		diags = append(diags, ro.Diagnostics...)
		out.failing = out.failing || ro.Failing
		rc := routeConfiguration(in.Canonical, aliases, short)
		vr := ro.Routes
		if len(vr) == 0 {
			// Every match was left out: no call matches, the spec's 404.
			out.failing = true
			vr = []*routev3.Route{{
				Name:   "no-route-matches",
				Match:  rootMatch(),
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: FailingCluster(in.Canonical)}}},
			}}
		}
		rc.VirtualHosts[0].Routes = vr
		pol.applyRoute(rc)
		return encode(in.Canonical, rc)
	}
	buildEnvoy := func(routes []*model.MeshRoute) (model.Encoded, error) {
		ro := RouteRules(in, routes, FlavourEnvoy)
		diags = append(diags, ro.Diagnostics...)
		out.failing = out.failing || ro.Failing // a GRPCRoute's share that cannot be forwarded
		rc := routeConfiguration(in.Canonical, nil, nil)
		rc.VirtualHosts[0].Domains = []string{"*"}
		rc.VirtualHosts[0].Routes = ro.Routes // none: Envoy answers 404, as the spec asks
		pol.applyRoute(rc)
		return encode(in.Canonical, rc)
	}
	if len(producer) > 0 {
		e, err := build(producer)
		if err != nil {
			return meshOut{}, diags, err
		}
		out.plain = &e
		if envoy {
			e, err := buildEnvoy(producer)
			if err != nil {
				return meshOut{}, diags, err
			}
			out.envoy = &e
		}
	}
	for _, ns := range slices.Sorted(maps.Keys(consumers)) {
		e, err := build(consumers[ns])
		if err != nil {
			return meshOut{}, diags, err
		}
		out.variants = append(out.variants, model.Variant{Type: model.Route, View: model.View{Namespace: ns}, Resource: e})
		if envoy {
			e, err := buildEnvoy(consumers[ns])
			if err != nil {
				return meshOut{}, diags, err
			}
			out.variants = append(out.variants, model.Variant{Type: model.Route, View: model.View{Class: model.ClassEnvoy, Namespace: ns}, Resource: e})
		}
	}
	return out, diags, nil
}

// failingResources are the cluster and empty assignment of FailingCluster.
func failingResources(canonical string) (cluster, assignment model.Encoded, err error) {
	name := FailingCluster(canonical)
	cluster, _, err = clusterWire(policy{}, name, "")
	if err != nil {
		return model.Encoded{}, model.Encoded{}, err
	}
	return cluster, sortedWire(name, nil), nil
}
