package envoysim

import (
	"net/netip"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	dnstablev3 "github.com/envoyproxy/go-control-plane/envoy/data/dns/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	dnsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/dns_filter/v3"
	udpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/udp_proxy/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The fixture is the sidecar contract's shape (/tmp/sidecar-contract.md),
// built by hand: web.ns (HTTP, 10.96.0.10 and fd00::10, port 80), db.ns (TCP
// 10.96.0.20:5432), q.ns (UDP 10.96.0.30:9000), and the DNS listener.
const (
	webCanon = "web.ns.svc.cluster.local:80"
	dbCanon  = "db.ns.svc.cluster.local:5432"
	qCanon   = "q.ns.svc.cluster.local:9000/udp"
	pass     = "PassthroughCluster"
)

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sock(ip string, port uint32, p corev3.SocketAddress_Protocol) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}, Protocol: p,
	}}}
}

func tcpProxyChain(t testing.TB, name, cluster string, match *listenerv3.FilterChainMatch) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{Name: name, FilterChainMatch: match, Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.tcp_proxy",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &tcpproxyv3.TcpProxy{
			StatPrefix: cluster, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
		})},
	}}}
}

func hcm(rds string, filters ...*hcmv3.HttpFilter) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: "outbound_" + rds,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, ResourceApiVersion: corev3.ApiVersion_V3},
			RouteConfigName: rds,
		}},
		HttpFilters: filters,
	}
}

func routerFilter(t testing.TB) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}
}

func hcmChain(t testing.TB, h *hcmv3.HttpConnectionManager) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{Name: "catch-all", Filters: []*listenerv3.Filter{{
		Name:       "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)},
	}}}
}

func cidr(ip string, bits uint32) *corev3.CidrRange {
	return &corev3.CidrRange{AddressPrefix: ip, PrefixLen: wrapperspb.UInt32(bits)}
}

func portListener(name, ip string, port uint32, chains ...*listenerv3.FilterChain) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name: name, Address: sock(ip, port, corev3.SocketAddress_TCP), BindToPort: wrapperspb.Bool(false),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND, FilterChains: chains,
	}
}

func udpProxyListener(t testing.TB, name, ip string, port uint32, cluster string) *listenerv3.Listener {
	// JSON, so that the xds matcher types need no import of their own.
	var up udpproxyv3.UdpProxyConfig
	js := `{"statPrefix":"` + cluster + `","matcher":{"onNoMatch":{"action":{"name":"route","typedConfig":{` +
		`"@type":"type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route","cluster":"` + cluster + `"}}}}}`
	if err := protojson.Unmarshal([]byte(js), &up); err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{
		Name: name, Address: sock(ip, port, corev3.SocketAddress_UDP), UdpListenerConfig: &listenerv3.UdpListenerConfig{},
		Freebind: wrapperspb.Bool(true), Transparent: wrapperspb.Bool(true),
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name: "envoy.filters.udp_listener.udp_proxy", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &up)},
		}},
	}
}

func dnsListener(t testing.TB) *listenerv3.Listener {
	addrs := func(ips ...string) *dnstablev3.DnsTable_DnsEndpoint {
		return &dnstablev3.DnsTable_DnsEndpoint{EndpointConfig: &dnstablev3.DnsTable_DnsEndpoint_AddressList{AddressList: &dnstablev3.DnsTable_AddressList{Address: ips}}}
	}
	ttl := durationpb.New(30e9)
	web := "web.ns.svc.cluster.local"
	cfg := &dnsv3.DnsFilterConfig{StatPrefix: "dns", ServerConfig: &dnsv3.DnsFilterConfig_ServerContextConfig{
		ConfigSource: &dnsv3.DnsFilterConfig_ServerContextConfig_InlineDnsTable{InlineDnsTable: &dnstablev3.DnsTable{VirtualDomains: []*dnstablev3.DnsTable_DnsVirtualDomain{
			{Name: web, Endpoint: addrs("10.96.0.10", "fd00::10"), AnswerTtl: ttl},
			{Name: "web.ns.svc", Endpoint: addrs("10.96.0.10", "fd00::10"), AnswerTtl: ttl},
			{Name: "web.ns", Endpoint: addrs("10.96.0.10", "fd00::10"), AnswerTtl: ttl},
			{Name: "*.wild.cluster.local", Endpoint: addrs("10.96.0.99"), AnswerTtl: ttl},
			{Name: web, AnswerTtl: ttl, Endpoint: &dnstablev3.DnsTable_DnsEndpoint{EndpointConfig: &dnstablev3.DnsTable_DnsEndpoint_ServiceList{ServiceList: &dnstablev3.DnsTable_DnsServiceList{
				Services: []*dnstablev3.DnsTable_DnsService{{
					ServiceName: "http",
					Protocol:    &dnstablev3.DnsTable_DnsServiceProtocol{ProtocolConfig: &dnstablev3.DnsTable_DnsServiceProtocol_Name{Name: "tcp"}},
					Ttl:         ttl,
					Targets: []*dnstablev3.DnsTable_DnsServiceTarget{{
						EndpointType: &dnstablev3.DnsTable_DnsServiceTarget_HostName{HostName: web}, Port: 80,
					}},
				}},
			}}}},
		}}},
	}, ClientConfig: &dnsv3.DnsFilterConfig_ClientContextConfig{MaxPendingLookups: 256}}
	return &listenerv3.Listener{
		Name: "dns", Address: sock("127.0.0.1", 15053, corev3.SocketAddress_UDP), UdpListenerConfig: &listenerv3.UdpListenerConfig{},
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name: "envoy.filters.udp.dns_filter", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, cfg)},
		}},
	}
}

// goodConfig is a sidecar's full set as the contract describes it.
func goodConfig(t testing.TB) *Config {
	c := NewConfig()
	vo := portListener("virtualOutbound", "0.0.0.0", 15001, tcpProxyChain(t, pass, pass, nil))
	vo.BindToPort, vo.UseOriginalDst = nil, wrapperspb.Bool(true)
	original := &clusterv3.Cluster{
		Name: pass, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy: clusterv3.Cluster_CLUSTER_PROVIDED,
	}
	for _, m := range []proto.Message{
		vo,
		portListener("0.0.0.0_80", "0.0.0.0", 80, hcmChain(t, hcm("80", routerFilter(t)))),
		portListener("[::]_80", "::", 80, hcmChain(t, hcm("80", routerFilter(t)))),
		portListener("0.0.0.0_5432", "0.0.0.0", 5432,
			tcpProxyChain(t, dbCanon, dbCanon, &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{cidr("10.96.0.20", 32)}}),
			tcpProxyChain(t, "catch-all", pass, nil)),
		udpProxyListener(t, "udp_10.96.0.30_9000", "10.96.0.30", 9000, qCanon),
		dnsListener(t),
		&routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{
			vhost(webCanon, webCanon, "web.ns.svc.cluster.local", "web.ns.svc.cluster.local:80", "web.ns.svc", "web.ns.svc:80",
				"web.ns", "web.ns:80", "10.96.0.10", "10.96.0.10:80", "[fd00::10]", "[fd00::10]:80"),
			vhost("passthrough", pass, "*"),
		}},
		edsCluster(webCanon), edsCluster(dbCanon), edsCluster(qCanon), original,
		cla(webCanon, map[string]corev3.HealthStatus{
			"10.1.0.1:8080": corev3.HealthStatus_HEALTHY, "10.1.0.2:8080": corev3.HealthStatus_UNKNOWN,
			"10.1.0.3:8080": corev3.HealthStatus_DRAINING, "10.1.0.9:8080": corev3.HealthStatus_UNHEALTHY,
		}),
		cla(dbCanon, map[string]corev3.HealthStatus{"10.1.0.4:5432": corev3.HealthStatus_HEALTHY}),
		cla(qCanon, map[string]corev3.HealthStatus{"10.1.0.5:9000": corev3.HealthStatus_HEALTHY}),
	} {
		c.Add(m)
	}
	return c
}

func splitHostPort(hp string) (string, uint32) {
	ap := netip.MustParseAddrPort(hp)
	return ap.Addr().String(), uint32(ap.Port())
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig:   &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, ResourceApiVersion: corev3.ApiVersion_V3},
			ServiceName: name,
		},
	}
}

func cla(name string, eps map[string]corev3.HealthStatus) *endpointv3.ClusterLoadAssignment {
	var lbs []*endpointv3.LbEndpoint
	for _, hp := range sortedKeys(eps) {
		ip, port := splitHostPort(hp)
		lbs = append(lbs, &endpointv3.LbEndpoint{
			HealthStatus:   eps[hp],
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sock(ip, port, corev3.SocketAddress_TCP)}},
		})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}}
}

func vhost(name string, cluster string, domains ...string) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: domains, Routes: []*routev3.Route{{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{Timeout: durationpb.New(0), ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
	}}}
}
