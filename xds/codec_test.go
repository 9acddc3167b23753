package xds

import (
	"fmt"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func marshalRequest(t testing.TB, req *discoveryv3.DiscoveryRequest) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRequestCodecPacksNames(t *testing.T) {
	in := &discoveryv3.DiscoveryRequest{
		VersionInfo:   "v1",
		Node:          &corev3.Node{Id: "n1", UserAgentName: "gRPC Go"},
		ResourceNames: []string{"b", "a", "c"},
		TypeUrl:       resourcev3.ClusterType,
		ResponseNonce: "7",
		ErrorDetail:   &statuspb.Status{Code: 3, Message: "bad"},
	}
	out := &discoveryv3.DiscoveryRequest{}
	if err := unmarshalRequest(marshalRequest(t, in), out); err != nil {
		t.Fatal(err)
	}
	if len(out.GetResourceNames()) != 0 {
		t.Fatalf("names were decoded into ResourceNames: %v", out.GetResourceNames())
	}
	rn, err := namesOf(out)
	if err != nil {
		t.Fatal(err)
	}
	if !rn.packed || rn.count != 3 || !slices.Equal(rn.strings(), []string{"b", "a", "c"}) {
		t.Fatalf("packed names = %+v %v", rn, rn.strings())
	}
	// Every other field is decoded as usual.
	in.ResourceNames = nil
	out.ProtoReflect().SetUnknown(nil)
	if !proto.Equal(in, out) {
		t.Fatalf("decoded %v, want %v", out, in)
	}

	// The digest does not depend on the order of names, and differs for
	// another set of the same size.
	digest := func(names ...string) uint64 {
		r := &discoveryv3.DiscoveryRequest{}
		if err := unmarshalRequest(marshalRequest(t, &discoveryv3.DiscoveryRequest{ResourceNames: names}), r); err != nil {
			t.Fatal(err)
		}
		rn, err := namesOf(r)
		if err != nil {
			t.Fatal(err)
		}
		return rn.digest
	}
	if digest("a", "b", "c") != digest("c", "a", "b") {
		t.Fatal("digest depends on the order of names")
	}
	if digest("a", "b", "c") == digest("a", "b", "d") {
		t.Fatal("two sets of names have one digest")
	}
}

func TestRequestCodecDropsPackedFieldFromTheWire(t *testing.T) {
	b := marshalRequest(t, &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	b = protowire.AppendTag(b, packedNamesField, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("not ours"))
	out := &discoveryv3.DiscoveryRequest{}
	if err := unmarshalRequest(b, out); err != nil {
		t.Fatal(err)
	}
	rn, err := namesOf(out)
	if err != nil {
		t.Fatal(err)
	}
	if rn.packed || rn.count != 0 {
		t.Fatalf("a client-sent packed field was taken as names: %+v", rn)
	}
}

func TestRequestCodecRefusesInvalidUTF8(t *testing.T) {
	b := protowire.AppendTag(nil, namesField, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte{'a', 0xff})
	if err := unmarshalRequest(b, &discoveryv3.DiscoveryRequest{}); err == nil {
		t.Fatal("a resource name that is not UTF-8 was accepted")
	}
	if err := proto.Unmarshal(b, &discoveryv3.DiscoveryRequest{}); err == nil {
		t.Fatal("the proto codec accepts it too: this test no longer says the two agree")
	}
}

// A stream fed requests through the codec sees the same subscription
// changes as one fed plain requests: names added, names dropped, and the
// same names in another order as no change.
func TestPackedAndPlainRequestsAgree(t *testing.T) {
	for _, packed := range []bool{false, true} {
		t.Run(fmt.Sprintf("packed=%v", packed), func(t *testing.T) {
			st := newStream(1, NewServer(newTestCache(), ServerOptions{}))
			ts := st.types[clusterType]
			ts.started = true
			req := func(names ...string) requestNames {
				r := &discoveryv3.DiscoveryRequest{ResourceNames: names}
				if packed {
					r = &discoveryv3.DiscoveryRequest{}
					if err := unmarshalRequest(marshalRequest(t, &discoveryv3.DiscoveryRequest{ResourceNames: names}), r); err != nil {
						t.Fatal(err)
					}
				}
				rn, err := namesOf(r)
				if err != nil {
					t.Fatal(err)
				}
				return rn
			}
			added, removed, _ := st.diffSubscription(clusterType, ts, req("a", "b"))
			if slices.Sort(added); !slices.Equal(added, []string{"a", "b"}) || len(removed) != 0 {
				t.Fatalf("first: added %v removed %v", added, removed)
			}
			st.subscribe(clusterType, added, removed, false)
			if added, removed, _ := st.diffSubscription(clusterType, ts, req("b", "a")); len(added)+len(removed) != 0 {
				t.Fatalf("same names reordered: added %v removed %v", added, removed)
			}
			added, removed, _ = st.diffSubscription(clusterType, ts, req("b", "c"))
			if !slices.Equal(added, []string{"c"}) || !slices.Equal(removed, []string{"a"}) {
				t.Fatalf("a for c: added %v removed %v", added, removed)
			}
		})
	}
}

// BenchmarkACK is the server's cost of one SotW ACK that repeats a
// subscription of 1000 names: decoding plus the subscription check, with
// gRPC's proto codec and with the request codec.
func BenchmarkACK(b *testing.B) {
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("svc-%04d.namespace-1.svc.cluster.local:8080", i)
	}
	wire := marshalRequest(b, &discoveryv3.DiscoveryRequest{
		VersionInfo: "0123456789abcdef", ResourceNames: names, TypeUrl: resourcev3.EndpointType, ResponseNonce: "42",
	})
	st := newStream(1, NewServer(newTestCache(), ServerOptions{}))
	ts := st.types[endpointType]
	ts.started = true
	st.subscribe(endpointType, names, nil, false)
	for _, codec := range []string{"proto", "request"} {
		b.Run("codec="+codec, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := &discoveryv3.DiscoveryRequest{}
				var err error
				if codec == "proto" {
					err = proto.Unmarshal(wire, req)
				} else {
					err = unmarshalRequest(wire, req)
				}
				if err != nil {
					b.Fatal(err)
				}
				rn, err := namesOf(req)
				if err != nil {
					b.Fatal(err)
				}
				if added, removed, _ := st.diffSubscription(endpointType, ts, rn); len(added)+len(removed) != 0 {
					b.Fatal("an ACK changed the subscription")
				}
			}
		})
	}
}
