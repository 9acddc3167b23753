package translator

import (
	"fmt"
	"sync"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/switchboard-xds/switchboard/model"
)

const (
	// routerFilterName is the well-known name of Envoy's router filter, the
	// terminal HTTP filter that gRPC clients require last in the chain.
	routerFilterName = "envoy.filters.http.router"
	// typeURLPrefix is the prefix of every type URL in an Any.
	typeURLPrefix = "type.googleapis.com/"
	// hcmAnyTypeURL is the type URL of an HttpConnectionManager in an Any.
	hcmAnyTypeURL = typeURLPrefix + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)

// AliasListener returns the Listener named alias that a client dialling
// xds:///alias is served: the same shape as the canonical listener (an
// api_listener HttpConnectionManager that fetches RouteConfiguration
// canonical over ADS), so every alias shares the canonical route, cluster
// and assignment and costs one small Listener only while a client asks for
// it. canonical is the value of model.Resources.Aliases[alias]; the route's
// virtual host already lists every alias among its domains.
//
// AliasListener is pure and cheap: the server builds one on demand, when a
// client subscribes to an alias. The error is for a name that is not valid
// UTF-8, which names taken from model.Resources never are.
func AliasListener(alias, canonical string) (model.Encoded, error) {
	return listenerWire(alias, canonical)
}

// encodeListener encodes l, the listener named name, built on demand; a
// nil l is a name that is not valid UTF-8.
func encodeListener(name string, l *listenerv3.Listener) (model.Encoded, error) {
	if l == nil {
		return model.Encoded{}, fmt.Errorf("listener name %q is not valid UTF-8", name)
	}
	return encode(name, l)
}

// apiListener builds a client-side (api_listener) Listener named name whose
// HttpConnectionManager takes its routes from RouteConfiguration routeName
// over ADS. The stats prefix is the route name, so that alias listeners and
// the canonical listener of one port count into the same Envoy stats.
// It returns nil when the manager cannot be marshalled (only for a route
// name that is not valid UTF-8).
//
// The manager is not built as a message: its wire form is written directly
// (see hcmWire), and the Listener, ApiListener and Any come from one
// allocation. The bytes are those of deterministicAny(newHCM(routeName)).
func apiListener(name, routeName string) *listenerv3.Listener {
	w := hcmParts()
	if w.filters == nil || routeName == "" {
		// An empty name is left out of the wire form, which marshal does
		// not do; no route is ever called "".
		return listenerOf(name, newHCM(routeName))
	}
	if !utf8.ValidString(routeName) {
		return nil // proto.Marshal refuses such a string field, and so do we
	}
	m := &listenerMsgs{}
	m.any.TypeUrl = hcmAnyTypeURL
	m.any.Value = w.marshal(routeName)
	m.api.ApiListener = &m.any
	m.lis.Name = name
	m.lis.ApiListener = &m.api
	return &m.lis
}

// listenerMsgs are the messages of one api_listener Listener, allocated
// together and used in place.
type listenerMsgs struct {
	lis listenerv3.Listener
	api listenerv3.ApiListener
	any anypb.Any
}

// newHCM returns the HttpConnectionManager of an api_listener that fetches
// RouteConfiguration routeName over ADS: the reference form of what
// hcmWire.marshal writes.
func newHCM(routeName string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: routeName,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{
			Rds: &hcmv3.Rds{
				ConfigSource:    adsConfigSource(),
				RouteConfigName: routeName,
			},
		},
		HttpFilters: []*hcmv3.HttpFilter{routerFilter()},
	}
}

// Field numbers of the HttpConnectionManager fields that newHCM sets.
const (
	hcmStatPrefix    protowire.Number = 2 // stat_prefix
	hcmRds           protowire.Number = 3 // rds (oneof route_specifier)
	rdsConfigSource  protowire.Number = 1 // Rds.config_source
	rdsRouteConfName protowire.Number = 2 // Rds.route_config_name
)

// hcmWire holds the parts of newHCM's deterministic wire form that do not
// depend on the route name, marshalled once. It is immutable after
// hcmParts builds it: the byte slices are only ever copied from.
//
// marshal writes the fields in the order protobuf-go's deterministic
// marshalling does (stat_prefix, http_filters, then the rds oneof);
// TestAPIListenerWire and TestWireShortcuts fail if a new protobuf-go
// writes another order. Either order is valid protobuf: what matching
// buys is that a listener's content-derived version does not depend on
// which path built it.
type hcmWire struct {
	// filters is the http_filters field (tag included) holding the router.
	filters []byte
	// configSource is the marshalled ADS ConfigSource of Rds.
	configSource []byte
}

// hcmParts builds the hcmWire once per process. It is a sync.OnceValue:
// computed on first use, never changed after, safe for concurrent use.
var hcmParts = sync.OnceValue(func() hcmWire {
	opts := proto.MarshalOptions{Deterministic: true}
	filters, err1 := opts.Marshal(&hcmv3.HttpConnectionManager{HttpFilters: []*hcmv3.HttpFilter{routerFilter()}})
	cs, err2 := opts.Marshal(adsConfigSource())
	if err1 != nil || err2 != nil {
		return hcmWire{}
	}
	return hcmWire{filters: filters, configSource: cs}
})

// marshal returns the wire form of newHCM(routeName) in one allocation of
// exactly the right size.
func (w hcmWire) marshal(routeName string) []byte {
	return w.append(make([]byte, 0, w.size(routeName)), routeName)
}

// size is the length of the wire form of newHCM(routeName).
func (w hcmWire) size(routeName string) int {
	n := len(routeName)
	return protowire.SizeTag(hcmStatPrefix) + protowire.SizeBytes(n) + len(w.filters) +
		protowire.SizeTag(hcmRds) + protowire.SizeBytes(w.rdsSize(routeName))
}

func (w hcmWire) rdsSize(routeName string) int {
	return protowire.SizeTag(rdsConfigSource) + protowire.SizeBytes(len(w.configSource)) +
		protowire.SizeTag(rdsRouteConfName) + protowire.SizeBytes(len(routeName))
}

// append appends the wire form of newHCM(routeName) to b: stat_prefix,
// http_filters, then rds {config_source, route_config_name}.
func (w hcmWire) append(b []byte, routeName string) []byte {
	b = protowire.AppendTag(b, hcmStatPrefix, protowire.BytesType)
	b = protowire.AppendString(b, routeName)
	b = append(b, w.filters...)
	b = protowire.AppendTag(b, hcmRds, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(w.rdsSize(routeName)))
	b = protowire.AppendTag(b, rdsConfigSource, protowire.BytesType)
	b = protowire.AppendBytes(b, w.configSource)
	b = protowire.AppendTag(b, rdsRouteConfName, protowire.BytesType)
	return protowire.AppendString(b, routeName)
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
// Each call builds a new message; EDS clusters share one (see
// clusterShared).
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

// Field numbers of the Listener fields that listenerWire writes.
const (
	listenerName      = 1  // Listener.name
	listenerAPI       = 19 // Listener.api_listener
	apiListenerConfig = 1  // ApiListener.api_listener
	anyTypeURL        = 1  // google.protobuf.Any.type_url
	anyValue          = 2  // google.protobuf.Any.value
)

// listenerWire is apiListener(name, routeName) encoded, written directly
// (the manager's bytes come from hcmParts) when it can be.
func listenerWire(name, routeName string) (model.Encoded, error) {
	w := hcmParts()
	if w.filters == nil || routeName == "" || !utf8.ValidString(routeName) || !utf8.ValidString(name) {
		lis := apiListener(name, routeName)
		if lis == nil {
			return model.Encoded{}, fmt.Errorf("listener %q: route name %q is not UTF-8", name, routeName)
		}
		return encode(name, lis)
	}
	hcm := w.size(routeName)
	anySize := sizeMessage(anyTypeURL, len(hcmAnyTypeURL)) + sizeMessage(anyValue, hcm)
	api := sizeMessage(apiListenerConfig, anySize)
	b := make([]byte, 0, sizeMessage(listenerName, len(name))+sizeMessage(listenerAPI, api))
	b = appendString(b, listenerName, name)
	b = appendHeader(b, listenerAPI, api)
	b = appendHeader(b, apiListenerConfig, anySize)
	b = appendString(b, anyTypeURL, hcmAnyTypeURL)
	b = appendHeader(b, anyValue, hcm)
	b = w.append(b, routeName)
	return model.NewEncoded(name, b), nil
}

// UnknownDomain is the only domain of the route in an UnknownListener. The
// .invalid top-level domain (RFC 2606) can match no dialled name.
const UnknownDomain = "no-such-service.switchboard.invalid"

// UnknownListener builds the listener served for a subscribed listener name
// that names no Service: its inline route has a single virtual host that no
// target can match, so a client fails its calls at once with an error that
// names what it dialled (grpc-go: `could not find VirtualHost for "NAME"`;
// C-core likewise), instead of waiting for its 15 s does-not-exist timer:
// grpc-go v1.85 treats a name missing from an LDS response as not existing
// only after it has once received it, and it does not read gRFC A88
// per-resource errors. grpc-js-xds keeps waiting on a route that matches
// nothing, as it does for a missing listener. When the Service appears, the
// server replaces this listener with the real one and clients recover.
// The error is for a name that is not valid UTF-8.
func UnknownListener(name string) (model.Encoded, error) {
	return encodeListener(name, unknownListener(name))
}

// unknownListener is UnknownListener as a message; nil for a name that is
// not valid UTF-8.
func unknownListener(name string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: UnknownDomain,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{
			RouteConfig: &routev3.RouteConfiguration{
				Name: UnknownDomain,
				VirtualHosts: []*routev3.VirtualHost{{
					Name:    UnknownDomain,
					Domains: []string{UnknownDomain},
					Routes: []*routev3.Route{{
						Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
						Action: &routev3.Route_Route{Route: &routev3.RouteAction{
							ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: UnknownDomain},
						}},
					}},
				}},
			},
		},
		HttpFilters: []*hcmv3.HttpFilter{routerFilter()},
	}
	return listenerOf(name, hcm)
}
