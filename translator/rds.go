package translator

import (
	"slices"
	"sync"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchboard-xds/switchboard/model"
)

// routeConfiguration builds the RouteConfiguration named canonical: one
// virtual host whose domains are the canonical name, every alias of the port
// and its short names (so the host a client dials always matches exactly,
// for gRPC and Envoy alike), and one prefix "/" route to the cluster named
// canonical. None of aliases and short may equal canonical or each other.
//
// Exact domains rather than "*": a client that reaches this route through a
// name that is not one of ours (a misconfigured listener) fails fast with
// "no matching virtual host" instead of silently using this Service.
//
// The messages come from one allocation (see routeMsgs); the route's match
// is shared with every other route (see rootMatch). The route action is the
// route's own, so policy.applyRoute may change it.
func routeConfiguration(canonical string, aliases, short []string) *routev3.RouteConfiguration {
	domains := make([]string, 0, len(aliases)+len(short)+1)
	domains = append(domains, canonical)
	domains = append(domains, aliases...)
	domains = append(domains, short...)
	slices.Sort(domains)
	m := &routeMsgs{}
	m.cluster.Cluster = canonical
	m.action.ClusterSpecifier = &m.cluster
	m.route.Route = &m.action
	m.r.Match = rootMatch()
	m.r.Action = &m.route
	m.routes[0] = &m.r
	m.vh.Name = canonical
	m.vh.Domains = domains
	m.vh.Routes = m.routes[:]
	m.vhs[0] = &m.vh
	m.rc.Name = canonical
	m.rc.VirtualHosts = m.vhs[:]
	return &m.rc
}

// routeMsgs are the messages of one RouteConfiguration, allocated together
// and used in place, the slices of length one included.
type routeMsgs struct {
	rc      routev3.RouteConfiguration
	vhs     [1]*routev3.VirtualHost
	vh      routev3.VirtualHost
	routes  [1]*routev3.Route
	r       routev3.Route
	route   routev3.Route_Route
	action  routev3.RouteAction
	cluster routev3.RouteAction_Cluster
}

// rootMatch returns the match of every route, prefix "/". It is built once
// and the one message is shared by every RouteConfiguration of every
// Service and call: it is never changed after it is built (translation
// output is read-only, see model.Resources).
var rootMatch = sync.OnceValue(func() *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
})

// Field numbers of the RouteConfiguration fields that routeWire writes.
const (
	rcName         = 1 // RouteConfiguration.name
	rcVirtualHosts = 2 // RouteConfiguration.virtual_hosts
	vhName         = 1 // VirtualHost.name
	vhDomains      = 2 // VirtualHost.domains
	vhRoutes       = 3 // VirtualHost.routes
	routeMatch     = 1 // Route.match
	routeAction    = 2 // Route.route (oneof action)
	matchPrefix    = 1 // RouteMatch.prefix (oneof path_specifier)
	actionCluster  = 1 // RouteAction.cluster (oneof cluster_specifier)
)

// routeWire is routeConfiguration(canonical, aliases, short) with pol's
// route policy applied, encoded. Without route policy, the usual case, it
// is written directly: the names are ASCII (DNS names, see portNames), so
// they need no UTF-8 check.
func routeWire(pol policy, canonical string, aliases, short []string) (model.Encoded, error) {
	if pol.hashHeader != "" || pol.timeout > 0 || pol.retryOn != "" {
		rc := routeConfiguration(canonical, aliases, short)
		pol.applyRoute(rc)
		return encode(canonical, rc)
	}
	var few [8]string
	domains := append(append(append(few[:0], canonical), aliases...), short...)
	slices.Sort(domains)
	route := sizeMessage(routeMatch, sizeMessage(matchPrefix, 1)) +
		sizeMessage(routeAction, sizeMessage(actionCluster, len(canonical)))
	vh := sizeMessage(vhName, len(canonical)) + sizeMessage(vhRoutes, route)
	for _, d := range domains {
		vh += sizeMessage(vhDomains, len(d))
	}
	b := make([]byte, 0, sizeMessage(rcName, len(canonical))+sizeMessage(rcVirtualHosts, vh))
	b = appendString(b, rcName, canonical)
	b = appendHeader(b, rcVirtualHosts, vh)
	b = appendString(b, vhName, canonical)
	for _, d := range domains {
		b = appendString(b, vhDomains, d)
	}
	b = appendHeader(b, vhRoutes, route)
	b = appendHeader(b, routeMatch, sizeMessage(matchPrefix, 1))
	b = appendString(b, matchPrefix, "/")
	b = appendHeader(b, routeAction, sizeMessage(actionCluster, len(canonical)))
	b = appendString(b, actionCluster, canonical)
	return model.NewEncoded(canonical, b), nil
}

// envoyRouteWire is the Envoy variant (model.View{Class: ClassEnvoy}) of
// the route configuration named canonical: what an Envoy sidecar's
// outbound listener for the port asks for by RDS. The listener is the
// Service's own (chosen by ClusterIP and port), so its one virtual host
// matches every Host ("*": "S", "S.N:P", the ClusterIP, whatever the
// application wrote); its route has no timeout (Envoy's default is 15 s;
// gRPC streams and long polls are the application's to time out, as
// Istio does), and pol's route policy as gRPC clients get it.
func envoyRouteWire(pol policy, canonical string) (model.Encoded, error) {
	rc := routeConfiguration(canonical, nil, nil)
	rc.VirtualHosts[0].Domains = []string{"*"}
	rc.VirtualHosts[0].Routes[0].GetRoute().Timeout = durationpb.New(0)
	pol.applyRoute(rc)
	return encode(canonical, rc)
}
