package translator

import (
	"net/netip"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	udpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/udp_proxy/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-xds/switchboard/model"
)

const udpProxyFilterName = "envoy.filters.udp_listener.udp_proxy"

// udpResources is a SidecarUDP part: the listener "udp_<IP>_<P>" of in's
// Service at that ClusterIP and port, bound to that address transparently
// (the capture rules route datagrams to the Service CIDRs locally, so the
// kernel delivers them to it; Envoy does not hand UDP over from another
// listener), proxying to the port's cluster (udpName). A Service limited
// by AnnotationVisibleTo has its listeners too, sent only to the sidecars
// that may see it (partVisibility).
func udpResources(domain string, part SidecarPart, in sidecarInput) (model.Resources, error) {
	name := sidecarListenerName("udp_", part.Addr, part.Port)
	l, err := udpListener(name, part.Addr, part.Port, udpName(CanonicalName(domain, in.svc.Key, part.Port)))
	if err != nil {
		return model.Resources{}, err
	}
	e, err := encode(name, l)
	if err != nil {
		return model.Resources{}, err
	}
	return model.Resources{Listeners: []model.Encoded{e}, Visibility: partVisibility(in.svc)}, nil
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
