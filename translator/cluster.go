package translator

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// connectTimeout is the upstream connect timeout set on every cluster.
// gRPC clients ignore it (they use their own backoff); Envoy requires a
// positive value and defaults to 5 s, which is kept.
const connectTimeout = 5 * time.Second

// edsCluster builds the Cluster named canonical: type EDS with its
// ClusterLoadAssignment (also named canonical) fetched over ADS, and round
// robin, the one policy that every gRPC client and Envoy support.
// LbPolicy ROUND_ROBIN is the proto's zero value, so it does not appear in
// the JSON form of the cluster.
func edsCluster(canonical string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 canonical,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig:   adsConfigSource(),
			ServiceName: canonical,
		},
		ConnectTimeout: durationpb.New(connectTimeout),
		LbPolicy:       clusterv3.Cluster_ROUND_ROBIN,
	}
}

// metadataNamespace is the filter_metadata key under which Switchboard
// records facts about a cluster that no client acts on (grpc-go reads
// cluster metadata only for its GCP authentication filter, and keeps an
// unknown Struct as-is; grpc-js-xds and C-core ignore it).
const metadataNamespace = "switchboard.io"

// httpProtocolOptionsName is the typed_extension_protocol_options key
// Envoy reads upstream HTTP options from. gRPC clients do not read the field.
const httpProtocolOptionsName = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// isHTTP2AppProtocol reports whether a Service port's appProtocol means the
// backends speak HTTP/2 (cleartext prior knowledge for h2c).
func isHTTP2AppProtocol(appProtocol string) bool {
	switch appProtocol {
	case "kubernetes.io/h2c", "http2", "grpc":
		return true
	}
	return false
}

// policyCluster returns the EDS cluster named canonical with pol applied and
// the port's appProtocol recorded: as filter_metadata
// "switchboard.io".appProtocol when set, and for the HTTP/2 family as
// HttpProtocolOptions with explicit HTTP/2, which Envoy needs to speak h2 to
// the backends (gRPC clients always do). On an error (a message that does
// not marshal, which the messages built here never are) it returns the
// plain cluster and the error.
func policyCluster(pol policy, canonical, appProtocol string) (*clusterv3.Cluster, error) {
	c := edsCluster(canonical)
	if err := pol.applyCluster(c); err != nil {
		return edsCluster(canonical), fmt.Errorf("policy not applied: %w", err)
	}
	if appProtocol == "" {
		return c, nil
	}
	c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		metadataNamespace: {Fields: map[string]*structpb.Value{"appProtocol": structpb.NewStringValue(appProtocol)}},
	}}
	if isHTTP2AppProtocol(appProtocol) {
		a, err := deterministicAny(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
						Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
					},
				},
			},
		})
		if err != nil {
			return edsCluster(canonical), fmt.Errorf("HTTP/2 protocol options: %w", err)
		}
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsName: a}
	}
	return c, nil
}
