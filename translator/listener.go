package translator

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

const (
	// routerFilterName is the well-known name of Envoy's router filter, the
	// terminal HTTP filter that gRPC clients require last in the chain.
	routerFilterName = "envoy.filters.http.router"
	// typeURLPrefix is the prefix of every type URL in an Any.
	typeURLPrefix = "type.googleapis.com/"
)

// AliasListener returns the Listener named alias that a client dialling
// xds:///alias is served: the same shape as the canonical listener (an
// api_listener HttpConnectionManager that fetches RouteConfiguration
// canonical over ADS), so every alias shares the canonical route, cluster
// and assignment and costs one small Listener only while a client asks for
// it. canonical is the value of Resources.Aliases[alias]; the route's virtual
// host already lists every alias among its domains.
//
// AliasListener is pure and cheap; it returns nil only when a name is not
// valid UTF-8, which names taken from Resources never are.
func AliasListener(alias, canonical string) *listenerv3.Listener {
	return apiListener(alias, canonical)
}

// apiListener builds a client-side (api_listener) Listener named name whose
// HttpConnectionManager takes its routes from RouteConfiguration routeName
// over ADS. The stats prefix is the route name, so that alias listeners and
// the canonical listener of one port count into the same Envoy stats.
// It returns nil when the manager cannot be marshalled (only for names that
// are not valid UTF-8).
func apiListener(name, routeName string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: routeName,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{
			Rds: &hcmv3.Rds{
				ConfigSource:    adsConfigSource(),
				RouteConfigName: routeName,
			},
		},
		HttpFilters: []*hcmv3.HttpFilter{routerFilter()},
	}
	return listenerOf(name, hcm)
}

// listenerOf returns the listener named name whose api_listener holds hcm,
// or nil when hcm cannot be marshalled (only for strings that are not
// valid UTF-8).
func listenerOf(name string, hcm *hcmv3.HttpConnectionManager) *listenerv3.Listener {
	a, err := deterministicAny(hcm)
	if err != nil {
		return nil
	}
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: a},
	}
}

// routerFilter returns the router HTTP filter. An empty Router message
// marshals to zero bytes, so its Any needs no marshalling and cannot fail.
func routerFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name: routerFilterName,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{
			TypedConfig: &anypb.Any{
				TypeUrl: typeURLPrefix + string((*routerv3.Router)(nil).ProtoReflect().Descriptor().FullName()),
			},
		},
	}
}

// adsConfigSource returns a config source that says "over the same ADS
// stream, xDS v3", the only kind every gRPC client accepts besides self.
// A new value is built for every use so that no message is shared between
// resources.
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// deterministicAny wraps m in an Any using deterministic marshalling, so
// that the same input always gives the same bytes (anypb.New does not
// promise that).
func deterministicAny(m proto.Message) (*anypb.Any, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &anypb.Any{
		TypeUrl: typeURLPrefix + string(m.ProtoReflect().Descriptor().FullName()),
		Value:   b,
	}, nil
}
