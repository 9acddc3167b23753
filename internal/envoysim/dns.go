package envoysim

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	dnstablev3 "github.com/envoyproxy/go-control-plane/envoy/data/dns/v3"
	dnsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/dns_filter/v3"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// DNS query types Resolve answers (others get NOTIMP from Envoy).
const (
	TypeA    uint16 = 1
	TypeAAAA uint16 = 28
	TypeSRV  uint16 = 33
)

// Errors Resolve wraps. ErrForwarded: Envoy would send the query to its
// upstream resolvers (client_config is set); ErrNXDomain: it answers "no
// such name" itself.
var (
	ErrForwarded = errors.New("not answered locally: forwarded upstream")
	ErrNXDomain  = errors.New("NXDOMAIN")
)

// Resolve answers a query as the dns_filter of the named listener would,
// from its inline_dns_table: A -> IPv4 addresses, AAAA -> IPv6 addresses,
// SRV -> "priority weight port target" strings; all sorted. A name that is
// in the table but has no record of the asked type yields an empty answer
// and nil error (Envoy answers, it does not forward). Names are compared as
// written, without case folding and without a trailing dot.
//
// How Envoy builds and searches the table
// (source/extensions/filters/udp/dns_filter/dns_filter.cc,
// DnsFilterEnvoyConfig constructor and getEndpointConfigForDomain;
// dns_filter_utils.cc buildServiceName, getDomainSuffix, getProtoName):
//
//   - Every name is filed under its suffix, its last two labels
//     (MAX_SUFFIX_LABEL_COUNT = 2): "web.ns.svc.cluster.local" under
//     "cluster.local". A wildcard "*.x.y" is filed as ".x.y".
//   - address_list: the addresses of a name given twice are merged.
//   - service_list: each DnsService becomes its own name,
//     buildServiceName(service_name, proto, virtual_domain.name) =
//     "_" + service_name + "._" + proto + "." + name, where no "_" is added
//     to a service_name or proto that already starts with one, and proto is
//     protocol.name, else "tcp" for number 6 and "udp" for 17 (any other
//     number: the service is dropped). The domain part is the virtual
//     domain's name as written. The SRV name is stored only if its suffix
//     already exists in the table - service lists never create a suffix -
//     so a virtual domain with a service_list must come after some
//     address_list (or cluster_name) domain with the same last two labels;
//     a second service of the same full name does not replace the first.
//   - Lookup: the query's suffix must be in the table (else: forwarded if
//     client_config is set, NXDOMAIN if not); then the exact name, then
//     each shorter ".rest" form (the longest wildcard first).
//   - SRV answers: one record per target whose host_name is itself a name
//     with an address_list in the table ("priority weight port host_name",
//     the addresses go in the additional section); targets without one are
//     dropped, and no target at all means no local answer (forwarded if
//     client_config is set). Cluster targets and cluster_name endpoints
//     answer from the cluster's hosts; Resolve models them too, but not
//     a query naming a cluster directly (resolveClusterHost).
//   - Not modelled: the 512-byte / 8-record response limit (dns_parser.cc).
func (c *Config) Resolve(listener, name string, qtype uint16) ([]string, error) {
	cfg, err := c.dnsFilter(listener)
	if err != nil {
		return nil, err
	}
	t := buildTable(cfg.GetServerConfig().GetInlineDnsTable())
	forward := cfg.GetClientConfig() != nil
	name = strings.TrimSuffix(name, ".")
	miss := ErrNXDomain
	if forward {
		miss = ErrForwarded
	}
	if qtype != TypeA && qtype != TypeAAAA && qtype != TypeSRV {
		return nil, fmt.Errorf("query type %d: NOTIMP", qtype)
	}
	domains, known := t[suffix(name)]
	if !known && forward {
		return nil, fmt.Errorf("%s: %w", name, ErrForwarded)
	}
	e := lookup(domains, name)
	var out []string
	switch {
	case e == nil:
	case qtype == TypeSRV && e.srv != nil:
		for _, tg := range e.srv {
			if tg.cluster != "" {
				for _, hp := range c.clusterHosts(tg.cluster) {
					port := tg.port
					if port == 0 {
						port = uint32(hp.Port())
					}
					out = append(out, fmt.Sprintf("%d %d %d %s", tg.priority, tg.weight, port, tg.cluster))
				}
				continue
			}
			if te := lookup(t[suffix(tg.host)], tg.host); te != nil && len(te.addrs) > 0 {
				out = append(out, fmt.Sprintf("%d %d %d %s", tg.priority, tg.weight, tg.port, tg.host))
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s: %w", name, miss)
		}
	case qtype != TypeSRV:
		addrs := e.addrs
		if e.cluster != "" {
			for _, hp := range c.clusterHosts(e.cluster) {
				addrs = append(addrs, hp.Addr())
			}
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("%s: %w", name, miss)
		}
		for _, a := range addrs {
			if a.Is4() == (qtype == TypeA) {
				out = append(out, a.String())
			}
		}
		slices.Sort(out)
		return out, nil
	}
	if e == nil || len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", name, miss)
	}
	slices.Sort(out)
	return out, nil
}

func (c *Config) dnsFilter(listener string) (*dnsv3.DnsFilterConfig, error) {
	l, ok := c.Listeners[listener]
	if !ok {
		return nil, fmt.Errorf("listener %q: %w", listener, ErrNoListener)
	}
	for _, lf := range l.GetListenerFilters() {
		var cfg dnsv3.DnsFilterConfig
		if lf.GetTypedConfig().UnmarshalTo(&cfg) == nil {
			return &cfg, nil
		}
	}
	return nil, fmt.Errorf("listener %q has no dns_filter", listener)
}

type srvTarget struct {
	host, cluster          string
	priority, weight, port uint32
}

type dnsEntry struct {
	addrs   []netip.Addr
	cluster string
	srv     []srvTarget
}

// dnsTable: suffix -> stored name -> entry, as DnsFilterEnvoyConfig builds it.
type dnsTable map[string]map[string]*dnsEntry

func buildTable(tbl *dnstablev3.DnsTable) dnsTable {
	t := dnsTable{}
	entry := func(suf, name string, create bool) *dnsEntry {
		if t[suf] == nil {
			if !create {
				return nil
			}
			t[suf] = map[string]*dnsEntry{}
		}
		if t[suf][name] == nil {
			t[suf][name] = &dnsEntry{}
		}
		return t[suf][name]
	}
	for _, vd := range tbl.GetVirtualDomains() {
		vname := vd.GetName()
		if strings.HasPrefix(vname, "*.") {
			vname = vname[1:]
		}
		suf := suffix(vname)
		ep := vd.GetEndpoint()
		if al := ep.GetAddressList(); al != nil {
			e := entry(suf, vname, true)
			for _, s := range al.GetAddress() {
				if a, err := netip.ParseAddr(s); err == nil {
					e.addrs = append(e.addrs, a.Unmap())
				}
			}
		}
		for _, s := range ep.GetServiceList().GetServices() {
			proto := s.GetProtocol().GetName()
			if proto == "" {
				proto = map[uint32]string{6: "tcp", 17: "udp"}[s.GetProtocol().GetNumber()]
			}
			if proto == "" || t[suf] == nil {
				continue
			}
			full := underscore(s.GetServiceName()) + "." + underscore(proto) + "." + vd.GetName()
			if t[suf][full] != nil {
				continue
			}
			e := entry(suf, full, false)
			for _, tg := range s.GetTargets() {
				e.srv = append(e.srv, srvTarget{
					host: tg.GetHostName(), cluster: tg.GetClusterName(),
					priority: tg.GetPriority(), weight: tg.GetWeight(), port: tg.GetPort(),
				})
			}
		}
		if cl := ep.GetClusterName(); cl != "" {
			if e := entry(suf, vname, true); e.cluster == "" {
				e.cluster = cl
			}
		}
	}
	return t
}

func underscore(s string) string {
	if strings.HasPrefix(s, "_") {
		return s
	}
	return "_" + s
}

// suffix is getDomainSuffix: the last two labels of name.
func suffix(name string) string {
	labels := strings.Split(name, ".")
	if len(labels) <= 2 {
		return name
	}
	return strings.Join(labels[len(labels)-2:], ".")
}

// lookup is getEndpointConfigForDomain: the exact name, then each ".rest".
func lookup(domains map[string]*dnsEntry, name string) *dnsEntry {
	for pos := 0; pos >= 0 && pos < len(name); {
		if e, ok := domains[name[pos:]]; ok {
			return e
		}
		next := strings.IndexByte(name[pos+1:], '.')
		if next < 0 {
			break
		}
		pos += next + 1
	}
	return nil
}

// clusterHosts returns every host of a cluster's assignment, whatever its
// health (the dns_filter iterates hostSetsPerPriority hosts()).
func (c *Config) clusterHosts(name string) []netip.AddrPort {
	cl, ok := c.Clusters[name]
	if !ok {
		return nil
	}
	cla := cl.GetLoadAssignment()
	if cla == nil {
		cla = c.Assignments[edsName(cl)]
	}
	var out []netip.AddrPort
	for _, le := range cla.GetEndpoints() {
		for _, e := range le.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			if ap, err := netip.ParseAddrPort(socketString(sa)); err == nil {
				out = append(out, ap)
				continue
			}
			// A host name: Envoy resolves it (STRICT_DNS, LOGICAL_DNS);
			// a LOGICAL_DNS cluster's one host has the first address
			// (source/extensions/clusters/logical_dns/logical_dns_cluster.cc).
			if c.LookupHost == nil {
				continue
			}
			resolved := c.LookupHost(sa.GetAddress())
			if cl.GetType() == clusterv3.Cluster_LOGICAL_DNS && len(resolved) > 0 {
				resolved = resolved[:1]
			}
			for _, a := range resolved {
				out = append(out, netip.AddrPortFrom(a, uint16(sa.GetPortValue())))
			}
		}
	}
	return out
}

// ResolveInPod answers name as an application in a pod of namespace ns
// gets it when the pod's resolver is captured to the named DNS listener:
// glibc with the resolv.conf Kubernetes writes (search "ns.svc.<domain>
// svc.<domain> <domain>", options ndots:5) tries each search suffix, then
// the name as written (the name first when it has five dots or more), and
// takes the first answer. A name the listener forwards is answered by the
// cluster's DNS upstream, which this model does not have: the search goes
// on as on NXDOMAIN, and when no candidate is answered locally the error
// is ErrForwarded if some candidate was forwarded. A name ending in "." is
// tried as written only.
func (c *Config) ResolveInPod(listener, ns, domain, name string, qtype uint16) ([]string, error) {
	var candidates []string
	switch {
	case strings.HasSuffix(name, "."):
		candidates = []string{name}
	default:
		var search []string
		for _, s := range []string{ns + ".svc." + domain, "svc." + domain, domain} {
			search = append(search, name+"."+s)
		}
		if strings.Count(name, ".") >= 5 {
			candidates = append([]string{name}, search...)
		} else {
			candidates = append(search, name)
		}
	}
	last := ErrNXDomain
	forwarded := false
	for _, q := range candidates {
		out, err := c.Resolve(listener, q, qtype)
		switch {
		case err == nil: // an answer, even with no record of qtype (NODATA) ends the search
			return out, nil
		case errors.Is(err, ErrForwarded):
			forwarded = true
		case err != nil && !errors.Is(err, ErrNXDomain):
			return nil, err
		}
		if err != nil {
			last = err
		}
	}
	if forwarded {
		return nil, fmt.Errorf("%s: %w", name, ErrForwarded)
	}
	return nil, last
}
