package envoysim

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	udpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/udp_proxy/v3"
)

// Conn is one connection (or UDP flow) an application opens, as the sidecar
// sees it after capture: Protocol "tcp" or "udp", the original destination,
// and for HTTP the Host header ("" for raw TCP, which then only matches a
// tcp_proxy chain or the "*" virtual host).
type Conn struct {
	Protocol string
	DstIP    string
	DstPort  uint32
	Host     string
}

// Result is where Envoy sends a Conn. Endpoints are "ip:port", sorted;
// Passthrough is true when the cluster is ORIGINAL_DST (the connection goes
// to DstIP:DstPort unchanged). Route fills what it found even on error.
type Result struct {
	Listener    string
	FilterChain string
	RouteConfig string
	VirtualHost string
	Cluster     string
	Endpoints   []string
	Passthrough bool
}

// Errors Route wraps, naming where the walk stopped.
var (
	ErrNoListener    = errors.New("no listener")
	ErrNoFilterChain = errors.New("no filter chain")
	ErrNoRouteConfig = errors.New("no route configuration")
	ErrNoVirtualHost = errors.New("no virtual host or route: 404 NR")
	ErrNoCluster     = errors.New("unknown cluster: NC")
)

// Route walks conn through c as Envoy would. TCP: capture to the
// use_original_dst listener, hand-off by original destination, filter chain
// by destination port and IP, then tcp_proxy or HCM -> RDS -> virtual host
// -> first route matching "/". UDP: the UDP listener bound at DstIP:DstPort
// -> udp_proxy. Then the cluster's endpoints. Filter chains that match on
// SNI, transport or application protocol or on the source are skipped: the
// model has plaintext connections from an unnamed source.
func (c *Config) Route(conn Conn) (Result, error) {
	var res Result
	dst, err := netip.ParseAddr(conn.DstIP)
	if err != nil {
		return res, fmt.Errorf("destination %q: %w", conn.DstIP, err)
	}
	dst = dst.Unmap()
	var cluster string
	switch conn.Protocol {
	case "tcp":
		cluster, err = c.routeTCP(&res, dst, conn)
	case "udp":
		cluster, err = c.routeUDP(&res, dst, conn.DstPort)
	default:
		return res, fmt.Errorf("protocol %q: want tcp or udp", conn.Protocol)
	}
	if err != nil {
		return res, err
	}
	return res, c.endpoints(&res, cluster, dst, conn.DstPort)
}

func (c *Config) routeTCP(res *Result, dst netip.Addr, conn Conn) (string, error) {
	l := c.handOff(dst, conn.DstPort)
	if l == nil {
		return "", fmt.Errorf("%w: none has use_original_dst", ErrNoListener)
	}
	res.Listener = l.GetName()
	fc := findFilterChain(l, dst, conn.DstPort)
	if fc == nil {
		return "", fmt.Errorf("listener %q: %w for %s", l.GetName(), ErrNoFilterChain, netip.AddrPortFrom(dst, uint16(conn.DstPort)))
	}
	res.FilterChain = fc.GetName()
	fs := fc.GetFilters()
	if len(fs) == 0 {
		return "", fmt.Errorf("filter chain %q: no filters", fc.GetName())
	}
	m, err := fs[len(fs)-1].GetTypedConfig().UnmarshalNew()
	if err != nil {
		return "", fmt.Errorf("filter chain %q: %w", fc.GetName(), err)
	}
	if tp, ok := m.(*tcpproxyv3.TcpProxy); ok {
		if tp.GetCluster() == "" {
			return "", fmt.Errorf("filter chain %q: tcp_proxy without a single cluster", fc.GetName())
		}
		return tp.GetCluster(), nil
	}
	h, ok := hcmOf(m)
	if !ok {
		return "", fmt.Errorf("filter chain %q: terminal filter %s is neither tcp_proxy nor HCM", fc.GetName(), m.ProtoReflect().Descriptor().FullName())
	}
	rc := h.GetRouteConfig()
	if n := h.GetRds().GetRouteConfigName(); n != "" {
		res.RouteConfig = n
		if rc = c.Routes[n]; rc == nil {
			return "", fmt.Errorf("%w %q", ErrNoRouteConfig, n)
		}
	}
	if rc == nil {
		return "", fmt.Errorf("filter chain %q: %w", fc.GetName(), ErrNoRouteConfig)
	}
	vh := findVirtualHost(rc, conn.Host)
	if vh == nil {
		return "", fmt.Errorf("route configuration %q host %q: %w", rc.GetName(), conn.Host, ErrNoVirtualHost)
	}
	res.VirtualHost = vh.GetName()
	for _, r := range vh.GetRoutes() {
		if !matchesRoot(r.GetMatch()) {
			continue
		}
		if cl := r.GetRoute().GetCluster(); cl != "" {
			return cl, nil
		}
		return "", fmt.Errorf("virtual host %q: first route matching / has no single cluster", vh.GetName())
	}
	return "", fmt.Errorf("virtual host %q: no route matches /: %w", vh.GetName(), ErrNoVirtualHost)
}

// matchesRoot reports whether a route match accepts the path "/" (prefix
// or exact path; header and query matchers are not modelled).
func matchesRoot(m *routev3.RouteMatch) bool {
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		return strings.HasPrefix("/", p.Prefix)
	case *routev3.RouteMatch_Path:
		return p.Path == "/"
	case *routev3.RouteMatch_PathSeparatedPrefix:
		return p.PathSeparatedPrefix == "/"
	}
	return false
}

// handOff models source/common/listener_manager/connection_handler_impl.cc
// getBalancedHandlerByAddress with active_tcp_socket.cc newConnection: the
// captured connection lands on the use_original_dst listener and moves to the
// listener at exactly dst:port, else 0.0.0.0:port (IPv4) or [::]:port (IPv6),
// else stays where it landed.
func (c *Config) handOff(dst netip.Addr, port uint32) *listenerv3.Listener {
	var capture *listenerv3.Listener
	byAddr := map[sockAddr]*listenerv3.Listener{}
	for _, name := range sortedKeys(c.Listeners) {
		l := c.Listeners[name]
		a, ok := listenerAddr(l)
		if !ok || a.proto != corev3.SocketAddress_TCP {
			continue
		}
		if capture == nil && l.GetUseOriginalDst().GetValue() {
			capture = l
		}
		byAddr[a] = l
	}
	if capture == nil {
		return nil
	}
	unspecified := netip.IPv4Unspecified()
	if dst.Is6() {
		unspecified = netip.IPv6Unspecified()
	}
	for _, ip := range []netip.Addr{dst, unspecified} {
		if l, ok := byAddr[sockAddr{proto: corev3.SocketAddress_TCP, ip: ip, port: port}]; ok {
			return l
		}
	}
	return capture
}

// findFilterChain models FCM findFilterChain: chains naming the destination
// port win over port-less ones; among those, the longest prefix_ranges match
// of the destination IP wins, a chain without prefix_ranges matching any IP;
// if nothing matches, the default_filter_chain.
func findFilterChain(l *listenerv3.Listener, dst netip.Addr, port uint32) *listenerv3.FilterChain {
	plain := func(m *listenerv3.FilterChainMatch) bool {
		return len(m.GetServerNames()) == 0 && len(m.GetApplicationProtocols()) == 0 &&
			(m.GetTransportProtocol() == "" || m.GetTransportProtocol() == "raw_buffer") &&
			len(m.GetSourcePrefixRanges()) == 0 && len(m.GetDirectSourcePrefixRanges()) == 0 &&
			len(m.GetSourcePorts()) == 0 && m.GetSourceType() == listenerv3.FilterChainMatch_ANY
	}
	var portChains, anyPort []*listenerv3.FilterChain
	for _, fc := range l.GetFilterChains() {
		m := fc.GetFilterChainMatch()
		switch p := m.GetDestinationPort(); {
		case p == nil:
			anyPort = append(anyPort, fc)
		case p.GetValue() == port:
			portChains = append(portChains, fc)
		}
	}
	chains := anyPort
	if len(portChains) > 0 {
		chains = portChains
	}
	var best *listenerv3.FilterChain
	bestLen := -1
	for _, fc := range chains {
		m := fc.GetFilterChainMatch()
		if !plain(m) {
			continue
		}
		if len(m.GetPrefixRanges()) == 0 && bestLen < 0 {
			best, bestLen = fc, 0
		}
		for _, r := range m.GetPrefixRanges() {
			p, err := prefix(r)
			if err == nil && p.Contains(dst) && p.Bits() > bestLen {
				best, bestLen = fc, p.Bits()
			}
		}
	}
	if best == nil {
		return l.GetDefaultFilterChain()
	}
	return best
}

// findVirtualHost models source/common/router/config_impl.cc
// RouteMatcher::findVirtualHost on the lowercased Host: exact domain, then
// "*suffix" domains longest suffix first, then "prefix*" longest first, then
// "*". A wildcard needs at least one character of its own: "*.a" does not
// match ".a".
func findVirtualHost(rc *routev3.RouteConfiguration, host string) *routev3.VirtualHost {
	host = strings.ToLower(host)
	var suffixBest, prefixBest, def *routev3.VirtualHost
	suffixLen, prefixLen := -1, -1
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				def = vh
			case d == host:
				return vh
			case strings.HasPrefix(d, "*"):
				if s := d[1:]; len(host) > len(s) && strings.HasSuffix(host, s) && len(s) > suffixLen {
					suffixBest, suffixLen = vh, len(s)
				}
			case strings.HasSuffix(d, "*"):
				if p := d[:len(d)-1]; len(host) > len(p) && strings.HasPrefix(host, p) && len(p) > prefixLen {
					prefixBest, prefixLen = vh, len(p)
				}
			}
		}
	}
	switch {
	case suffixBest != nil:
		return suffixBest
	case prefixBest != nil:
		return prefixBest
	}
	return def
}

// routeUDP: UDP is not captured by a use_original_dst listener (LI
// buildUdpListenerFactory ignores it); the datagram reaches the listener
// bound at exactly dst:port, whose udp_proxy names the cluster (deprecated
// cluster, else matcher on_no_match Route: udp_proxy/router/router_impl.cc).
func (c *Config) routeUDP(res *Result, dst netip.Addr, port uint32) (string, error) {
	want := sockAddr{proto: corev3.SocketAddress_UDP, ip: dst, port: port}
	for _, name := range sortedKeys(c.Listeners) {
		l := c.Listeners[name]
		if a, ok := listenerAddr(l); !ok || a != want {
			continue
		}
		res.Listener = name
		for _, lf := range l.GetListenerFilters() {
			var up udpproxyv3.UdpProxyConfig
			if lf.GetTypedConfig().UnmarshalTo(&up) != nil {
				continue
			}
			if cl := up.GetCluster(); cl != "" { //nolint:staticcheck // deprecated, but Envoy still reads it
				return cl, nil
			}
			var r udpproxyv3.Route
			if err := up.GetMatcher().GetOnNoMatch().GetAction().GetTypedConfig().UnmarshalTo(&r); err == nil && r.GetCluster() != "" {
				return r.GetCluster(), nil
			}
			return "", fmt.Errorf("listener %q: udp_proxy without on_no_match Route", name)
		}
		return "", fmt.Errorf("listener %q: %w: no udp_proxy", name, ErrNoFilterChain)
	}
	return "", fmt.Errorf("%w bound at udp %s", ErrNoListener, netip.AddrPortFrom(dst, uint16(port)))
}

// Endpoints resolves the named cluster (as an HTTPResult names it) to the
// addresses Envoy balances over for a connection to dst, as Route does:
// "ip:port", sorted; passthrough when the cluster is ORIGINAL_DST (dst
// itself). An unknown cluster is ErrNoCluster.
func (c *Config) Endpoints(cluster string, dst netip.AddrPort) (endpoints []string, passthrough bool, err error) {
	var res Result
	err = c.endpoints(&res, cluster, dst.Addr().Unmap(), uint32(dst.Port()))
	return res.Endpoints, res.Passthrough, err
}

// endpoints resolves the cluster to addresses: ORIGINAL_DST -> the original
// destination; otherwise the hosts of its assignment (EDS: the one named by
// service_name or the cluster name) whose health is HEALTHY or UNKNOWN;
// DRAINING and the rest are excluded from load balancing
// (source/common/upstream/upstream_impl.cc setEdsHealthFlag).
func (c *Config) endpoints(res *Result, name string, dst netip.Addr, port uint32) error {
	res.Cluster = name
	cl, ok := c.Clusters[name]
	if !ok {
		return fmt.Errorf("cluster %q: %w", name, ErrNoCluster)
	}
	if cl.GetType() == clusterv3.Cluster_ORIGINAL_DST {
		res.Passthrough = true
		res.Endpoints = []string{netip.AddrPortFrom(dst, uint16(port)).String()}
		return nil
	}
	cla := cl.GetLoadAssignment()
	if cl.GetType() == clusterv3.Cluster_EDS {
		cla = c.Assignments[edsName(cl)]
	}
	for _, le := range cla.GetEndpoints() {
		for _, e := range le.GetLbEndpoints() {
			switch e.GetHealthStatus() {
			case corev3.HealthStatus_HEALTHY, corev3.HealthStatus_UNKNOWN:
				res.Endpoints = append(res.Endpoints, socketString(e.GetEndpoint().GetAddress().GetSocketAddress()))
			}
		}
	}
	slices.Sort(res.Endpoints)
	return nil
}
