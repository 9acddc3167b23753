package translator

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// UnknownDomain is the only domain of the route in an UnknownListener. The
// .invalid top-level domain (RFC 2606) can match no dialled name.
const UnknownDomain = "no-such-service.switchboard.invalid"

// UnknownListener builds the listener served for a subscribed listener name
// that names no Service: its inline route has a single virtual host that no
// target can match, so a client fails its calls at once with an error that
// names what it dialled (grpc-go: `could not find VirtualHost for "NAME"`;
// C-core likewise), instead of waiting for its 15 s does-not-exist timer:
// grpc-go v1.85 treats a name missing from an LDS response as not existing
// only after it has once received it, and it does not read gRFC A88
// per-resource errors. grpc-js-xds keeps waiting on a route that matches
// nothing, as it does for a missing listener. When the Service appears, the
// server replaces this listener with the real one and clients recover.
// It returns nil only for a name that is not valid UTF-8.
func UnknownListener(name string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: UnknownDomain,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{
			RouteConfig: &routev3.RouteConfiguration{
				Name: UnknownDomain,
				VirtualHosts: []*routev3.VirtualHost{{
					Name:    UnknownDomain,
					Domains: []string{UnknownDomain},
					Routes: []*routev3.Route{{
						Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
						Action: &routev3.Route_Route{Route: &routev3.RouteAction{
							ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: UnknownDomain},
						}},
					}},
				}},
			},
		},
		HttpFilters: []*hcmv3.HttpFilter{routerFilter()},
	}
	return listenerOf(name, hcm)
}
