package translator

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// dnsCluster is the cluster of one port of an ExternalName Service: type
// LOGICAL_DNS, whose load assignment holds exactly one locality with one
// endpoint, externalName:port, as grpc-go requires (dnsHostNameFromCluster
// in unmarshal_cds.go). The client resolves the name itself, as a pod
// following the Service's DNS CNAME would; the port is the Service port
// (an ExternalName Service has no targetPort to map to).
func dnsCluster(canonical, externalName string, port int32) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 canonical,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: canonical,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				Locality: locality(place{}),
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
							Address:       externalName,
							PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
						}}},
					}},
				}},
			}},
		},
	}
}
