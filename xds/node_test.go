package xds

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchboard-xds/switchboard/model"
)

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
