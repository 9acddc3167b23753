package translator

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/switchboard-xds/switchboard/model"
)

// Protocols of a Service port, as in core/v1.
const (
	protocolTCP  = "TCP"
	protocolUDP  = "UDP"
	protocolSCTP = "SCTP"
)

// Service translates one Service into the resources it contributes, with a
// diagnostic (sorted) for every part of it that could not be translated. It
// never panics and never returns an error: whatever cannot be translated is
// left out and reported, and the rest is translated.
//
// For every TCP port ("" means TCP) of a ClusterIP, NodePort or LoadBalancer
// Service, headless or not, it returns a Listener, RouteConfiguration, Cluster and
// ClusterLoadAssignment that all carry the port's CanonicalName, and the
// port's aliases in model.Resources.Aliases (see portNames); the route's virtual
// host also matches the short names "S:P" and "S" (see portNames), which are
// not aliases. Headless Services are served the same way: the assignment
// lists the pod IPs in both cases.
//
// A Service without endpoints (no EndpointSlice yet, or none with a usable
// endpoint) keeps its Cluster and gets an empty assignment, so clients fail
// fast with UNAVAILABLE rather than see the Service vanish (the world is
// only served once every source has synced, so "no slice" is real).
//
// It returns no resources:
//   - for an ExternalName Service whose externalName is not a DNS name (a
//     diagnostic). A valid one gets, per TCP port, the listener and route
//     and a LOGICAL_DNS cluster to externalName:port (see dnsCluster), no
//     assignment;
//   - for a Service whose name or namespace could not be a Kubernetes name,
//     or when opts is invalid (a diagnostic).
//
// Ports that are skipped with a diagnostic: UDP and SCTP (gRPC speaks TCP;
// kept for Envoy later), port numbers outside 1..65535, an unnamed port of a
// multi-port Service, and a second TCP port with the same number. A port
// whose name no slice carries (Port.Unresolved) still gets its resources,
// with an empty assignment, plus a diagnostic.
func Service(opts Options, svc *model.Service) (model.Resources, []Diagnostic) {
	return ServiceMesh(opts, svc, nil)
}

// ServiceMesh is Service with the mesh routes of mesh (nil: none) applied
// to svc's ports: a port that routes attach to gets, for gRPC clients, the
// RouteConfiguration of its producer routes in place of its own (one route
// to its own cluster) and a namespace variant per namespace with consumer
// routes (see meshRoutes); and when a share of calls cannot be forwarded,
// the cluster and empty assignment of FailingCluster. What the routes ask
// that gRPC clients cannot do comes back as diagnostics naming the route.
func ServiceMesh(opts Options, svc *model.Service, mesh *Mesh) (model.Resources, []Diagnostic) {
	res, diags := service(opts, svc, mesh)
	return res, sortDiagnostics(diags)
}

// service is ServiceMesh without sorting the diagnostics.
func service(opts Options, svc *model.Service, mesh *Mesh) (model.Resources, []Diagnostic) {
	if svc == nil {
		return model.Resources{}, []Diagnostic{{Reason: "nil Service in input; skipped"}}
	}
	key := svc.Key
	diag := func(port, format string, args ...any) Diagnostic {
		return Diagnostic{Service: key, Port: port, Reason: fmt.Sprintf(format, args...)}
	}
	if err := opts.Validate(); err != nil {
		return model.Resources{}, []Diagnostic{diag("", "invalid options: %v", err)}
	}
	if reason := refusal(svc); reason != "" {
		return model.Resources{}, []Diagnostic{diag("", "%s", reason)}
	}
	domain := opts.domain()
	ports, udpPorts, diags := servedPorts(svc, diag)
	threshold, bad := failoverThreshold(svc)
	if bad != "" {
		diags = append(diags, diag("", "%s", bad))
	}
	if svc.Type == model.TypeExternalName {
		udpPorts = nil // no endpoints to send datagrams to
	}
	if len(ports) == 0 && len(udpPorts) == 0 {
		return model.Resources{}, diags
	}
	pol, problems := parsePolicy(svc.Annotations)
	visibleTo, bad := visibility(svc)
	if bad != "" {
		problems = append(problems, bad)
	}
	for _, pr := range problems {
		diags = append(diags, diag("", "%s", pr))
	}
	n := len(ports)
	res := model.Resources{
		Listeners:   make([]model.Encoded, 0, n),
		Routes:      make([]model.Encoded, 0, n),
		Clusters:    make([]model.Encoded, 0, n),
		Assignments: make([]model.Encoded, 0, n),
		Aliases:     make(map[string]string, n*5),
		Visibility:  visibleTo,
	}
	for _, p := range ports {
		label := portLabel(p)
		var names [7]string
		canonical, aliases, short := portNames(&names, domain, key, p.Port, len(ports) == 1)
		if p.Unresolved {
			diags = append(diags, diag(label, "no EndpointSlice carries port name %q", p.Name))
		}
		envoyRoute := opts.Sidecars && IsHTTPPort(p) && len(clusterIPsOf(svc)) > 0
		out, d, err := translatePort(svc, p, pol, threshold, canonical, aliases, short, envoyRoute)
		diags = append(diags, d...)
		if err != nil {
			// Unreachable: every string of a resource is checked first.
			diags = append(diags, diag(label, "%v; port skipped", err))
			continue
		}
		mo, d, err := meshRoutes(RuleInput{Domain: domain, Service: key, Port: label, Canonical: canonical, Mesh: mesh}, svc, p, pol, aliases, short, len(out.routeVariants) > 0)
		diags = append(diags, d...)
		if err == nil && mo.failing {
			var c, a model.Encoded
			if c, a, err = failingResources(canonical); err == nil {
				res.Clusters = append(res.Clusters, c)
				res.Assignments = append(res.Assignments, a)
			}
		}
		if err != nil {
			diags = append(diags, diag(label, "mesh routes: %v; the port's own route is served", err))
			mo = meshOut{}
		}
		if mo.plain != nil {
			out.route = *mo.plain
		}
		if mo.envoy != nil {
			out.routeVariants = []model.Variant{{Type: model.Route, View: model.View{Class: model.ClassEnvoy}, Resource: *mo.envoy}}
		}
		res.Variants = append(res.Variants, mo.variants...)
		for _, a := range aliases {
			res.Aliases[a] = canonical
		}
		res.Listeners = append(res.Listeners, out.listener)
		res.Routes = append(res.Routes, out.route)
		res.Clusters = append(res.Clusters, out.cluster)
		res.Variants = append(res.Variants, out.routeVariants...)
		res.Variants = append(res.Variants, out.clusterVariants...)
		if out.hasAssignments {
			res.Assignments = append(res.Assignments, out.assignments.plain)
			res.Variants = append(res.Variants, out.assignments.zones...)
			res.Variants = append(res.Variants, out.assignments.classes...)
		}
	}
	for _, p := range udpPorts {
		out, d, err := translateUDPPort(svc, p, pol, threshold, udpName(CanonicalName(domain, key, p.Port)))
		diags = append(diags, d...)
		if err != nil {
			diags = append(diags, diag(portLabel(p), "%v; port skipped", err))
			continue
		}
		res.Clusters = append(res.Clusters, out.cluster)
		res.Assignments = append(res.Assignments, out.assignments.plain)
		res.Variants = append(res.Variants, out.assignments.zones...)
		res.Variants = append(res.Variants, out.assignments.classes...)
	}
	// Ports are in number order, names compare as strings (":443" < ":80").
	for _, list := range [][]model.Encoded{res.Listeners, res.Routes, res.Clusters, res.Assignments} {
		slices.SortFunc(list, byName)
	}
	sortVariants(res.Variants)
	if len(res.Aliases) == 0 {
		res.Aliases = nil
	}
	return res, diags
}

// refusal says why svc as a whole gets no resources, or "" when it may:
// the one rule for Service and the sidecar stage (sidecarPorts), so that
// a sidecar never routes to a cluster that Service did not build.
func refusal(svc *model.Service) string {
	if !validKey(svc.Key) {
		return "name must be a DNS-1035 label and namespace a DNS-1123 label; not served"
	}
	switch svc.Type {
	case "", model.TypeClusterIP, model.TypeNodePort, model.TypeLoadBalancer:
	case model.TypeExternalName:
		if !isDNS1123Subdomain(strings.TrimSuffix(svc.ExternalName, ".")) {
			return fmt.Sprintf("externalName %q is not a DNS name; not served", svc.ExternalName)
		}
	default:
		return fmt.Sprintf("unknown Service type %q; not served", svc.Type)
	}
	if len(svc.Ports) == 0 {
		return "Service has no ports; nothing to serve"
	}
	return ""
}

// servedPorts returns the TCP ports of svc that get resources and its UDP
// ports that get a cluster and an assignment for Envoy (see udpName), in
// input order, and a diagnostic for each port it leaves out.
func servedPorts(svc *model.Service, diag func(port, format string, args ...any) Diagnostic) (tcp, udp []*model.Port, diags []Diagnostic) {
	tcp = make([]*model.Port, 0, len(svc.Ports))
	numbers := make(map[int32]bool, len(svc.Ports))
	udpNumbers := map[int32]bool{}
	for i := range svc.Ports {
		p := &svc.Ports[i]
		label := portLabel(p)
		taken := numbers
		switch p.Protocol {
		case "", protocolTCP:
		case protocolUDP:
			taken = udpNumbers
		case protocolSCTP:
			diags = append(diags, diag(label, "protocol %s is not served; port skipped", p.Protocol))
			continue
		default:
			diags = append(diags, diag(label, "unknown protocol %q; port skipped", p.Protocol))
			continue
		}
		if p.Port < 1 || p.Port > 65535 {
			diags = append(diags, diag(label, "invalid port number %d; port skipped", p.Port))
			continue
		}
		if p.Name == "" && len(svc.Ports) > 1 {
			// The API server requires names on every port of a multi-port
			// Service; without one, slice ports cannot be told apart.
			diags = append(diags, diag(label, "unnamed port in a Service with several ports; port skipped"))
			continue
		}
		if taken[p.Port] {
			diags = append(diags, diag(label, "duplicate %s port %d; port skipped", protocolOrTCP(p.Protocol), p.Port))
			continue
		}
		taken[p.Port] = true
		if p.Protocol == protocolUDP {
			udp = append(udp, p)
			continue
		}
		tcp = append(tcp, p)
	}
	return tcp, udp, diags
}

// protocolOrTCP is a port's protocol, "" read as TCP.
func protocolOrTCP(p string) string {
	if p == "" {
		return protocolTCP
	}
	return p
}

// portLabel names a port in diagnostics: its name, else its number.
func portLabel(p *model.Port) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Port))
}

// sortVariants orders variants as model.Resources.Variants are: by type,
// name, then view (class, zone, namespace; "" first).
func sortVariants(vs []model.Variant) {
	slices.SortFunc(vs, func(a, b model.Variant) int {
		return cmp.Or(
			cmp.Compare(a.Type, b.Type),
			byName(a.Resource, b.Resource),
			cmp.Compare(a.View.Class, b.View.Class),
			cmp.Compare(a.View.Zone, b.View.Zone),
			cmp.Compare(a.View.Namespace, b.View.Namespace),
		)
	})
}

// byName orders resources by name.
func byName(a, b model.Encoded) int { return strings.Compare(a.Name, b.Name) }

// sortDiagnostics sorts by namespace, name, port, route, then reason,
// and drops duplicates (a rule shared by a port's plain route and a
// namespace variant is reported once).
func sortDiagnostics(d []Diagnostic) []Diagnostic {
	slices.SortFunc(d, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.Service.Namespace, b.Service.Namespace),
			cmp.Compare(a.Service.Name, b.Service.Name),
			cmp.Compare(a.Port, b.Port),
			cmp.Compare(a.Route.Kind, b.Route.Kind),
			cmp.Compare(a.Route.Namespace, b.Route.Namespace),
			cmp.Compare(a.Route.Name, b.Route.Name),
			cmp.Compare(a.Reason, b.Reason),
			cmp.Compare(a.Feature, b.Feature),
			cmp.Compare(a.Flavour, b.Flavour),
		)
	})
	return slices.Compact(d)
}
