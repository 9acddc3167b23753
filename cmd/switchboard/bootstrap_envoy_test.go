package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// envoyBootstrap runs "switchboard bootstrap envoy args" and reads its
// YAML back as Envoy would (proto3 JSON, every Any resolved), checking it
// with ValidateAll and the bootstrap rules Envoy applies (ENVOY.md §5).
func envoyBootstrap(t *testing.T, args ...string) *bootstrapv3.Bootstrap {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), append([]string{"bootstrap", "envoy"}, args...), &out, &errOut); err != nil {
		t.Fatalf("bootstrap envoy %v: %v (stderr %q)", args, err, errOut.String())
	}
	j, err := yaml.YAMLToJSON(out.Bytes())
	if err != nil {
		t.Fatalf("not YAML: %v\n%s", err, out.String())
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &b); err != nil {
		t.Fatalf("not a Bootstrap: %v\n%s", err, out.String())
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("ValidateAll: %v", err)
	}
	if b.GetNode().GetId() == "" || b.GetNode().GetCluster() == "" {
		t.Fatalf("Envoy needs node id and cluster: %v", b.GetNode())
	}
	ads := b.GetDynamicResources().GetAdsConfig()
	if ads.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		t.Fatalf("ADS transport_api_version %v, Envoy requires V3", ads.GetTransportApiVersion())
	}
	name := ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName()
	var xds *clusterv3.Cluster
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			xds = c
		}
	}
	if xds == nil {
		t.Fatalf("the ADS cluster %q is not a static cluster: Envoy builds ADS after the static clusters", name)
	}
	var h2 httpv3.HttpProtocolOptions
	if err := xds.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(&h2); err != nil ||
		h2.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Fatalf("the ADS cluster does not speak HTTP/2: %v", err)
	}
	for _, src := range []*corev3.ConfigSource{b.GetDynamicResources().GetLdsConfig(), b.GetDynamicResources().GetCdsConfig()} {
		if src.GetAds() == nil || src.GetResourceApiVersion() != corev3.ApiVersion_V3 {
			t.Fatalf("LDS/CDS not over ADS v3: %v", src)
		}
	}
	if a := b.GetAdmin().GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.1" || a.GetPortValue() != 15000 {
		t.Fatalf("admin on %v, want 127.0.0.1:15000", a)
	}
	return &b
}

func TestBootstrapEnvoy(t *testing.T) {
	b := envoyBootstrap(t, "--server", "10.96.0.20:18000", "--node-id", "app-1.demo", "--namespace", "demo", "--zone", "z1", "--region", "r1")
	if got := b.GetDynamicResources().GetAdsConfig().GetApiType(); got != corev3.ApiConfigSource_DELTA_GRPC {
		t.Errorf("api_type %v, want DELTA_GRPC by default", got)
	}
	n := b.GetNode()
	if n.GetCluster() != "demo" || n.GetLocality().GetZone() != "z1" || n.GetLocality().GetRegion() != "r1" ||
		n.GetMetadata().GetFields()["NAMESPACE"].GetStringValue() != "demo" {
		t.Errorf("node %v", n)
	}
	xds := b.GetStaticResources().GetClusters()[0]
	if xds.GetType() != clusterv3.Cluster_STATIC || xds.GetTransportSocket() != nil {
		t.Errorf("an IP server gives a plaintext STATIC cluster, got %v, transport %v", xds.GetType(), xds.GetTransportSocket())
	}
	if ka := xds.GetUpstreamConnectionOptions().GetTcpKeepalive(); ka.GetKeepaliveTime().GetValue() != 300 {
		t.Errorf("xDS cluster TCP keepalive %v, want keepalive_time 300 s", ka)
	}

	b = envoyBootstrap(t, "--server", "switchboard.switchboard-system.svc:18000", "--node-id", "n", "--sotw",
		"--tls-ca", "/etc/sb/ca.pem", "--tls-cert", "/etc/sb/tls.crt", "--tls-key", "/etc/sb/tls.key")
	if got := b.GetDynamicResources().GetAdsConfig().GetApiType(); got != corev3.ApiConfigSource_GRPC {
		t.Errorf("--sotw: api_type %v, want GRPC", got)
	}
	if b.GetNode().GetCluster() != "sidecar" || b.GetNode().GetMetadata() != nil {
		t.Errorf("node without namespace: %v", b.GetNode())
	}
	xds = b.GetStaticResources().GetClusters()[0]
	if xds.GetType() != clusterv3.Cluster_STRICT_DNS {
		t.Errorf("a host name gives STRICT_DNS, got %v", xds.GetType())
	}
	var tc tlsv3.UpstreamTlsContext
	if err := xds.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tc); err != nil {
		t.Fatalf("transport socket: %v", err)
	}
	common := tc.GetCommonTlsContext()
	if tc.GetSni() != "switchboard.switchboard-system.svc" ||
		common.GetValidationContext().GetTrustedCa().GetFilename() != "/etc/sb/ca.pem" ||
		common.GetTlsCertificates()[0].GetCertificateChain().GetFilename() != "/etc/sb/tls.crt" ||
		common.GetTlsCertificates()[0].GetPrivateKey().GetFilename() != "/etc/sb/tls.key" {
		t.Errorf("TLS context %v", &tc)
	}
}

// TestBootstrapServerOneRule: both bootstraps take and refuse the same
// --server values, with the same short error.
func TestBootstrapServerOneRule(t *testing.T) {
	for _, tc := range []struct {
		server string
		ok     bool
	}{
		{"10.0.0.1:18000", true},
		{"[fd00::1]:18000", true},
		{"switchboard.switchboard-system.svc:18000", true},
		{"switchboard.switchboard-system.svc.cluster.local.:18000", true},
		{":18000", false},
		{"bad host!:18000", false},
		{"UPPER.example:18000", true}, // DNS names are case-insensitive
		{"h:0", false},
		{"h", false},
	} {
		for _, kind := range []string{"grpc", "envoy"} {
			err := run(context.Background(), []string{"bootstrap", kind, "--server", tc.server, "--node-id", "n"}, &bytes.Buffer{}, &bytes.Buffer{})
			if (err == nil) != tc.ok {
				t.Errorf("bootstrap %s --server %q: %v, want ok=%v", kind, tc.server, err, tc.ok)
			}
			if err != nil && len(err.Error()) > 200 {
				t.Errorf("bootstrap %s --server %q: a %d-character error: %v", kind, tc.server, len(err.Error()), err)
			}
		}
	}
}

func TestBootstrapEnvoyErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--node-id", "n"}, "--server"},
		{[]string{"--server", "h:1"}, "--node-id"},
		{[]string{"--server", "nope", "--node-id", "n"}, "--server"},
		{[]string{"--server", "h:0", "--node-id", "n"}, "bad port"},
		{[]string{"--server", ":18000", "--node-id", "n"}, "IP address or a DNS name"},
		{[]string{"--server", "bad host!:18000", "--node-id", "n"}, "IP address or a DNS name"},
		{[]string{"--server", "h:1", "--node-id", "n", "--tls-cert", "c"}, "go together"},
		{[]string{"--server", "h:1", "--node-id", "n", "--tls-cert", "c", "--tls-key", "k"}, "--tls-ca"},
	} {
		err := run(context.Background(), append([]string{"bootstrap", "envoy"}, tc.args...), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bootstrap envoy %v = %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}
