package integration

import (
	"context"
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
)

// adsState is what a raw SotW ADS client holds after a response: the
// cluster names of the last CDS response and the endpoint addresses of
// each assignment of the last EDS response.
type adsState struct {
	Clusters  []string            // sorted
	Endpoints map[string][]string // assignment name -> addresses in order
}

// adsSession runs one raw SotW ADS stream on conn as node id, the way a
// gRPC client with a wildcard CDS subscription would: every cluster, then
// the assignments named eds. It ACKs every response and calls seen with the
// state after each, until seen returns false (then it returns nil), ctx
// ends or the stream fails (then that error). The stream waits for the
// server to be reachable (WaitForReady), so a session opened while
// Switchboard starts begins with its first response.
func adsSession(ctx context.Context, conn *grpc.ClientConn, id string, eds []string, seen func(adsState) bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("open ADS stream: %w", err)
	}
	node := &corev3.Node{Id: id, UserAgentName: "gRPC Go"}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		return fmt.Errorf("send CDS request: %w", err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: eds}); err != nil {
		return fmt.Errorf("send EDS request: %w", err)
	}
	st := adsState{Endpoints: map[string][]string{}}
	for {
		r, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}
		switch r.GetTypeUrl() {
		case resourcev3.ClusterType:
			st.Clusters = st.Clusters[:0]
			for _, res := range r.GetResources() {
				c := &clusterv3.Cluster{}
				if err := res.UnmarshalTo(c); err != nil {
					return fmt.Errorf("decode cluster: %w", err)
				}
				st.Clusters = append(st.Clusters, c.GetName())
			}
			slices.Sort(st.Clusters)
		case resourcev3.EndpointType:
			ack.ResourceNames = eds
			st.Endpoints = map[string][]string{}
			for _, res := range r.GetResources() {
				cla := &endpointv3.ClusterLoadAssignment{}
				if err := res.UnmarshalTo(cla); err != nil {
					return fmt.Errorf("decode assignment: %w", err)
				}
				st.Endpoints[cla.GetClusterName()] = claAddresses(cla)
			}
		}
		if err := stream.Send(ack); err != nil {
			return fmt.Errorf("send ACK: %w", err)
		}
		if !seen(st) {
			return nil
		}
	}
}

// claAddresses lists an assignment's endpoint addresses in order.
func claAddresses(cla *endpointv3.ClusterLoadAssignment) []string {
	var out []string
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			out = append(out, lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
		}
	}
	return out
}

// deltaStream is a raw delta ADS stream, as Envoy speaks it; next ACKs
// every response it reads.
type deltaStream struct {
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
}

// openDelta opens a delta ADS stream on conn, waiting for the server to be
// reachable.
func openDelta(ctx context.Context, conn *grpc.ClientConn) (*deltaStream, error) {
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return nil, fmt.Errorf("open delta stream: %w", err)
	}
	return &deltaStream{stream: s}, nil
}

func (d *deltaStream) send(req *discoveryv3.DeltaDiscoveryRequest) error {
	if err := d.stream.Send(req); err != nil {
		return fmt.Errorf("send delta request: %w", err)
	}
	return nil
}

// next receives one response and ACKs it.
func (d *deltaStream) next() (*discoveryv3.DeltaDiscoveryResponse, error) {
	r, err := d.stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("receive delta response: %w", err)
	}
	return r, d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()})
}
