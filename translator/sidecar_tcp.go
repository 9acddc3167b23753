package translator

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
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
)

// sharedResources is SidecarShared: the virtual outbound listener, whose
// one chain passes every connection no outbound listener takes (pods of
// headless Services, external addresses, ExternalName Services' resolved
// addresses) through to its original destination, and the passthrough
// cluster.
func sharedResources() (model.Resources, error) {
	chain, err := tcpProxyChain(catchAllChainName, PassthroughClusterName)
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

// tcpResources is a SidecarTCP part: the outbound listener "<IP>_<P>" of
// in's Service at that ClusterIP and port, which the virtual outbound
// listener hands connections for it to. Its one chain is an HTTP
// connection manager over the port's route configuration (named, like its
// cluster, canonical) for an HTTP-family port, else a tcp_proxy to the
// port's cluster. No chain matches on anything, so no Host matching by
// every name form: the address chose the Service.
func tcpResources(domain string, part SidecarPart, in sidecarInput) (model.Resources, error) {
	canonical := CanonicalName(domain, in.svc.Key, part.Port)
	var chain *listenerv3.FilterChain
	var err error
	if IsHTTPPort(in.port) {
		chain, err = hcmChain(canonical)
	} else {
		chain, err = tcpProxyChain(canonical, canonical)
	}
	if err != nil {
		return model.Resources{}, err
	}
	name := sidecarListenerName("", part.Addr, part.Port)
	l, err := encode(name, &listenerv3.Listener{
		Name:             name,
		Address:          listenAddress(part.Addr.String(), part.Port, corev3.SocketAddress_TCP),
		BindToPort:       wrapperspb.Bool(false),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains:     []*listenerv3.FilterChain{chain},
	})
	if err != nil {
		return model.Resources{}, err
	}
	return model.Resources{Listeners: []model.Encoded{l}, Visibility: partVisibility(in.svc)}, nil
}

// tcpProxyChain is a filter chain named name, without a match, that
// proxies to cluster.
func tcpProxyChain(name, cluster string) (*listenerv3.FilterChain, error) {
	tp, err := deterministicAny(&tcpproxyv3.TcpProxy{
		StatPrefix:       cluster,
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.FilterChain{
		Name:    name,
		Filters: []*listenerv3.Filter{{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tp}}},
	}, nil
}

// hcmChain is the chain of an HTTP-family Service port's listener: an HTTP
// connection manager (HTTP/1.1, h2c and WebSocket upgrades) over the
// route configuration named canonical, by RDS over ADS; stats under
// canonical.
func hcmChain(canonical string) (*listenerv3.FilterChain, error) {
	h, err := deterministicAny(&hcmv3.HttpConnectionManager{
		StatPrefix: canonical,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: canonical,
		}},
		HttpFilters:    []*hcmv3.HttpFilter{routerFilter()},
		UpgradeConfigs: []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.FilterChain{
		Name:    canonical,
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
