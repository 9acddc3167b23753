package translator

import (
	"net/netip"
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
)

// Filter names Envoy knows its network filters by (it resolves them by
// typed_config type URL; the names are for stats and logs).
const (
	tcpProxyFilterName = "envoy.filters.network.tcp_proxy"
	hcmFilterName      = "envoy.filters.network.http_connection_manager"
	catchAllChainName  = "catch-all"
	headlessChainName  = "headless"
	passthroughVHost   = "passthrough"
)

// sharedResources is SidecarShared: the virtual outbound listener, whose
// one chain passes every connection no port listener takes through to its
// original destination, and the passthrough cluster.
func sharedResources() (model.Resources, error) {
	chain, err := tcpProxyChain(catchAllChainName, nil, PassthroughClusterName)
	if err != nil {
		return model.Resources{}, err
	}
	l, err := encode(VirtualOutboundName, &listenerv3.Listener{
		Name:             VirtualOutboundName,
		Address:          listenAddress("0.0.0.0", VirtualOutboundPort, corev3.SocketAddress_TCP),
		UseOriginalDst:   wrapperspb.Bool(true),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains:     []*listenerv3.FilterChain{chain},
	})
	if err != nil {
		return model.Resources{}, err
	}
	opts, err := deterministicAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		},
	})
	if err != nil {
		return model.Resources{}, err
	}
	c, err := encode(PassthroughClusterName, &clusterv3.Cluster{
		Name:                          PassthroughClusterName,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:                      clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:                durationpb.New(connectTimeout),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{httpProtocolOptionsName: opts},
	})
	if err != nil {
		return model.Resources{}, err
	}
	return model.Resources{Listeners: []model.Encoded{l}, Clusters: []model.Encoded{c}}, nil
}

// tcpPortResources is SidecarTCP for port: per IP family that some
// Service on the port has, a listener "0.0.0.0_P" or "[::]_P" that the
// virtual outbound listener hands connections to, with a filter chain per
// non-HTTP Service (by its ClusterIPs) and one for the pods of headless
// non-HTTP Services, and a catch-all chain: an HTTP connection manager
// over route configuration "P" when an HTTP-family Service with a
// ClusterIP is on the port, else a pass-through. The route configuration
// has a virtual host per such Service. A port with nothing to route
// (headless Services only, whose connections pass through anyway) gets
// no listener.
func tcpPortResources(domain string, port int32, ins []sidecarInput) (model.Resources, error) {
	var http, tcp, headless []sidecarInput
	v4, v6 := false, false
	for _, in := range ins {
		ips := addrs(in.svc.ClusterIPs)
		if in.svc.Headless {
			ips = addrs(endpointAddresses(in.port))
		}
		for _, a := range ips {
			v4, v6 = v4 || a.Is4(), v6 || a.Is6()
		}
		switch {
		case in.svc.Headless:
			headless = append(headless, in)
		case IsHTTPPort(in.port):
			http = append(http, in)
			v4 = v4 || len(ips) == 0 // no address known: route by Host on IPv4
		case len(ips) > 0:
			tcp = append(tcp, in)
		}
	}
	if len(http) == 0 && len(tcp) == 0 {
		return model.Resources{}, nil
	}
	routeName := strconv.Itoa(int(port))
	var res model.Resources
	for _, fam := range []struct {
		on   bool
		name string
		any  string
		is6  bool
	}{{v4, "0.0.0.0_" + routeName, "0.0.0.0", false}, {v6, "[::]_" + routeName, "::", true}} {
		if !fam.on {
			continue
		}
		build := func(ns string) (model.Encoded, error) {
			l, err := portListener(fam.name, fam.any, port, fam.is6, domain, routeName, ns, http, tcp, headless)
			if err != nil {
				return model.Encoded{}, err
			}
			return encode(fam.name, l)
		}
		plain, vs, err := withVariants(model.Listener, variantNamespaces(slices.Concat(tcp, headless)), build)
		if err != nil {
			return model.Resources{}, err
		}
		res.Listeners = append(res.Listeners, plain)
		res.Variants = append(res.Variants, vs...)
	}
	if len(http) > 0 {
		plain, vs, err := routeVariants(domain, port, routeName, http)
		if err != nil {
			return model.Resources{}, err
		}
		res.Routes = []model.Encoded{plain}
		res.Variants = append(res.Variants, vs...)
	}
	slices.SortFunc(res.Listeners, byName)
	return res, nil
}

// portListener builds one family's listener of a TCP port for sidecars of
// namespace ns.
func portListener(name, anyAddr string, port int32, is6 bool, domain, routeName, ns string, http, tcp, headless []sidecarInput) (*listenerv3.Listener, error) {
	family := func(ips []string) []netip.Addr {
		var out []netip.Addr
		for _, a := range addrs(ips) {
			if a.Is6() == is6 {
				out = append(out, a)
			}
		}
		return out
	}
	var chains []*listenerv3.FilterChain
	taken := map[netip.Addr]bool{}
	for _, in := range tcp {
		if !in.mayBeSeenBy(ns) {
			continue
		}
		var ips []netip.Addr
		for _, a := range family(in.svc.ClusterIPs) {
			if !taken[a] { // two Services with one ClusterIP: only in manifests; the first wins
				taken[a] = true
				ips = append(ips, a)
			}
		}
		if len(ips) == 0 {
			continue
		}
		canonical := CanonicalName(domain, in.svc.Key, port)
		c, err := tcpProxyChain(canonical, ips, canonical)
		if err != nil {
			return nil, err
		}
		chains = append(chains, c)
	}
	var catchAll *listenerv3.FilterChain
	var err error
	if len(http) > 0 {
		catchAll, err = hcmChain(routeName)
		// A raw TCP connection to a pod of a headless Service would meet
		// the HTTP connection manager: give those pods their own chain.
		var pods []netip.Addr
		for _, in := range headless {
			if !in.mayBeSeenBy(ns) || IsHTTPPort(in.port) {
				continue
			}
			for _, a := range family(endpointAddresses(in.port)) {
				if !taken[a] {
					taken[a] = true
					pods = append(pods, a)
				}
			}
		}
		if len(pods) > 0 && err == nil {
			slices.SortFunc(pods, netip.Addr.Compare)
			var c *listenerv3.FilterChain
			c, err = tcpProxyChain(headlessChainName, pods, PassthroughClusterName)
			chains = append(chains, c)
		}
	} else {
		catchAll, err = tcpProxyChain(catchAllChainName, nil, PassthroughClusterName)
	}
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:             name,
		Address:          listenAddress(anyAddr, port, corev3.SocketAddress_TCP),
		BindToPort:       wrapperspb.Bool(false),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains:     append(chains, catchAll),
	}, nil
}

// httpVHost is the virtual host of one HTTP-family Service port: every
// name form with and without ":P", the ClusterIPs likewise, and with short
// the names a sidecar of the Service's own namespace may use ("S", "S:P").
func httpVHost(domain string, port int32, in sidecarInput, short bool) *routev3.VirtualHost {
	p := ":" + strconv.Itoa(int(port))
	hosts := hostNames(domain, in.svc.Key, short)
	full := hosts[0]
	for _, a := range addrs(in.svc.ClusterIPs) {
		if a.Is6() {
			hosts = append(hosts, "["+a.String()+"]")
		} else {
			hosts = append(hosts, a.String())
		}
	}
	domains := make([]string, 0, 2*len(hosts))
	for _, h := range hosts {
		domains = append(domains, h, h+p)
	}
	return sidecarVHost(full+p, domains, full+p)
}

// sidecarVHost is a virtual host sending every request to cluster, with
// no route timeout (gRPC streams and long polls are the application's to
// time out, as Istio does).
func sidecarVHost(name string, domains []string, cluster string) *routev3.VirtualHost {
	return &routev3.VirtualHost{
		Name:    name,
		Domains: domains,
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
				Timeout:          durationpb.New(0),
			}},
		}},
	}
}

// tcpProxyChain is a filter chain named name for destinations ips (every
// destination for none) that proxies to cluster.
func tcpProxyChain(name string, ips []netip.Addr, cluster string) (*listenerv3.FilterChain, error) {
	tp, err := deterministicAny(&tcpproxyv3.TcpProxy{
		StatPrefix:       cluster,
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
	})
	if err != nil {
		return nil, err
	}
	c := &listenerv3.FilterChain{
		Name:    name,
		Filters: []*listenerv3.Filter{{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tp}}},
	}
	if len(ips) > 0 {
		m := &listenerv3.FilterChainMatch{}
		for _, a := range ips {
			m.PrefixRanges = append(m.PrefixRanges, &corev3.CidrRange{
				AddressPrefix: a.String(),
				PrefixLen:     wrapperspb.UInt32(uint32(a.BitLen())),
			})
		}
		c.FilterChainMatch = m
	}
	return c, nil
}

// hcmChain is the catch-all chain of an HTTP port: an HTTP connection
// manager (HTTP/1.1, h2c and WebSocket upgrades) over RDS routeName.
func hcmChain(routeName string) (*listenerv3.FilterChain, error) {
	h, err := deterministicAny(&hcmv3.HttpConnectionManager{
		StatPrefix: "outbound_" + routeName,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: routeName,
		}},
		HttpFilters:    []*hcmv3.HttpFilter{routerFilter()},
		UpgradeConfigs: []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.FilterChain{
		Name:    catchAllChainName,
		Filters: []*listenerv3.Filter{{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: h}}},
	}, nil
}

// listenAddress is an Address of ip:port over protocol.
func listenAddress(ip string, port int32, protocol corev3.SocketAddress_Protocol) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      protocol,
		Address:       ip,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

// endpointAddresses returns every address of the endpoints of p, each
// once, sorted.
func endpointAddresses(p *model.Port) []string {
	var out []string
	for _, e := range p.Endpoints {
		out = append(out, e.Addresses...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
