package translator

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestClientClass(t *testing.T) {
	for ua, want := range map[string]string{
		"gRPC C-core":              ClassCCore,
		"gRPC C-core linux Python": ClassCCore, // Debian's python3-grpcio 1.51, measured
		"gRPC Go":                  "",
		"gRPC Node Pure JS":        "",
		"gRPC C-corexyz":           "",
		"envoy":                    ClassEnvoy, // what every Envoy build sends
		"Envoy":                    "",
		"":                         "",
	} {
		if got := ClientClass(ua); got != want {
			t.Errorf("ClientClass(%q) = %q, want %q", ua, got, want)
		}
	}
}

func TestClientOfAndResolve(t *testing.T) {
	node := &corev3.Node{
		UserAgentName: "envoy",
		Locality:      &corev3.Locality{Zone: "zone-a"},
		Metadata:      &structpb.Struct{Fields: map[string]*structpb.Value{"NAMESPACE": structpb.NewStringValue("demo")}},
	}
	c := ClientOf(node)
	if c != (Client{Class: ClassEnvoy, Zone: "zone-a", Namespace: "demo"}) {
		t.Fatalf("ClientOf = %+v", c)
	}
	if (ClientOf(nil) != Client{}) {
		t.Fatalf("ClientOf(nil) = %+v", ClientOf(nil))
	}
	if got := c.Resolve("dns"); got != "dns" {
		t.Errorf("an Envoy client's Resolve(%q) = %q: Envoy's listener names are never short names", "dns", got)
	}
	c.Class = ""
	for name, want := range map[string]string{
		"greeter:50051":      "greeter.demo:50051",
		"greeter":            "greeter.demo",
		"greeter.other:80":   "greeter.other:80",
		"greeter.demo.svc":   "greeter.demo.svc",
		":80":                ":80",
		"xdstp://a/b/c:8080": "xdstp://a/b/c:8080",
	} {
		if got := c.Resolve(name); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", name, got, want)
		}
	}
	if got := (Client{}).Resolve("greeter:50051"); got != "greeter:50051" {
		t.Errorf("without a namespace Resolve = %q", got)
	}
}
