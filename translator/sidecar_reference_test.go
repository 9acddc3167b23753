package translator

// The sidecar stage's resources built as messages: the reference that the
// assembled wire form (sidecar_wire.go) is checked against
// (TestSidecarWireEqualsMessages). Production builds them from each
// Service's marshalled entries only.

import (
	"net/netip"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	dnsv3 "github.com/envoyproxy/go-control-plane/envoy/data/dns/v3"
	dnsfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/dns_filter/v3"
)

// portRoute builds route configuration routeName of a TCP port for
// sidecars of namespace ns: a virtual host per HTTP-family Service that
// ns may see, then the pass-through virtual host. It is the reference
// that routeVariants' wire assembly is tested against.
func portRoute(domain string, port int32, routeName, ns string, http []sidecarInput) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: routeName}
	for _, in := range http {
		if in.mayBeSeenBy(ns) {
			rc.VirtualHosts = append(rc.VirtualHosts, httpVHost(domain, port, in, ns == in.svc.Key.Namespace))
		}
	}
	rc.VirtualHosts = append(rc.VirtualHosts, sidecarVHost(passthroughVHost, []string{"*"}, PassthroughClusterName))
	return rc
}

// dnsTable is the table sidecars of namespace ns get: the records of
// every Service they may see (dnsDomains). It is the reference that
// dnsVariants' wire assembly is tested against.
func dnsTable(domain, ns string, ins []sidecarInput) *dnsv3.DnsTable {
	t := &dnsv3.DnsTable{}
	for _, in := range ins {
		if in.mayBeSeenBy(ns) {
			t.VirtualDomains = append(t.VirtualDomains, dnsDomains(domain, in, ns == in.svc.Key.Namespace)...)
		}
	}
	return t
}

// dnsListener is the DNS listener at at serving table. It is the
// reference that dnsVariants' wire assembly is tested against; parts of it
// (dnsListenerParts) are what that assembly marshals.
func dnsListener(at netip.AddrPort, table *dnsv3.DnsTable) (*listenerv3.Listener, error) {
	l, cfg := dnsListenerParts(at)
	cfg.ServerConfig = &dnsfilterv3.DnsFilterConfig_ServerContextConfig{
		ConfigSource: &dnsfilterv3.DnsFilterConfig_ServerContextConfig_InlineDnsTable{InlineDnsTable: table},
	}
	f, err := deterministicAny(cfg)
	if err != nil {
		return nil, err
	}
	l.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name:       dnsFilterName,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: f},
	}}
	return l, nil
}
