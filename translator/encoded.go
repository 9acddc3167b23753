package translator

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-xds/switchboard/model"
)

// The translator hands every resource over encoded (model.Encoded): the
// common shapes (an assignment of a usual view, a listener, a route and a
// cluster without policy) are written directly with no message built at
// all, which is most of what a full translation used to cost (see
// BenchmarkService and BenchmarkEncodeAssignment), and the rest are built
// as messages and marshalled here by protobuf-go, so a consumer never
// marshals. Tests check that both ways give the same bytes for the same
// content (TestSortedWire, TestWireShortcuts, TestAPIListenerWire), so a
// resource's version does not depend on the way it was built.

var deterministic = proto.MarshalOptions{Deterministic: true}

// encode marshals m, the resource named name.
func encode(name string, m proto.Message) (model.Encoded, error) {
	b, err := deterministic.Marshal(m)
	if err != nil {
		return model.Encoded{}, fmt.Errorf("encode %s %q: %w", m.ProtoReflect().Descriptor().Name(), name, err)
	}
	return model.NewEncoded(name, b), nil
}

// sizeMessage is the size of a length-delimited field num holding n bytes.
func sizeMessage(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func appendHeader(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}
