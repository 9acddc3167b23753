package xds

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"unicode/utf8"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// A SotW client repeats every subscribed name in every ACK: with a
// thousand Services that is a thousand strings to allocate and look up per
// ACK, per client, per change, and it was the largest cost of serving a
// change at scale. The codec below decodes a DiscoveryRequest without its
// resource_names: it keeps them as raw bytes with an order-independent
// digest (clients list names in map order), and the stream compares the
// digest with the one of its subscription. Names become strings only when
// the subscription changed.

// GRPCServerOption returns the option that makes a grpc.Server decode
// SotW requests this way. Every other message, in either direction, goes
// through gRPC's own proto codec. A Server works without it, at the full
// cost per ACK.
func GRPCServerOption() grpc.ServerOption { return grpc.ForceServerCodecV2(requestCodec{}) }

// namesField is the field number of resource_names in DiscoveryRequest;
// packedNamesField is where requestCodec puts them instead, as unknown
// bytes of the message: a number no xDS message uses (the largest
// allowed). The codec drops that field if a client sends it.
const (
	namesField       protowire.Number = 3
	packedNamesField protowire.Number = protowire.MaxValidNumber
)

// nameSeed keys the name digests of this process. Digests are compared only
// within the process, so a per-process seed is all they need.
var nameSeed = maphash.MakeSeed()

func nameHash(name string) uint64 { return maphash.String(nameSeed, name) }

type requestCodec struct{}

func (requestCodec) Name() string { return grpcproto.Name }

func (requestCodec) Marshal(v any) (mem.BufferSlice, error) {
	return encoding.GetCodecV2(grpcproto.Name).Marshal(v)
}

func (requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*discoveryv3.DiscoveryRequest)
	if !ok {
		return encoding.GetCodecV2(grpcproto.Name).Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return unmarshalRequest(buf.ReadOnlyData(), req)
}

// unmarshalRequest decodes b into req, putting resource_names into the
// packed field (see namesOf) rather than req.ResourceNames. It reads b
// twice, to allocate the packed names once at their size.
func unmarshalRequest(b []byte, req *discoveryv3.DiscoveryRequest) error {
	var digest uint64
	count, namesLen, restLen := 0, 0, 0
	badName := false
	err := eachField(b, func(num protowire.Number, typ protowire.Type, field, value []byte) {
		switch {
		case num == namesField && typ == protowire.BytesType:
			name, _ := protowire.ConsumeBytes(value)
			// As the proto codec would: a string field must be UTF-8.
			badName = badName || !utf8.Valid(name)
			digest += maphash.Bytes(nameSeed, name)
			count++
			namesLen += len(field)
		case num != packedNamesField:
			restLen += len(field)
		}
	})
	if err != nil {
		return err
	}
	if badName {
		return errors.New("DiscoveryRequest: resource_names: string field contains invalid UTF-8")
	}
	size := 8 + protowire.SizeVarint(uint64(count)) + namesLen
	var packed []byte
	if count > 0 {
		packed = make([]byte, 0, protowire.SizeTag(packedNamesField)+protowire.SizeBytes(size))
		packed = protowire.AppendTag(packed, packedNamesField, protowire.BytesType)
		packed = protowire.AppendVarint(packed, uint64(size))
		packed = binary.LittleEndian.AppendUint64(packed, digest)
		packed = protowire.AppendVarint(packed, uint64(count))
	}
	rest := make([]byte, 0, restLen)
	_ = eachField(b, func(num protowire.Number, typ protowire.Type, field, _ []byte) {
		switch {
		case num == namesField && typ == protowire.BytesType:
			packed = append(packed, field...)
		case num != packedNamesField:
			// Ours alone; never taken from the wire.
			rest = append(rest, field...)
		}
	})
	if err := proto.Unmarshal(rest, req); err != nil {
		return err
	}
	if count > 0 {
		m := req.ProtoReflect()
		if u := m.GetUnknown(); len(u) > 0 {
			packed = append(u, packed...)
		}
		m.SetUnknown(packed)
	}
	return nil
}

// eachField calls f with every top-level field of the message in b: its
// number, wire type, whole encoding and value.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, field, value []byte)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("DiscoveryRequest: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return fmt.Errorf("DiscoveryRequest field %d: %w", num, protowire.ParseError(m))
		}
		f(num, typ, b[:n+m], b[n:n+m])
		b = b[n+m:]
	}
	return nil
}

// requestNames is the subscription a SotW request carries: its names, or
// their digest and count when the codec packed them.
type requestNames struct {
	names  []string
	packed bool
	digest uint64
	count  int
	raw    []byte
}

// namesOf takes the names out of req: from the packed field when the codec
// put them there, else from ResourceNames.
func namesOf(req *discoveryv3.DiscoveryRequest) (requestNames, error) {
	unknown := req.ProtoReflect().GetUnknown()
	for in := unknown; len(in) > 0; {
		num, typ, n := protowire.ConsumeTag(in)
		if n < 0 {
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, in[n:])
		if m < 0 {
			break
		}
		if num == packedNamesField && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(in[n:])
			if len(v) < 8 {
				return requestNames{}, errors.New("packed resource names: short")
			}
			count, k := protowire.ConsumeVarint(v[8:])
			if k < 0 {
				return requestNames{}, errors.New("packed resource names: bad count")
			}
			return requestNames{packed: true, digest: binary.LittleEndian.Uint64(v), count: int(count), raw: v[8+k:]}, nil
		}
		in = in[n+m:]
	}
	return requestNames{names: req.GetResourceNames(), count: len(req.GetResourceNames())}, nil
}

// strings returns the names as strings, decoding packed ones.
func (r *requestNames) strings() []string {
	if !r.packed || r.names != nil {
		return r.names
	}
	out := make([]string, 0, r.count)
	for in := r.raw; len(in) > 0; {
		_, _, n := protowire.ConsumeTag(in)
		v, m := protowire.ConsumeBytes(in[n:])
		out = append(out, string(v))
		in = in[n+m:]
	}
	r.names = out
	return out
}
