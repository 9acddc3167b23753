package main

import (
	"fmt"
	"net/netip"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"
)

// envoyBootstrapOptions are the flags of "switchboard bootstrap envoy".
type envoyBootstrapOptions struct {
	bootstrapOptions
	// Cluster is the node's cluster, which Envoy requires.
	Cluster string
	// SotW makes the ADS stream state of the world (api_type GRPC) instead
	// of delta (DELTA_GRPC).
	SotW bool
}

// The names an Envoy bootstrap of Switchboard's uses. They are part of the
// product (README, "Envoy sidecars").
const (
	// envoyXDSCluster is the static cluster that reaches Switchboard.
	envoyXDSCluster = "switchboard-xds"
	// envoyAdminPort is the admin port, on 127.0.0.1 only.
	envoyAdminPort = 15000
)

// newBootstrapEnvoyCommand is "switchboard bootstrap envoy".
func newBootstrapEnvoyCommand() *cobra.Command {
	var o envoyBootstrapOptions
	cmd := &cobra.Command{
		Use:   "envoy --server HOST:PORT --node-id ID [flags]",
		Short: "Print an Envoy sidecar bootstrap YAML",
		Long:  "Print an Envoy bootstrap (YAML) for a sidecar that takes its listeners and clusters from Switchboard over ADS.",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			b, err := o.build()
			if err != nil {
				return err
			}
			out, err := bootstrapYAML(b)
			if err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(out)
			return err
		},
	}
	o.register(cmd, "sidecar")
	cmd.Flags().StringVar(&o.Cluster, "cluster", "", "node cluster, which Envoy requires (default: --namespace, else \"sidecar\")")
	cmd.Flags().BoolVar(&o.SotW, "sotw", false, "state-of-the-world ADS (api_type GRPC) instead of delta (DELTA_GRPC)")
	return cmd
}

// bootstrapYAML is the YAML form of b, as Envoy's -c reads it (proto3 JSON
// field names as in Envoy's docs, snake_case; Any with "@type").
func bootstrapYAML(b *bootstrapv3.Bootstrap) ([]byte, error) {
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("bootstrap envoy: %w", err)
	}
	return yaml.JSONToYAML(j)
}

// build makes the bootstrap: admin on 127.0.0.1:15000; one static cluster
// to Switchboard over HTTP/2 (ADS is built after the static clusters, so
// it must be one); ADS over delta (or SotW) with LDS and CDS from it; the
// node with its namespace and locality. It is checked with ValidateAll.
func (o envoyBootstrapOptions) build() (*bootstrapv3.Bootstrap, error) {
	host, port, err := o.check("bootstrap envoy")
	if err != nil {
		return nil, err
	}
	cluster := o.Cluster
	if cluster == "" {
		cluster = o.Namespace
	}
	if cluster == "" {
		cluster = "sidecar"
	}
	node := &corev3.Node{Id: o.NodeID, Cluster: cluster}
	if o.Zone != "" || o.Region != "" {
		node.Locality = &corev3.Locality{Zone: o.Zone, Region: o.Region}
	}
	if o.Namespace != "" {
		node.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{"NAMESPACE": structpb.NewStringValue(o.Namespace)}}
	}
	xds, err := o.xdsCluster(host, port)
	if err != nil {
		return nil, err
	}
	apiType := corev3.ApiConfigSource_DELTA_GRPC
	if o.SotW {
		apiType = corev3.ApiConfigSource_GRPC
	}
	ads := func() *corev3.ConfigSource {
		return &corev3.ConfigSource{
			ResourceApiVersion:    corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		}
	}
	b := &bootstrapv3.Bootstrap{
		Node:  node,
		Admin: &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", envoyAdminPort)},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             apiType,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: envoyXDSCluster},
				}}},
				SetNodeOnFirstMessageOnly: true,
			},
			LdsConfig: ads(),
			CdsConfig: ads(),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{xds}},
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap envoy: %w", err)
	}
	return b, nil
}

// xdsCluster is the static cluster that reaches Switchboard at host:port:
// STATIC for an IP address, STRICT_DNS for a name (a Service's DNS name in
// a cluster), HTTP/2, and TLS when the options ask for it.
// xdsKeepaliveSeconds is the idle time before TCP keepalive probes on the
// Envoy bootstrap's connection to Switchboard.
const xdsKeepaliveSeconds = 300

func (o envoyBootstrapOptions) xdsCluster(host string, port uint32) (*clusterv3.Cluster, error) {
	h2, err := anypb.New(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("bootstrap envoy: %w", err)
	}
	typ := clusterv3.Cluster_STRICT_DNS
	if _, err := netip.ParseAddr(host); err == nil {
		typ = clusterv3.Cluster_STATIC
	}
	c := &clusterv3.Cluster{
		Name:                 envoyXDSCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		ConnectTimeout:       durationpb.New(5 * time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: envoyXDSCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}},
			}}}},
		},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2},
		// The ADS connection is long-lived and mostly idle: keepalive
		// probes find a peer that went away without a FIN (a node lost, a
		// NAT entry expired) in minutes, not at the kernel's 2 hours.
		// Istio sets the same 300 s on its xDS cluster.
		UpstreamConnectionOptions: &clusterv3.UpstreamConnectionOptions{
			TcpKeepalive: &corev3.TcpKeepalive{KeepaliveTime: wrapperspb.UInt32(xdsKeepaliveSeconds)},
		},
	}
	if o.TLSCA != "" {
		ts, err := o.transportSocket(host)
		if err != nil {
			return nil, err
		}
		c.TransportSocket = ts
	}
	return c, nil
}

// transportSocket is the TLS (mTLS with a certificate) transport socket to
// Switchboard, from files Envoy reads (and re-reads when they change).
func (o envoyBootstrapOptions) transportSocket(host string) (*corev3.TransportSocket, error) {
	file := func(path string) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
	}
	common := &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{"h2"},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: file(o.TLSCA),
		}},
	}
	if o.TLSCert != "" {
		common.TlsCertificates = []*tlsv3.TlsCertificate{{CertificateChain: file(o.TLSCert), PrivateKey: file(o.TLSKey)}}
	}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: common}
	if _, err := netip.ParseAddr(host); err != nil {
		ctx.Sni = host
	}
	a, err := anypb.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("bootstrap envoy: %w", err)
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}, nil
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
