package translator

// The DNS listener built as a message: the reference that the assembled
// wire form (sidecar_wire.go) is checked against
// (TestSidecarWireEqualsMessages). Production builds it from each
// Service's marshalled records only.

import (
	"net/netip"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	dnsv3 "github.com/envoyproxy/go-control-plane/envoy/data/dns/v3"
	dnsfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/dns_filter/v3"

	"github.com/switchboard-xds/switchboard/model"
)

// dnsTable is the table of svcs, in the order given: the records of each
// (dnsDomains).
func dnsTable(domain string, svcs []*model.Service) *dnsv3.DnsTable {
	t := &dnsv3.DnsTable{}
	for _, svc := range svcs {
		t.VirtualDomains = append(t.VirtualDomains, dnsDomains(domain, svc)...)
	}
	return t
}

// dnsListener is the DNS listener at at serving table.
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
