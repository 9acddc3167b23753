package translator

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	dnsv3 "github.com/envoyproxy/go-control-plane/envoy/data/dns/v3"
	dnsfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/dns_filter/v3"
	udpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/udp_proxy/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
)

const (
	udpProxyFilterName  = "envoy.filters.udp_listener.udp_proxy"
	dnsFilterName       = "envoy.filters.udp.dns_filter"
	dnsTTL              = 30 * time.Second // the least Envoy accepts
	dnsResolverTimeout  = 5 * time.Second
	dnsMaxPendingLookup = 256
)

// udpPortResources is SidecarUDP for port: a listener "udp_<IP>_P" per
// ClusterIP of every UDP Service on the port, bound to that address
// transparently (the capture rules route datagrams to the Service CIDRs
// locally, so the kernel delivers them to it; Envoy does not hand UDP over
// from another listener), proxying to the port's cluster
// (udpName). Services limited by AnnotationVisibleTo get none: a listener
// cannot differ by namespace the way a chain or a route can.
func udpPortResources(domain string, port int32, ins []sidecarInput) (model.Resources, error) {
	var res model.Resources
	for _, in := range ins {
		if in.visibleTo != nil || in.svc.Headless {
			continue
		}
		cluster := udpName(CanonicalName(domain, in.svc.Key, port))
		for _, a := range addrs(in.svc.ClusterIPs) {
			name := "udp_" + a.String() + "_" + strconv.Itoa(int(port))
			l, err := udpListener(name, a, port, cluster)
			if err != nil {
				return model.Resources{}, err
			}
			e, err := encode(name, l)
			if err != nil {
				return model.Resources{}, err
			}
			res.Listeners = append(res.Listeners, e)
		}
	}
	slices.SortFunc(res.Listeners, byName)
	res.Listeners = slices.CompactFunc(res.Listeners, func(a, b model.Encoded) bool { return a.Name == b.Name })
	return res, nil
}

func udpListener(name string, a netip.Addr, port int32, cluster string) (*listenerv3.Listener, error) {
	route, err := deterministicAny(&udpproxyv3.Route{Cluster: cluster})
	if err != nil {
		return nil, err
	}
	up, err := deterministicAny(&udpproxyv3.UdpProxyConfig{
		StatPrefix: cluster,
		RouteSpecifier: &udpproxyv3.UdpProxyConfig_Matcher{Matcher: &xdsmatcherv3.Matcher{
			OnNoMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{
				Action: &xdscorev3.TypedExtensionConfig{Name: "route", TypedConfig: route},
			}},
		}},
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:              name,
		Address:           listenAddress(a.String(), port, corev3.SocketAddress_UDP),
		Freebind:          wrapperspb.Bool(true),
		Transparent:       wrapperspb.Bool(true),
		TrafficDirection:  corev3.TrafficDirection_OUTBOUND,
		UdpListenerConfig: &listenerv3.UdpListenerConfig{},
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name:       udpProxyFilterName,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: up},
		}},
	}, nil
}

// validateSidecarDNS checks Options.SidecarDNS: "" or a literal IP and a
// port.
func (o Options) validateSidecarDNS() error {
	if o.SidecarDNS == "" {
		return nil
	}
	if _, err := parseSidecarDNS(o.SidecarDNS); err != nil {
		return err
	}
	return nil
}

func parseSidecarDNS(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("sidecar DNS address %q: %w", s, err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("sidecar DNS address %q: want a literal IP: %w", s, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return netip.AddrPort{}, fmt.Errorf("sidecar DNS address %q: want a port from 1 to 65535", s)
	}
	return netip.AddrPortFrom(a, uint16(n)), nil
}

// dnsResources is SidecarDNS: the DNS listener (when Options.SidecarDNS is
// set), whose inline table answers for every Service of ins, and its
// namespace variants (short names, limited Services). Names the table does
// not hold are forwarded to the resolvers of Envoy's host.
func dnsResources(opts Options, ins []sidecarInput) (model.Resources, error) {
	if opts.SidecarDNS == "" {
		return model.Resources{}, nil
	}
	at, err := parseSidecarDNS(opts.SidecarDNS)
	if err != nil {
		return model.Resources{}, err
	}
	domain := opts.domain()
	plain, vs, err := dnsVariants(at, domain, ins)
	if err != nil {
		return model.Resources{}, err
	}
	return model.Resources{Listeners: []model.Encoded{plain}, Variants: vs}, nil
}

// dnsDomains are the records of one Service: "S.N.svc.<domain>",
// "S.N.svc" and "S.N" (and with short "S", for its own namespace) answer
// with its ClusterIPs, or a headless Service's endpoint addresses; and per
// named port an SRV record _<name>._<tcp|udp>.S.N.svc.<domain> pointing at
// S.N.svc.<domain>:P, as Kubernetes DNS gives them. The SRV entry comes
// after the address entries of the same name: Envoy files an SRV name
// under a suffix only an address entry creates, and answers an SRV target
// only with a name the table has addresses for (dns_filter.cc).
func dnsDomains(domain string, in sidecarInput, short bool) []*dnsv3.DnsTable_DnsVirtualDomain {
	var out []*dnsv3.DnsTable_DnsVirtualDomain
	ttl := durationpb.New(dnsTTL)
	k := in.svc.Key
	ips := in.svc.ClusterIPs
	if in.svc.Headless {
		for i := range in.svc.Ports {
			ips = append(ips, endpointAddresses(&in.svc.Ports[i])...)
		}
		slices.Sort(ips)
		ips = slices.Compact(ips)
	}
	if len(ips) == 0 {
		return nil // nothing to answer, and SRV targets need addresses
	}
	names := hostNames(domain, k, short)
	full := names[0]
	for _, n := range names {
		out = append(out, &dnsv3.DnsTable_DnsVirtualDomain{
			Name:      n,
			Endpoint:  &dnsv3.DnsTable_DnsEndpoint{EndpointConfig: &dnsv3.DnsTable_DnsEndpoint_AddressList{AddressList: &dnsv3.DnsTable_AddressList{Address: ips}}},
			AnswerTtl: ttl,
		})
	}
	var srv []*dnsv3.DnsTable_DnsService
	tcp, udp := sidecarPorts(in.svc)
	for _, p := range slices.Concat(tcp, udp) {
		if p.Name == "" {
			continue
		}
		srv = append(srv, &dnsv3.DnsTable_DnsService{
			ServiceName: p.Name,
			Protocol:    &dnsv3.DnsTable_DnsServiceProtocol{ProtocolConfig: &dnsv3.DnsTable_DnsServiceProtocol_Name{Name: strings.ToLower(protocolOrTCP(p.Protocol))}},
			Ttl:         ttl,
			Targets: []*dnsv3.DnsTable_DnsServiceTarget{{
				EndpointType: &dnsv3.DnsTable_DnsServiceTarget_HostName{HostName: full},
				Weight:       100,
				Port:         uint32(p.Port),
			}},
		})
	}
	if len(srv) > 0 {
		out = append(out, &dnsv3.DnsTable_DnsVirtualDomain{
			Name:      full,
			Endpoint:  &dnsv3.DnsTable_DnsEndpoint{EndpointConfig: &dnsv3.DnsTable_DnsEndpoint_ServiceList{ServiceList: &dnsv3.DnsTable_DnsServiceList{Services: srv}}},
			AnswerTtl: ttl,
		})
	}
	return out
}

// dnsListenerParts is the DNS listener without its filter, and the filter's
// config without its table.
func dnsListenerParts(at netip.AddrPort) (*listenerv3.Listener, *dnsfilterv3.DnsFilterConfig) {
	l := &listenerv3.Listener{
		Name:              DNSListenerName,
		Address:           listenAddress(at.Addr().String(), int32(at.Port()), corev3.SocketAddress_UDP),
		UdpListenerConfig: &listenerv3.UdpListenerConfig{},
	}
	cfg := &dnsfilterv3.DnsFilterConfig{
		StatPrefix: DNSListenerName,
		// A client config, even with every field at its default but
		// max_pending_lookups (which must be at least 1), makes the
		// filter forward what the table does not hold, to the resolvers
		// of Envoy's host.
		ClientConfig: &dnsfilterv3.DnsFilterConfig_ClientContextConfig{
			ResolverTimeout:   durationpb.New(dnsResolverTimeout),
			MaxPendingLookups: dnsMaxPendingLookup,
		},
	}
	return l, cfg
}
