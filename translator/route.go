package translator

import (
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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
func routeConfiguration(canonical string, aliases, short []string) *routev3.RouteConfiguration {
	domains := make([]string, 0, len(aliases)+len(short)+1)
	domains = append(domains, canonical)
	domains = append(domains, aliases...)
	domains = append(domains, short...)
	slices.Sort(domains)
	return &routev3.RouteConfiguration{
		Name: canonical,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    canonical,
			Domains: domains,
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{
					PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				},
				Action: &routev3.Route_Route{
					Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: canonical},
					},
				},
			}},
		}},
	}
}
