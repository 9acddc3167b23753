package envoysim

import (
	"fmt"
	"net/netip"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	// The extensions Envoy would find a factory for: a typed_config of any
	// other type is unknown to this model, as it is to an Envoy built without
	// that extension (source/common/config/utility.h getAndCheckFactory).
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/dns_filter/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/udp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// validator is what protoc-gen-validate generates on every Envoy message.
type validator interface{ ValidateAll() error }

// walk visits m and every message below it, decoding each google.protobuf.Any
// into its registered type and descending into it, as Envoy decodes every
// typed_config and validates it (source/common/protobuf/utility.cc
// MessageUtil::anyConvertAndValidate). visit gets a field path such as
// "filter_chains[0].filters[0].typed_config(envoy...TcpProxy)". An Any that
// does not decode, or decodes to a message failing ValidateAll, is an error.
func walk(m proto.Message, path string, visit func(path string, m proto.Message)) []error {
	var errs []error
	var rec func(path string, m protoreflect.Message)
	rec = func(path string, m protoreflect.Message) {
		if a, ok := m.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: unknown or undecodable typed_config %q: %w", path, a.GetTypeUrl(), err))
				return
			}
			if v, ok := inner.(validator); ok {
				if err := v.ValidateAll(); err != nil {
					errs = append(errs, fmt.Errorf("%s (%s): %w", path, a.GetTypeUrl(), err))
				}
			}
			path = path + "(" + string(inner.ProtoReflect().Descriptor().FullName()) + ")"
			m = inner.ProtoReflect()
		}
		visit(path, m.Interface())
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			name := join(path, string(fd.Name()))
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i, l := 0, v.List(); i < l.Len(); i++ {
					rec(name+"["+strconv.Itoa(i)+"]", l.Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					rec(name+"["+k.String()+"]", mv.Message())
					return true
				})
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				rec(name, v.Message())
			}
			return true
		})
	}
	rec(path, m.ProtoReflect())
	return errs
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// typedFilter reports a filter that has no typed_config: Envoy resolves
// factories by typed_config type URL, so every filter here is given one
// (ENVOY.md §1, source/common/config/utility.h getAndCheckFactory).
func typedFilter(path string, m proto.Message) error {
	type typed interface{ GetTypedConfig() *anypb.Any }
	switch f := m.(type) {
	case *listenerv3.Filter, *listenerv3.ListenerFilter:
		if f.(typed).GetTypedConfig() == nil {
			return fmt.Errorf("%s: filter %q has no typed_config", path, f.(interface{ GetName() string }).GetName())
		}
	}
	return nil
}

// sockAddr is a listener's bound address as Envoy keys it: protocol, IP, port.
type sockAddr struct {
	proto corev3.SocketAddress_Protocol
	ip    netip.Addr
	port  uint32
}

func (a sockAddr) String() string {
	return fmt.Sprintf("%s %s", a.proto, netip.AddrPortFrom(a.ip, uint16(a.port)))
}

// listenerAddr returns the socket address of l; ok is false for a listener
// without one (api_listener, pipe, internal).
func listenerAddr(l *listenerv3.Listener) (sockAddr, bool) {
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return sockAddr{}, false
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return sockAddr{}, false
	}
	return sockAddr{proto: sa.GetProtocol(), ip: ip.Unmap(), port: sa.GetPortValue()}, true
}

// socketString renders an Envoy socket address as "ip:port".
func socketString(sa *corev3.SocketAddress) string {
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return sa.GetAddress() + ":" + strconv.Itoa(int(sa.GetPortValue()))
	}
	return netip.AddrPortFrom(ip, uint16(sa.GetPortValue())).String()
}

// prefix parses an Envoy CidrRange into a masked netip.Prefix.
func prefix(r *corev3.CidrRange) (netip.Prefix, error) {
	ip, err := netip.ParseAddr(r.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("cidr %q: %w", r.GetAddressPrefix(), err)
	}
	p, err := ip.Prefix(int(r.GetPrefixLen().GetValue()))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("cidr %s/%d: %w", r.GetAddressPrefix(), r.GetPrefixLen().GetValue(), err)
	}
	return p, nil
}
