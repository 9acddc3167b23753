package integration

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestMaxConnectionAge runs two `switchboard serve --manifests` processes on
// one folder, the way two replicas watch one API server. A SotW ADS client
// on the first, which has a short --max-connection-age, gets GOAWAY
// ("max_age") and its stream is closed after the grace; reconnecting to the
// same process, and to the other one, it gets the same resources under the
// same version strings (content-derived, not per process or per
// connection), so a client that moves between replicas sees no change.
func TestMaxConnectionAge(t *testing.T) {
	bin, _ := binaries(t)
	w := newFolderWorld(t)
	ns := w.Namespace(t)
	for i, name := range []string{"age-a", "age-b"} {
		w.ApplyService(t, newService(ns, name, port...))
		w.ApplySlice(t, newSlice(ns, name, name+"-1", port,
			harness.Endpoint{Address: fmt.Sprintf("10.244.251.%d", i+1), State: harness.Ready, Zone: "z1", Pod: name + "-pod"}))
	}
	const age, grace = 2 * time.Second, time.Second
	aging := startSwitchboard(t, bin, "--manifests", w.dir,
		"--max-connection-age", age.String(), "--max-connection-age-grace", grace.String())
	other := startSwitchboard(t, bin, "--manifests", w.dir)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(aging.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	connected := time.Now()
	stream, first := subscribeAll(ctx, t, conn)
	// A GOAWAY takes the channel out of READY at once (grpc-go stops using
	// the transport for new streams), while the open stream goes on.
	goaway := make(chan time.Time, 1)
	go func() {
		if conn.WaitForStateChange(ctx, connectivity.Ready) {
			goaway <- time.Now()
		}
		close(goaway)
	}()
	// Read on (ACKing) until the server ends the stream.
	var end error
	for end == nil {
		var r *discoveryv3.DiscoveryResponse
		if r, end = stream.Recv(); end == nil {
			end = stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()})
		}
	}
	lived := time.Since(connected)
	if status.Code(end) != codes.Unavailable || !strings.Contains(end.Error(), "max_age") {
		t.Fatalf("stream ended with %v; want Unavailable after a GOAWAY with debug data max_age", end)
	}
	// grpc-go jitters the age by +/-10%; the grace comes on top.
	if minimum := age*9/10 + grace; lived < minimum {
		t.Fatalf("stream ended after %v, before the age and grace (at least %v)", lived.Round(time.Millisecond), minimum)
	}
	left, ok := <-goaway
	if !ok {
		t.Fatal("the channel never left READY: no GOAWAY")
	}
	if sinceConnect := left.Sub(connected); sinceConnect < age*9/10 || sinceConnect > lived {
		t.Fatalf("left READY %v after connecting; want after the age (%v - 10%%) and before the stream ended (%v)", sinceConnect.Round(time.Millisecond), age, lived.Round(time.Millisecond))
	}
	// grpc-go's server also waits up to 1 s for the client to hang up
	// after the grace, so the stream ends age + grace + up to 1 s in.
	t.Logf("GOAWAY after %v, stream closed after %v: %v", left.Sub(connected).Round(time.Millisecond), lived.Round(time.Millisecond), end)

	// The same ClientConn reconnects to the same process.
	_, again := subscribeAll(ctx, t, conn)
	compareSnapshots(t, "after reconnecting to the same process", first, again)

	conn2, err := grpc.NewClient(other.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	_, elsewhere := subscribeAll(ctx, t, conn2)
	compareSnapshots(t, "on the other process", first, elsewhere)
}

// adsTypes are the four types a gRPC client subscribes to.
var adsTypes = []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType}

// typeSnapshot is one response as a client keeps it: its version and each
// resource's bytes by name.
type typeSnapshot struct {
	version   string
	resources map[string][]byte
}

// subscribeAll opens a SotW ADS stream as a grpc-go client and subscribes
// as one does, by name: every Listener and Cluster (wildcard), then the
// RouteConfigurations and assignments they name. It returns the stream and
// the first response of each type, which it ACKs.
func subscribeAll(ctx context.Context, t *testing.T, conn *grpc.ClientConn) (discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, map[string]typeSnapshot) {
	t.Helper()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(req *discoveryv3.DiscoveryRequest) {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatalf("send %s request: %v", req.GetTypeUrl(), err)
		}
	}
	send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "age-client", UserAgentName: "gRPC Go"}, TypeUrl: resourcev3.ListenerType})
	send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType})
	got := map[string]typeSnapshot{}
	for len(got) < len(adsTypes) {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for the first responses (have %v): %v", slices.Sorted(maps.Keys(got)), err)
		}
		send(&discoveryv3.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()})
		if _, ok := got[r.GetTypeUrl()]; ok {
			continue
		}
		s := typeSnapshot{version: r.GetVersionInfo(), resources: map[string][]byte{}}
		var names []string // of the resources of the next type down
		for _, a := range r.GetResources() {
			m, err := a.UnmarshalNew()
			if err != nil {
				t.Fatalf("decode a %s: %v", a.GetTypeUrl(), err)
			}
			s.resources[cachev3.GetResourceName(m)] = a.GetValue()
			names = append(names, references(t, m)...)
		}
		got[r.GetTypeUrl()] = s
		if next := nextType[r.GetTypeUrl()]; next != "" {
			slices.Sort(names)
			send(&discoveryv3.DiscoveryRequest{TypeUrl: next, ResourceNames: slices.Compact(names)})
		}
	}
	return stream, got
}

// references returns the names a gRPC client subscribes to for m: a
// Listener's RouteConfiguration (its api_listener's RDS name), a Cluster's
// assignment (its EDS service name, else its name).
func references(t *testing.T, m proto.Message) []string {
	t.Helper()
	switch m := m.(type) {
	case *listenerv3.Listener:
		hcm := &hcmv3.HttpConnectionManager{}
		if err := m.GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
			t.Fatalf("listener %s: api_listener: %v", m.GetName(), err)
		}
		if n := hcm.GetRds().GetRouteConfigName(); n != "" {
			return []string{n}
		}
	case *clusterv3.Cluster:
		if n := m.GetEdsClusterConfig().GetServiceName(); n != "" {
			return []string{n}
		}
		return []string{m.GetName()}
	}
	return nil
}

// nextType is the type whose names a response of a type gives.
var nextType = map[string]string{resourcev3.ListenerType: resourcev3.RouteType, resourcev3.ClusterType: resourcev3.EndpointType}

// compareSnapshots fails unless b has a's versions and resources, type by
// type.
func compareSnapshots(t *testing.T, what string, a, b map[string]typeSnapshot) {
	t.Helper()
	for _, typ := range adsTypes {
		x, y := a[typ], b[typ]
		if len(x.resources) == 0 {
			t.Errorf("%s: no %s resources at all", what, typ)
		}
		if x.version != y.version {
			t.Errorf("%s: %s version %q, first connection had %q", what, typ, y.version, x.version)
		}
		if !maps.EqualFunc(x.resources, y.resources, slices.Equal) {
			t.Errorf("%s: %s resources %v differ from the first connection's %v", what, typ, slices.Sorted(maps.Keys(y.resources)), slices.Sorted(maps.Keys(x.resources)))
		}
	}
}
