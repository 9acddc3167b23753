package envoysim

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	dnsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/dns_filter/v3"
	"google.golang.org/protobuf/proto"
)

// Check returns every rule Envoy would enforce on loading c that c breaks,
// each error naming the resource ("listener X: ..."), sorted by text. An
// empty result means Envoy would ACK every resource and no reference dangles.
// The rules and their sources are listed on each helper below; ENVOY.md has
// the same list with the error texts Envoy prints.
func Check(c *Config) []error {
	var errs []error
	for _, n := range c.dupListeners {
		// source/common/listener_manager/lds_api.cc onConfigUpdate.
		errs = append(errs, fmt.Errorf("listener %q: duplicate listener %s found", n, n))
	}
	refs := map[string][]string{} // cluster name -> referrers
	for _, name := range sortedKeys(c.Listeners) {
		for _, err := range checkListener(c, c.Listeners[name], refs) {
			errs = append(errs, fmt.Errorf("listener %q: %w", name, err))
		}
	}
	errs = append(errs, checkAddresses(c)...)
	for _, name := range sortedKeys(c.Routes) {
		for _, err := range checkRouteConfig(c.Routes[name], refs) {
			errs = append(errs, fmt.Errorf("route configuration %q: %w", name, err))
		}
	}
	for _, name := range sortedKeys(c.Clusters) {
		for _, err := range checkCluster(c, c.Clusters[name]) {
			errs = append(errs, fmt.Errorf("cluster %q: %w", name, err))
		}
	}
	for _, name := range sortedKeys(c.Assignments) {
		if err := c.Assignments[name].ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("cluster load assignment %q: %w", name, err))
		}
	}
	// Unknown clusters: tcp_proxy closes the connection and the router
	// answers 503 NC (source/common/tcp_proxy/tcp_proxy.cc
	// establishUpstreamConnection, source/common/router/router.cc
	// Filter::decodeHeaders). Envoy loads such config (validate_clusters is
	// false for RDS), but it is never what a control plane means.
	for _, cl := range sortedKeys(refs) {
		if _, ok := c.Clusters[cl]; !ok {
			for _, by := range refs[cl] {
				errs = append(errs, fmt.Errorf("%s: unknown cluster %q", by, cl))
			}
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

// CheckResource applies the rules that concern one resource on its own
// (ValidateAll, typed_config decoding, per-listener, per-route-configuration
// and per-cluster rules, no cross-references): what Envoy checks before it
// ACKs a single resource.
func CheckResource(m proto.Message) error {
	var errs []error
	switch r := m.(type) {
	case *listenerv3.Listener:
		errs = checkListener(nil, r, map[string][]string{})
	case *routev3.RouteConfiguration:
		errs = checkRouteConfig(r, map[string][]string{})
	case *clusterv3.Cluster:
		errs = checkCluster(nil, r)
	default:
		if v, ok := m.(validator); ok {
			errs = append(errs, v.ValidateAll())
		}
	}
	return errors.Join(errs...)
}

// checkListener applies the per-listener rules; c is nil when the listener
// is checked on its own (no cross-references).
func checkListener(c *Config, l *listenerv3.Listener, refs map[string][]string) []error {
	var errs []error
	if err := l.ValidateAll(); err != nil {
		errs = append(errs, err)
	}
	var hcms []string // rds names
	errs = append(errs, walk(l, "", func(path string, m proto.Message) {
		if err := typedFilter(path, m); err != nil {
			errs = append(errs, err)
		}
		for _, cl := range clustersNamedBy(m) {
			refs[cl] = append(refs[cl], fmt.Sprintf("listener %q %s", l.GetName(), path))
		}
		if h, ok := hcmOf(m); ok {
			errs = append(errs, checkHCM(path, h)...)
			if n := h.GetRds().GetRouteConfigName(); n != "" {
				hcms = append(hcms, n)
			}
		}
		if d, ok := m.(*dnsv3.DnsFilterConfig); ok {
			errs = append(errs, checkDNSTable(path, d)...)
		}
	})...)
	if c != nil {
		// A listener whose RDS never arrives activates without routes
		// (source/common/rds/rds_route_config_subscription.cc).
		for _, n := range hcms {
			if _, ok := c.Routes[n]; !ok {
				errs = append(errs, fmt.Errorf("rds route_config_name %q has no route configuration", n))
			}
		}
	}
	if l.GetApiListener() != nil {
		return errs // skipped by Envoy's LDS with a warning (LMI addOrUpdateListener)
	}
	addr, ok := listenerAddr(l)
	if !ok {
		// LMI addOrUpdateListener: "address is necessary".
		return append(errs, errors.New("no socket address"))
	}
	if addr.proto == corev3.SocketAddress_UDP {
		// LI buildUdpListenerFactory, validateFilterChains: UDP listeners take
		// listener_filters only. The contract asks for udp_listener_config.
		if l.GetUdpListenerConfig() == nil {
			errs = append(errs, errors.New("UDP listener without udp_listener_config"))
		}
		if len(l.GetFilterChains()) > 0 || l.GetDefaultFilterChain() != nil {
			errs = append(errs, errors.New("UDP listener with filter chains"))
		}
		return errs
	}
	if len(l.GetFilterChains()) == 0 && l.GetDefaultFilterChain() == nil {
		errs = append(errs, errors.New("no filter chains specified")) // LI validateFilterChains
	}
	errs = append(errs, checkChainMatches(l)...)
	if c != nil && l.GetBindToPort() != nil && !l.GetBindToPort().GetValue() && !hasOriginalDst(c) {
		// api/envoy/config/listener/v3/listener.proto bind_to_port: such a
		// listener only gets connections handed off by a use_original_dst one.
		errs = append(errs, errors.New("bind_to_port false but no listener has use_original_dst"))
	}
	return errs
}

func hasOriginalDst(c *Config) bool {
	for _, l := range c.Listeners {
		if l.GetUseOriginalDst().GetValue() {
			return true
		}
	}
	return false
}

// checkChainMatches models FCM verifyNoDuplicateMatchers and
// addFilterChainForDestinationIPs: two chains may not have proto-equal
// filter_chain_match, and two chains whose matches are equal but for
// prefix_ranges may not both list the same CIDR ("multiple filter chains
// with overlapping matching rules are defined"). Nested CIDRs (a /8 and a
// /32 in it) are legal: the longest prefix wins.
func checkChainMatches(l *listenerv3.Listener) []error {
	var errs []error
	chains := l.GetFilterChains()
	for i := range chains {
		for j := range i {
			a, b := chains[i].GetFilterChainMatch(), chains[j].GetFilterChainMatch()
			if a == nil {
				a = &listenerv3.FilterChainMatch{}
			}
			if b == nil {
				b = &listenerv3.FilterChainMatch{}
			}
			if proto.Equal(a, b) {
				errs = append(errs, fmt.Errorf("filter chain %q has the same matching rules defined as %q", chains[i].GetName(), chains[j].GetName()))
				continue
			}
			ra, rb := proto.Clone(a).(*listenerv3.FilterChainMatch), proto.Clone(b).(*listenerv3.FilterChainMatch)
			ra.PrefixRanges, rb.PrefixRanges = nil, nil
			if !proto.Equal(ra, rb) {
				continue
			}
			for _, pa := range a.GetPrefixRanges() {
				for _, pb := range b.GetPrefixRanges() {
					x, errA := prefix(pa)
					y, errB := prefix(pb)
					if errA == nil && errB == nil && x == y {
						errs = append(errs, fmt.Errorf("filter chains %q and %q: multiple filter chains with overlapping matching rules are defined (%s)", chains[j].GetName(), chains[i].GetName(), x))
					}
				}
			}
		}
	}
	return errs
}

// checkAddresses models LMI setNewOrDrainingSocketFactory and LI
// hasDuplicatedAddress: no two listeners on one protocol+address+port, even
// when bind_to_port is false.
func checkAddresses(c *Config) []error {
	var errs []error
	seen := map[sockAddr]string{}
	for _, name := range sortedKeys(c.Listeners) {
		l := c.Listeners[name]
		if l.GetApiListener() != nil {
			continue
		}
		a, ok := listenerAddr(l)
		if !ok {
			continue
		}
		if other, dup := seen[a]; dup {
			errs = append(errs, fmt.Errorf("listener %q: has duplicate address %s as existing listener %q", name, a, other))
			continue
		}
		seen[a] = name
	}
	return errs
}

// checkCluster applies the per-cluster rules; c is nil when the cluster is
// checked on its own.
func checkCluster(c *Config, cl *clusterv3.Cluster) []error {
	var errs []error
	if err := cl.ValidateAll(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, walk(cl, "", func(string, proto.Message) {})...)
	switch cl.GetType() {
	case clusterv3.Cluster_ORIGINAL_DST:
		// source/extensions/clusters/original_dst/original_dst_cluster.cc
		// createClusterImpl.
		if cl.GetLbPolicy() != clusterv3.Cluster_CLUSTER_PROVIDED {
			errs = append(errs, fmt.Errorf("ORIGINAL_DST cluster with lb_policy %s, want CLUSTER_PROVIDED", cl.GetLbPolicy()))
		}
		if cl.GetLoadAssignment() != nil {
			errs = append(errs, errors.New("ORIGINAL_DST cluster with load_assignment"))
		}
	case clusterv3.Cluster_EDS:
		// A cluster warms until its first assignment arrives, whose
		// cluster_name must be the service_name (EDS onConfigUpdate).
		if c != nil {
			if _, ok := c.Assignments[edsName(cl)]; !ok {
				errs = append(errs, fmt.Errorf("EDS cluster has no assignment %q", edsName(cl)))
			}
		}
	}
	return errs
}

// edsName is the name an EDS cluster subscribes to.
func edsName(cl *clusterv3.Cluster) string {
	if n := cl.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return cl.GetName()
}

// checkDNSTable models dns_filter.cc DnsFilterEnvoyConfig and
// api/envoy/data/dns/v3/dns_table.proto: answer_ttl at least 30 s when set,
// and "*" only as the whole first label of a virtual domain name.
func checkDNSTable(path string, d *dnsv3.DnsFilterConfig) []error {
	var errs []error
	for i, vd := range d.GetServerConfig().GetInlineDnsTable().GetVirtualDomains() {
		p := fmt.Sprintf("%s.virtual_domains[%d] %q", path, i, vd.GetName())
		if t := vd.GetAnswerTtl(); t != nil && t.AsDuration().Seconds() < 30 {
			errs = append(errs, fmt.Errorf("%s: answer_ttl %s below 30s", p, t.AsDuration()))
		}
		labels := strings.Split(vd.GetName(), ".")
		for j, lab := range labels {
			if strings.Contains(lab, "*") && (j != 0 || lab != "*" || len(labels) == 1) {
				errs = append(errs, fmt.Errorf("%s: '*' is allowed only as the first label", p))
				break
			}
		}
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
