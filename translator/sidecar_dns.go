package translator

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	dnsv3 "github.com/envoyproxy/go-control-plane/envoy/data/dns/v3"
	dnsfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/dns_filter/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchboard-xds/switchboard/model"
)

const (
	dnsFilterName       = "envoy.filters.udp.dns_filter"
	dnsTTL              = 30 * time.Second // the least Envoy accepts
	dnsResolverTimeout  = 5 * time.Second
	dnsMaxPendingLookup = 256
)

// validateSidecarDNS checks Options.SidecarDNS: "", or one or two
// "IP:port" separated by a comma, at most one of each IP family.
func (o Options) validateSidecarDNS() error {
	_, err := sidecarDNSAddrs(o.SidecarDNS)
	return err
}

// sidecarDNSAddrs parses Options.SidecarDNS, IPv4 first.
func sidecarDNSAddrs(s string) ([]netip.AddrPort, error) {
	if s == "" {
		return nil, nil
	}
	var out []netip.AddrPort
	for _, one := range strings.Split(s, ",") {
		at, err := parseSidecarDNS(strings.TrimSpace(one))
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(o netip.AddrPort) bool { return o.Addr().Is4() == at.Addr().Is4() }) {
			return nil, fmt.Errorf("sidecar DNS addresses %q: at most one IPv4 and one IPv6 address", s)
		}
		out = append(out, at)
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return cmp.Compare(dnsListenerName(a), dnsListenerName(b)) })
	return out, nil
}

// dnsListenerName is DNSListenerName for an IPv4 address, DNS6ListenerName
// for an IPv6 one.
func dnsListenerName(at netip.AddrPort) string {
	if at.Addr().Is4() {
		return DNSListenerName
	}
	return DNS6ListenerName
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
	a = a.Unmap()
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return netip.AddrPort{}, fmt.Errorf("sidecar DNS address %q: want a port from 1 to 65535", s)
	}
	return netip.AddrPortFrom(a, uint16(n)), nil
}

// inDNSTable reports whether svc has records in the DNS table: a Service
// that Service translates, with a port that has a cluster, that every
// client may see (a Service limited by AnnotationVisibleTo is left to the
// pod's own resolver, so that it costs the sidecars that may not see it
// nothing), and that has something to answer with: ClusterIPs, or, for a
// headless or ExternalName Service, a cluster.
func inDNSTable(svc *model.Service) bool {
	_, _, ok := dnsPorts(svc)
	return ok
}

// dnsPorts returns the served TCP and UDP ports of svc (servedByService),
// and whether svc has records in the table (see inDNSTable).
func dnsPorts(svc *model.Service) (tcp, udp []*model.Port, ok bool) {
	tcp, udp = servedByService(svc)
	if len(tcp)+len(udp) == 0 {
		return nil, nil, false
	}
	if visibleTo, _ := visibility(svc); len(visibleTo) > 0 {
		return nil, nil, false
	}
	return tcp, udp, len(validIPs(clusterIPsOf(svc))) > 0 || svc.Headless || svc.Type == model.TypeExternalName
}

// validIPs returns the addresses of ips that parse, as written.
func validIPs(ips []string) []string {
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		if _, err := netip.ParseAddr(ip); err == nil {
			out = append(out, ip)
		}
	}
	return out
}

// dnsDomains are the records of one Service in the table, under its full
// name "S.N.svc.<domain>" only: the pod's resolver, with the search path
// Kubernetes writes into its resolv.conf ("N.svc.<domain>",
// "svc.<domain>", "<domain>", ndots 5), asks for that name when the
// application asks for "S", "S.N" or "S.N.svc".
//
//   - A Service with ClusterIPs answers A/AAAA with them.
//   - A headless Service answers through the cluster of its first port
//     (cluster_name): Envoy's DNS filter reads the cluster's hosts at query
//     time, so its pod IPs come from the assignment and a rollout changes
//     no table.
//   - An ExternalName Service answers through its LOGICAL_DNS cluster: the
//     address Envoy resolved externalName to (the DNS filter has no CNAME),
//     which the application then reaches through the passthrough cluster.
//
// No SRV records: they would double the table (about 75 bytes per Service
// without, 155 with one named port), putting it over 1 MiB at 10,000
// Services, and an SRV query the table cannot answer is forwarded to the
// pod's resolver, the cluster's DNS, which answers it as before.
func dnsDomains(domain string, svc *model.Service) []*dnsv3.DnsTable_DnsVirtualDomain {
	tcp, udp, ok := dnsPorts(svc)
	if !ok {
		return nil
	}
	ttl := durationpb.New(dnsTTL)
	full := svc.Key.Name + "." + svc.Key.Namespace + ".svc." + domain
	if ips := validIPs(clusterIPsOf(svc)); len(ips) > 0 {
		return []*dnsv3.DnsTable_DnsVirtualDomain{{
			Name:      full,
			Endpoint:  &dnsv3.DnsTable_DnsEndpoint{EndpointConfig: &dnsv3.DnsTable_DnsEndpoint_AddressList{AddressList: &dnsv3.DnsTable_AddressList{Address: ips}}},
			AnswerTtl: ttl,
		}}
	}
	cluster := ""
	switch {
	case len(tcp) > 0:
		cluster = CanonicalName(domain, svc.Key, tcp[0].Port)
	case len(udp) > 0:
		cluster = udpName(CanonicalName(domain, svc.Key, udp[0].Port))
	}
	return []*dnsv3.DnsTable_DnsVirtualDomain{{
		Name:      full,
		Endpoint:  &dnsv3.DnsTable_DnsEndpoint{EndpointConfig: &dnsv3.DnsTable_DnsEndpoint_ClusterName{ClusterName: cluster}},
		AnswerTtl: ttl,
	}}
}

// DNSRecords are one Service's entries of the DNS table, marshalled: the
// unit the pipeline keeps per Service, so that a new table is the
// concatenation of what it holds (DNSListener) and a change of one Service
// marshals that Service only.
type DNSRecords struct {
	Key model.ServiceKey
	// Wire is a run of DnsTable.virtual_domains fields; nil for a Service
	// with no records.
	Wire []byte
}

// CompareDNSRecords orders records by Service key, namespace first: the
// order of the table.
func CompareDNSRecords(a, b DNSRecords) int {
	return cmp.Or(cmp.Compare(a.Key.Namespace, b.Key.Namespace), cmp.Compare(a.Key.Name, b.Key.Name))
}

// NewDNSRecords returns the records of svc in the DNS table (see
// dnsDomains); Wire is nil for a Service without any, or when opts has no
// DNS listener.
func NewDNSRecords(opts Options, svc *model.Service) (DNSRecords, error) {
	if svc == nil {
		return DNSRecords{}, nil
	}
	r := DNSRecords{Key: svc.Key}
	if opts.SidecarDNS == "" {
		return r, nil
	}
	vds := dnsDomains(opts.domain(), svc)
	if len(vds) == 0 {
		return r, nil
	}
	b, err := deterministic.Marshal(&dnsv3.DnsTable{VirtualDomains: vds})
	if err != nil {
		return DNSRecords{}, fmt.Errorf("dns records of %s: %w", svc.Key, err)
	}
	r.Wire = b
	return r, nil
}

// DNSListener builds the DNS listeners at Options.SidecarDNS (none when
// it is ""): DNSListenerName at its IPv4 address, DNS6ListenerName at its
// IPv6 one, each with the inline table of records, in Service key order
// whatever the order of records (records already in that order are used as
// they are). Names the table does not hold are forwarded to the resolvers
// of Envoy's host.
func DNSListener(opts Options, records []DNSRecords) (model.Resources, error) {
	ats, err := sidecarDNSAddrs(opts.SidecarDNS)
	if err != nil || len(ats) == 0 {
		return model.Resources{}, err
	}
	if !slices.IsSortedFunc(records, CompareDNSRecords) {
		records = slices.Clone(records)
		slices.SortFunc(records, CompareDNSRecords)
	}
	var res model.Resources
	for _, at := range ats {
		l, err := dnsListenerWire(at, records)
		if err != nil {
			return model.Resources{}, err
		}
		res.Listeners = append(res.Listeners, l)
	}
	return res, nil
}

// dnsListenerParts is the DNS listener without its filter, and the filter's
// config without its table.
func dnsListenerParts(at netip.AddrPort) (*listenerv3.Listener, *dnsfilterv3.DnsFilterConfig) {
	l := &listenerv3.Listener{
		Name:              dnsListenerName(at),
		Address:           listenAddress(at.Addr().String(), int32(at.Port()), corev3.SocketAddress_UDP),
		UdpListenerConfig: &listenerv3.UdpListenerConfig{},
	}
	cfg := &dnsfilterv3.DnsFilterConfig{
		StatPrefix: dnsListenerName(at),
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
