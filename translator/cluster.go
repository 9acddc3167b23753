package translator

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
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
