package translator

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// This file orders the rules of the mesh routes that apply to one Service
// port and turns each of their matches into a route of a virtual host:
// RouteRules, used for the gRPC RouteConfiguration of the port and for
// Envoy's variant of it alike.

// RuleInput is what RouteRules needs besides the routes: which port they
// are for and what their backends may resolve to.
type RuleInput struct {
	// Domain is the cluster domain (see Options.ClusterDomain).
	Domain string
	// Service and Port name the port in diagnostics (Port its name or
	// number); Canonical is its canonical name, from which the name of its
	// failing cluster comes (see FailingCluster).
	Service   model.ServiceKey
	Port      string
	Canonical string
	Mesh      *Mesh
}

// RuleOutput is what RouteRules returns.
type RuleOutput struct {
	// Routes are the routes of the virtual host, most precedent first. No
	// route matches what no rule matches: the spec's 404 (Envoy answers
	// 404; a gRPC client fails the call with UNAVAILABLE, "no matching
	// route").
	Routes []*routev3.Route
	// Failing is set when a route of Routes sends a share of calls to
	// FailingCluster(Canonical), which the caller must then serve.
	Failing bool
	// Diagnostics say what of the routes could not be applied as written,
	// and what the clients get instead.
	Diagnostics []Diagnostic
}

// FailingCluster names the cluster that gRPC clients are sent the share of
// calls that cannot be forwarded (an unresolved backend, a filter gRPC
// cannot apply) for the port whose canonical name is canonical. It is an
// EDS cluster whose assignment has no endpoint: the calls sent to it fail
// at once with UNAVAILABLE in grpc-go, grpc-js-xds and C-core (the same
// path as a Service without endpoints), as the GRPCRoute spec asks, and
// every other call of the rule is unaffected. A weighted cluster that does
// not exist would instead stall grpc-go's whole channel until its 15 s
// does-not-exist timer, and a route with a non-forwarding action is NACKed
// by grpc-js-xds.
func FailingCluster(canonical string) string { return canonical + "/unresolved" }

// envoyInvalidCluster names the cluster Envoy sends the share of requests
// of an unresolved backend to. It is never served: with the route's
// cluster_not_found_response_code, Envoy answers those requests 500, as
// the HTTPRoute spec asks (an empty cluster would answer 503). A
// GRPCRoute's share goes to FailingCluster instead: 503, which gRPC reads
// as UNAVAILABLE, as the GRPCRoute spec asks.
func envoyInvalidCluster(canonical string) string { return canonical + "/invalid-backend" }

// RouteRules returns the routes that routes (all attached to one Service
// port, and all applying to the same clients: see attachedRoutes) give that
// port's virtual host for clients of flavour f. Each match of each rule is
// one route, ordered as the Gateway API orders them (see entryOrder);
// matches f cannot express are left out, and filters it cannot apply are
// reported, with what the clients get instead (see ruleRoute). Routes of
// one kind only are used, as the spec forbids merging HTTPRoutes and
// GRPCRoutes: the kind of the oldest route (then first by namespace/name).
func RouteRules(in RuleInput, routes []*model.MeshRoute, f Flavour) RuleOutput {
	var out RuleOutput
	routes = slices.Clone(routes)
	slices.SortFunc(routes, routeOrder)
	if len(routes) == 0 {
		return out
	}
	kind := routes[0].Key.Kind
	var entries []entry
	for _, r := range routes {
		if r.Key.Kind != kind {
			out.Diagnostics = append(out.Diagnostics, in.diag(r, "", fmt.Sprintf(
				"not applied: the port also has the older %s %s/%s, and HTTPRoutes and GRPCRoutes are not merged",
				kind, routes[0].Key.Namespace, routes[0].Key.Name)))
			continue
		}
		for i := range r.Rules {
			rule := &r.Rules[i]
			matches := rule.Matches
			if len(matches) == 0 {
				matches = []model.RouteMatch{{}} // every request
			}
			for j, m := range matches {
				rm, reason, feature := matchOf(kind, m, f)
				if rm == nil {
					d := in.diag(r, feature, fmt.Sprintf("rule %s match %d: %s", ruleLabel(i, rule), j, reason))
					if feature != "" {
						d.Flavour = f
					}
					out.Diagnostics = append(out.Diagnostics, d)
					continue
				}
				entries = append(entries, entry{route: r, rule: i, match: j, m: m, rm: rm})
			}
		}
	}
	slices.SortStableFunc(entries, entryOrder)
	built := map[[2]int]bool{}
	byRoute := map[*model.MeshRoute]int{}
	for i, r := range routes {
		byRoute[r] = i
	}
	for _, e := range entries {
		rule := &e.route.Rules[e.rule]
		b := ruleBuild{in: &in, route: e.route, index: e.rule, rule: rule, f: f}
		// Diagnostics of a rule once, not once per match.
		id := [2]int{byRoute[e.route], e.rule}
		rt := b.build(e.m)
		if !built[id] {
			built[id] = true
			out.Diagnostics = append(out.Diagnostics, b.diags...)
		}
		rt.Name = routeName(e.route, e.rule, e.match)
		rt.Match = e.rm
		out.Routes = append(out.Routes, rt)
		out.Failing = out.Failing || b.failing
	}
	return out
}

// entry is one match of one rule of one route.
type entry struct {
	route       *model.MeshRoute
	rule, match int
	m           model.RouteMatch
	rm          *routev3.RouteMatch
}

// routeOrder orders routes as the spec breaks ties between them: the
// oldest first, then by namespace/name.
func routeOrder(a, b *model.MeshRoute) int {
	return cmp.Or(
		a.Created.Compare(b.Created),
		cmp.Compare(a.Key.Namespace, b.Key.Namespace),
		cmp.Compare(a.Key.Name, b.Key.Name),
		cmp.Compare(a.Key.Kind, b.Key.Kind),
	)
}

// entryOrder is the precedence of matches across every rule of the routes
// of a port, most precedent first, as the Gateway API specifies it:
//
//   - HTTPRoute: an Exact path, then (ours: the spec leaves it to the
//     implementation) a RegularExpression path, then a PathPrefix, longest
//     first; then a method match; then most header matches; then most query
//     parameter matches;
//   - GRPCRoute: most characters in the service, then in the method (a
//     match without service or method has none), then most header matches;
//
// then the oldest route, the route first by namespace/name, and within a
// route its rules and matches in list order. (Hostnames do not apply to a
// Service parent.)
func entryOrder(a, b entry) int {
	var c int
	if a.route.Key.Kind == model.KindGRPCRoute {
		c = cmp.Or(
			-cmp.Compare(grpcLen(a.m, true), grpcLen(b.m, true)),
			-cmp.Compare(grpcLen(a.m, false), grpcLen(b.m, false)),
			-cmp.Compare(len(a.m.Headers), len(b.m.Headers)),
		)
	} else {
		c = cmp.Or(
			cmp.Compare(pathRank(a.m.Path), pathRank(b.m.Path)),
			-cmp.Compare(pathLen(a.m.Path), pathLen(b.m.Path)),
			-cmp.Compare(boolInt(a.m.Method != ""), boolInt(b.m.Method != "")),
			-cmp.Compare(len(a.m.Headers), len(b.m.Headers)),
			-cmp.Compare(len(a.m.QueryParams), len(b.m.QueryParams)),
		)
	}
	return cmp.Or(c, routeOrder(a.route, b.route), cmp.Compare(a.rule, b.rule), cmp.Compare(a.match, b.match))
}

func pathRank(p *model.PathMatch) int {
	if p == nil {
		return 2
	}
	switch p.Type {
	case model.MatchExact:
		return 0
	case model.MatchRegularExpression:
		return 1
	}
	return 2
}

func pathLen(p *model.PathMatch) int {
	if p == nil {
		return 1 // "/"
	}
	if p.Type == model.MatchPathPrefix || p.Type == "" {
		return max(len(strings.TrimRight(p.Value, "/")), 1)
	}
	return len(p.Value)
}

func grpcLen(m model.RouteMatch, service bool) int {
	if m.GRPC == nil {
		return 0
	}
	if service {
		return len(m.GRPC.Service)
	}
	return len(m.GRPC.Method)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// routeName names the route of match j of rule i of r, for debugging
// (grpc-go and Envoy ignore it): "kind/namespace/name/rule/i/match/j".
func routeName(r *model.MeshRoute, i, j int) string {
	return strings.ToLower(r.Key.Kind) + "/" + r.Key.Namespace + "/" + r.Key.Name +
		"/rule/" + strconv.Itoa(i) + "/match/" + strconv.Itoa(j)
}

// ruleLabel names a rule in diagnostics: its name, else its index.
func ruleLabel(i int, rule *model.RouteRule) string {
	if rule.Name != "" {
		return rule.Name
	}
	return strconv.Itoa(i)
}

// diag is a diagnostic about route r on the input's port; feature names a
// Gateway API feature that is not applied as written ("" for none).
func (in *RuleInput) diag(r *model.MeshRoute, feature, reason string) Diagnostic {
	return Diagnostic{Service: in.Service, Port: in.Port, Route: r.Key, Feature: feature, Reason: reason}
}
