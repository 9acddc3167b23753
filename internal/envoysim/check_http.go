package envoysim

import (
	"errors"
	"fmt"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	udpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/udp_proxy/v3"
	"google.golang.org/protobuf/proto"
)

func hcmOf(m proto.Message) (*hcmv3.HttpConnectionManager, bool) {
	h, ok := m.(*hcmv3.HttpConnectionManager)
	return h, ok
}

// checkHCM models source/common/http/filter_chain_helper.h processFilter and
// source/common/config/utility.cc validateTerminalFilters: the router is the
// terminal HTTP filter, so it must be present and last.
func checkHCM(path string, h *hcmv3.HttpConnectionManager) []error {
	fs := h.GetHttpFilters()
	if len(fs) == 0 {
		return []error{fmt.Errorf("%s: no http_filters (router missing)", path)}
	}
	var errs []error
	for i, f := range fs {
		isRouter := f.GetTypedConfig().MessageIs(&routerv3.Router{})
		if isRouter && i != len(fs)-1 {
			errs = append(errs, fmt.Errorf("%s: terminal filter named %s must be the last filter in a http filter chain", path, f.GetName()))
		}
		if !isRouter && i == len(fs)-1 {
			errs = append(errs, fmt.Errorf("%s: last http filter %q is not the router", path, f.GetName()))
		}
		if f.GetTypedConfig() == nil && f.GetConfigDiscovery() == nil {
			errs = append(errs, fmt.Errorf("%s: http filter %q has no typed_config", path, f.GetName()))
		}
	}
	return errs
}

// clustersNamedBy returns the clusters a tcp_proxy, udp_proxy (deprecated
// cluster field, or a matcher's Route action: udp_proxy/router/router_impl.cc
// RouterImpl) or route action sends traffic to.
func clustersNamedBy(m proto.Message) []string {
	var out []string
	switch r := m.(type) {
	case *tcpproxyv3.TcpProxy:
		out = append(out, r.GetCluster())
		for _, w := range r.GetWeightedClusters().GetClusters() {
			out = append(out, w.GetName())
		}
	case *udpproxyv3.UdpProxyConfig:
		out = append(out, r.GetCluster()) //nolint:staticcheck // deprecated, but Envoy still reads it
	case *udpproxyv3.Route:
		out = append(out, r.GetCluster())
	case *routev3.RouteAction:
		out = append(out, r.GetCluster())
		for _, w := range r.GetWeightedClusters().GetClusters() {
			out = append(out, w.GetName())
		}
	}
	return nonEmpty(out)
}

func nonEmpty(in []string) []string {
	out := in[:0]
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// checkRouteConfig models the RouteMatcher constructor in
// source/common/router/config_impl.cc: a domain appears once across all the
// virtual hosts of a route configuration, and "*" at most once.
func checkRouteConfig(rc *routev3.RouteConfiguration, refs map[string][]string) []error {
	var errs []error
	if err := rc.ValidateAll(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, walk(rc, "", func(path string, m proto.Message) {
		// A route that sets cluster_not_found_response_code to something
		// other than the default 503 names a cluster it knows does not
		// exist, to answer with that code (the translator's share of an
		// unresolved backend of an HTTPRoute: 500, as the spec asks).
		if a, ok := m.(*routev3.RouteAction); ok && a.GetClusterNotFoundResponseCode() != routev3.RouteAction_SERVICE_UNAVAILABLE {
			return
		}
		for _, cl := range clustersNamedBy(m) {
			refs[cl] = append(refs[cl], fmt.Sprintf("route configuration %q %s", rc.GetName(), path))
		}
	})...)
	seen := map[string]string{}
	wildcards := 0
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			if d == "*" {
				wildcards++
				if wildcards == 2 {
					errs = append(errs, errors.New("only a single wildcard domain is permitted"))
				}
				continue
			}
			if other, dup := seen[d]; dup {
				errs = append(errs, fmt.Errorf("only unique values for domains are permitted: duplicate entry of domain %s in virtual hosts %q and %q", d, other, vh.GetName()))
				continue
			}
			seen[d] = vh.GetName()
		}
	}
	return errs
}
