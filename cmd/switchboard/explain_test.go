package main

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchboard-xds/switchboard/internal/poll"
	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/pipeline"
	"github.com/switchboard-xds/switchboard/translator"
	"github.com/switchboard-xds/switchboard/xds"
)

func greeter(addr string) *model.Service {
	return &model.Service{
		Key: model.ServiceKey{Namespace: "demo", Name: "greeter"}, ClusterIPs: []string{"10.96.0.10"}, SliceCount: 1,
		Ports: []model.Port{{Name: "grpc", Port: 50051, Endpoints: []model.Endpoint{{Addresses: []string{addr}, Port: 8080, Ready: true, Serving: true}}}},
	}
}

// TestExplain runs explain against a live server (the real cache, ADS
// server and debug handler) with a client that subscribed to a Service's
// four resources and ACKed them, then rejected the next assignment: explain
// walks listener -> route -> cluster -> endpoints as the client holds it,
// says the assignment was rejected, finds the replica that holds the
// client among several, and says when none does.
func TestExplain(t *testing.T) {
	cache := pipeline.NewCache(nil)
	syncer := pipeline.NewSyncer(cache, pipeline.Options{})
	ads := xds.NewServer(cache, xds.ServerOptions{})
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, ads)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	debug := httptest.NewServer(debugHandler(ads, syncer))
	t.Cleanup(debug.Close)
	other := httptest.NewServer(debugHandler(xds.NewServer(pipeline.NewCache(nil), xds.ServerOptions{}), syncer)) // a replica without the client
	t.Cleanup(other.Close)

	key := model.ServiceKey{Namespace: "demo", Name: "greeter"}
	syncer.Sink(model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{key: greeter("10.0.0.1")}})

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "client-1", UserAgentName: "gRPC Go"}
	canonical := translator.CanonicalName("cluster.local", key, 50051)
	acked := map[string]*discoveryv3.DiscoveryResponse{}
	ask := func(typeURL, name string, ack *discoveryv3.DiscoveryResponse, nack string) {
		t.Helper()
		req := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeURL, ResourceNames: []string{name}}
		if ack != nil {
			req.VersionInfo, req.ResponseNonce = ack.GetVersionInfo(), ack.GetNonce()
		}
		if nack != "" {
			req.VersionInfo = acked[typeURL].GetVersionInfo()
			req.ErrorDetail = &statuspb.Status{Code: 3, Message: nack}
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	next := func(typeURL string) *discoveryv3.DiscoveryResponse {
		t.Helper()
		r, err := stream.Recv()
		if err != nil || r.GetTypeUrl() != typeURL {
			t.Fatalf("want a %s response, got %v (%v)", typeURL, r.GetTypeUrl(), err)
		}
		return r
	}
	for _, s := range []struct{ typeURL, name string }{
		{resourcev3.ListenerType, "greeter.demo:50051"},
		{resourcev3.RouteType, canonical},
		{resourcev3.ClusterType, canonical},
		{resourcev3.EndpointType, canonical},
	} {
		ask(s.typeURL, s.name, nil, "")
		r := next(s.typeURL)
		ask(s.typeURL, s.name, r, "")
		acked[s.typeURL] = r
	}

	run1 := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"explain"}, args...), &out, &bytes.Buffer{})
		return out.String(), err
	}
	addr := strings.TrimPrefix(debug.URL, "http://")
	otherAddr := strings.TrimPrefix(other.URL, "http://")
	var out string
	// The ACKs are read by the stream's goroutine: poll the debug view.
	poll.Wait(10*time.Second, func() bool {
		out, err = run1("--debug", otherAddr+","+addr, "client-1", "greeter.demo:50051")
		return err == nil && strings.Count(out, "in sync at") == 8
	})
	t.Log(out)
	for _, want := range []string{
		"client client-1, stream", "on " + addr,
		"listener greeter.demo:50051  in sync at",
		"route " + canonical + "  in sync at",
		"-> cluster " + canonical,
		"10.0.0.1:8080  HEALTHY",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}

	// The endpoint moves; the client rejects the new assignment.
	syncer.Sink(model.Batch{Services: map[model.ServiceKey]*model.Service{key: greeter("10.0.0.2")}})
	r := next(resourcev3.EndpointType)
	ask(resourcev3.EndpointType, canonical, r, "rejected for the test")
	poll.Wait(10*time.Second, func() bool {
		out, err = run1("--debug", addr, "client-1", "greeter.demo:50051")
		return err == nil && strings.Contains(out, "eds NACKED")
	})
	t.Log(out)
	if !strings.Contains(out, "eds NACKED") || !strings.Contains(out, "REJECTED the type's last response") || !strings.Contains(out, "10.0.0.2:8080") {
		t.Errorf("after a rejected assignment, explain says:\n%s", out)
	}

	if _, err := run1("--debug", otherAddr, "client-1"); err == nil || !strings.Contains(err.Error(), "no replica holds") || !strings.Contains(err.Error(), "not connected there") {
		t.Errorf("explain of a client on no replica asked = %v", err)
	}
	if _, err := run1("client-1", "a", "b"); err == nil || exitCode(err) != 2 {
		t.Errorf("explain with three arguments = %v, want a usage error", err)
	}
}
