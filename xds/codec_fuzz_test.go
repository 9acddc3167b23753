package xds

import (
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	gocmp "github.com/google/go-cmp/cmp"
)

// FuzzRequestCodec feeds arbitrary bytes to the request codec, which reads
// every SotW request before protobuf-go does: it must never panic, must
// refuse exactly what protobuf-go refuses (plus nothing), and what it
// decodes must be protobuf-go's message with the names moved to the packed
// field, in the same order. The seeds run in every `go test`; `make fuzz`
// searches further.
func FuzzRequestCodec(f *testing.F) {
	for _, req := range []*discoveryv3.DiscoveryRequest{
		{},
		{TypeUrl: "type.googleapis.com/envoy.config.listener.v3.Listener", ResourceNames: []string{"a", "b.c:80"}, VersionInfo: "1", ResponseNonce: "2"},
		{Node: &corev3.Node{Id: "n", UserAgentName: "gRPC Go"}, ResourceNames: []string{"x"}},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x1a, 0x02, 0xff, 0xfe}) // a name that is not UTF-8
	f.Add([]byte{0xfa, 0xff, 0xff, 0xff, 0x0f, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var want discoveryv3.DiscoveryRequest
		wantErr := proto.Unmarshal(b, &want)
		var got discoveryv3.DiscoveryRequest
		err := unmarshalRequest(b, &got)
		if wantErr != nil {
			if err == nil {
				t.Fatalf("codec accepted what protobuf-go refuses (%v)", wantErr)
			}
			return
		}
		if err != nil {
			// The codec may refuse only its own field number, which
			// protobuf-go keeps as unknown bytes.
			if len(want.ProtoReflect().GetUnknown()) == 0 {
				t.Fatalf("codec refused a request protobuf-go accepts: %v", err)
			}
			return
		}
		names, err := namesOf(&got)
		if err != nil {
			t.Fatalf("namesOf: %v", err)
		}
		if gotNames := names.strings(); !slices.Equal(gotNames, want.ResourceNames) && (len(gotNames) > 0 || len(want.ResourceNames) > 0) {
			t.Fatalf("names %q, protobuf-go %q", gotNames, want.ResourceNames)
		}
		want.ResourceNames = nil
		if d := gocmp.Diff(&want, &got, protocmp.Transform(), protocmp.IgnoreUnknown()); d != "" {
			t.Fatalf("fields other than names differ (-protobuf-go +codec):\n%s", d)
		}
	})
}
