package xds

import (
	"context"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchboard-xds/switchboard/model"
)

// A node with 3 MB of metadata (most of the 4 MiB a request may be), extensions and client features is kept as
// the few fields Switchboard reads: what the stream holds (and CSDS shows)
// is small, NAMESPACE and the locality still work, and the bytes dropped
// are counted.
func TestNodeMetadataNotKept(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	big := strings.Repeat("m", 1<<20)
	fields := map[string]*structpb.Value{"NAMESPACE": structpb.NewStringValue("ns")}
	for _, k := range []string{"A", "B"} {
		fields[k] = structpb.NewStringValue(big)
	}
	node := &corev3.Node{
		Id:                   "sidecar-1",
		Cluster:              "web",
		UserAgentName:        "envoy",
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "1.31"},
		Locality:             &corev3.Locality{Region: "r1", Zone: "z1"},
		Metadata:             &structpb.Struct{Fields: fields},
		ClientFeatures:       []string{big[:1<<19]},
		Extensions:           []*corev3.Extension{{Name: big[:1<<19]}},
	}
	sent := proto.Size(node)
	c := h.client(t)
	c.node = node
	c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	c.next()
	ccs := h.srv.ClientConfigs(context.Background(), "")
	if len(ccs) != 1 {
		t.Fatalf("%d clients, want 1", len(ccs))
	}
	kept := ccs[0].Node
	t.Logf("node sent: %d bytes; kept: %d bytes", sent, proto.Size(kept))
	if n := proto.Size(kept); n > 1024 {
		t.Fatalf("the stream keeps a node of %d bytes (of %d sent), want at most 1 KiB", n, sent)
	}
	if got := ClientOf(kept); got.Namespace != "ns" || got.Zone != "z1" || got.Class != model.ClassEnvoy {
		t.Errorf("the kept node says %+v, want namespace ns, zone z1, class envoy", got)
	}
	if kept.GetId() != "sidecar-1" || kept.GetCluster() != "web" || kept.GetUserAgentVersion() != "1.31" || kept.GetLocality().GetRegion() != "r1" {
		t.Errorf("the kept node lost a field Switchboard shows: %v", kept)
	}
	if got := testutil.ToFloat64(h.metrics.nodeDropped); got != float64(sent-proto.Size(kept)) || got < 3<<20 {
		t.Errorf("node_dropped_bytes_total = %v, want %d (sent %d)", got, sent-proto.Size(kept), sent)
	}
}

func TestClientOf(t *testing.T) {
	node := &corev3.Node{
		UserAgentName: "envoy",
		Locality:      &corev3.Locality{Zone: "zone-a"},
		Metadata:      &structpb.Struct{Fields: map[string]*structpb.Value{"NAMESPACE": structpb.NewStringValue("demo")}},
	}
	if c := ClientOf(node); c != (model.Client{Class: model.ClassEnvoy, Zone: "zone-a", Namespace: "demo"}) {
		t.Fatalf("ClientOf = %+v", c)
	}
	if c := ClientOf(nil); c != (model.Client{}) {
		t.Fatalf("ClientOf(nil) = %+v", c)
	}
}
