package translator

import (
	"net/netip"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	dnsfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/dns_filter/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-xds/switchboard/model"
)

// The DNS listener holds every Service's records. Building it as one
// message and marshalling it costs every Service's records on every
// change; instead each Service's records are marshalled once, when that
// Service changes (NewDNSRecords, kept by the pipeline), and the listener
// is those bytes inside a header. A repeated field's entries are
// independent on the wire, and protobuf-go's deterministic marshalling
// writes fields in field-number order, so the result is byte for byte what
// marshalling the whole message gives (TestSidecarWireEqualsMessages), and
// versions do not depend on the way a resource was built.

// Field numbers of the messages assembled here (checked by the test above).
const (
	fieldServerInlineTable  protowire.Number = 1  // DnsFilterConfig.ServerContextConfig.inline_dns_table
	fieldDNSServerConfig    protowire.Number = 2  // DnsFilterConfig.server_config
	fieldAnyTypeURL         protowire.Number = 1  // Any.type_url
	fieldAnyValue           protowire.Number = 2  // Any.value
	fieldListenerFilterName protowire.Number = 1  // ListenerFilter.name
	fieldListenerFilterAny  protowire.Number = 3  // ListenerFilter.typed_config
	fieldListenerFilters    protowire.Number = 9  // Listener.listener_filters
	fieldListenerUDPConfig  protowire.Number = 18 // Listener.udp_listener_config, after every field before it
)

// dnsListenerWire is the DNS listener at at (dnsListener over the table of
// records, in the order given), assembled from each Service's records.
func dnsListenerWire(at netip.AddrPort, records []DNSRecords) (model.Encoded, error) {
	l, cfg := dnsListenerParts(at)
	var head, tail, cfgHead, cfgTail []byte
	var err error
	for _, m := range []struct {
		out *[]byte
		msg proto.Message
	}{
		{&head, &listenerv3.Listener{Name: l.Name, Address: l.Address}},
		{&tail, &listenerv3.Listener{UdpListenerConfig: l.UdpListenerConfig}},
		{&cfgHead, &dnsfilterv3.DnsFilterConfig{StatPrefix: cfg.StatPrefix}},
		{&cfgTail, &dnsfilterv3.DnsFilterConfig{ClientConfig: cfg.ClientConfig}},
	} {
		if *m.out, err = deterministic.Marshal(m.msg); err != nil {
			return model.Encoded{}, err
		}
	}
	typeURL := appendString(nil, fieldAnyTypeURL, typeURLPrefix+string((*dnsfilterv3.DnsFilterConfig)(nil).ProtoReflect().Descriptor().FullName()))
	filterName := appendString(nil, fieldListenerFilterName, dnsFilterName)
	// The table is the bulk: sizes first, so that it is copied once.
	tableLen := 0
	for _, r := range records {
		tableLen += len(r.Wire)
	}
	serverLen := sizeMessage(fieldServerInlineTable, tableLen)
	configLen := len(cfgHead) + sizeMessage(fieldDNSServerConfig, serverLen) + len(cfgTail)
	anyLen := len(typeURL) + sizeMessage(fieldAnyValue, configLen)
	filterLen := len(filterName) + sizeMessage(fieldListenerFilterAny, anyLen)
	b := make([]byte, 0, len(head)+sizeMessage(fieldListenerFilters, filterLen)+len(tail))
	b = append(b, head...)
	b = appendHeader(b, fieldListenerFilters, filterLen)
	b = append(b, filterName...)
	b = appendHeader(b, fieldListenerFilterAny, anyLen)
	b = append(b, typeURL...)
	b = appendHeader(b, fieldAnyValue, configLen)
	b = append(b, cfgHead...)
	b = appendHeader(b, fieldDNSServerConfig, serverLen)
	b = appendHeader(b, fieldServerInlineTable, tableLen)
	for _, r := range records {
		b = append(b, r.Wire...)
	}
	b = append(b, cfgTail...)
	return model.NewEncoded(l.Name, append(b, tail...)), nil
}
