package integration

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchboard-xds/switchboard/integration/harness"
)

// adsStream opens a SotW ADS stream to sb.
func adsStream(t *testing.T, sb *switchboard) discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	conn, err := grpc.NewClient(sb.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	// Waiting for ready: a connection refused by --xds-max-connections is
	// retried, as clients do, until a slot is free.
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func exchange(t *testing.T, s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, req *discoveryv3.DiscoveryRequest) *discoveryv3.DiscoveryResponse {
	t.Helper()
	if err := s.Send(req); err != nil {
		t.Fatal(err)
	}
	r, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLimitsAgainstHostileClients runs the real binary with
// --xds-max-connections 50 against the hostile cases of connections and
// NACKs: 2000 connections, of which 50 are served and the rest closed at
// once, with a stream opened before going on; and 2000 NACKs of one
// response with 1 MB of message each, which count as one NACK and log a
// few KB, not 2 GB.
func TestLimitsAgainstHostileClients(t *testing.T) {
	bin := switchboardBinary(t)
	w := newFolderWorld(t)
	ns := w.Namespace(t)
	port := []harness.Port{{Name: "grpc", Port: 50051}}
	w.ApplyService(t, newService(ns, "echo", port...))
	// The 2000 connections below send nothing: a handshake timeout shorter
	// than the dialling would free their slots (that is
	// TestSilentConnectionsClosedAfterHandshakeTimeout's subject, not this).
	sb := startSwitchboard(t, bin, "--manifests", w.dir, "--xds-max-connections", "50", "--xds-handshake-timeout", "10m")
	echo := "echo." + ns + ".svc.cluster.local:50051"

	good := adsStream(t, sb)
	r := exchange(t, good, &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "good"}, TypeUrl: resourcev3.ClusterType, ResourceNames: []string{echo}})

	t.Run("connections", func(t *testing.T) {
		served := 0
		for range 2000 {
			c, err := net.Dial("tcp", sb.xds)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// A served connection gets the server's HTTP/2 SETTINGS; a
			// refused one is closed.
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(make([]byte, 64)); err == nil {
				served++
			}
		}
		// The good client's connection is one of the 50.
		if served != 49 {
			t.Errorf("%d of 2000 connections served, want 49", served)
		}
		if got := metricValue(t, sb, "switchboard_xds_limit_exceeded_total", `limit="connections"`); got != 1951 {
			t.Errorf(`limit_exceeded{connections} = %v, want 1951`, got)
		}
		if g := metricValue(t, sb, "go_goroutines", ""); g > 1000 {
			t.Errorf("%v goroutines with 2000 connections dialled, want well under 1000", g)
		}
		// The stream opened before goes on.
		r = exchange(t, good, &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{echo}})
		if r.GetTypeUrl() != resourcev3.EndpointType {
			t.Errorf("good client got %s, want EDS", r.GetTypeUrl())
		}
	})

	t.Run("nack flood", func(t *testing.T) {
		hostile := adsStream(t, sb)
		r := exchange(t, hostile, &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "hostile"}, TypeUrl: resourcev3.ClusterType})
		logBefore := len(sb.out.String())
		msg := strings.Repeat("x", 1<<20)
		for range 2000 {
			if err := hostile.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: r.GetNonce(), ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: msg}}); err != nil {
				t.Fatal(err)
			}
		}
		// Its answer means the flood was read.
		exchange(t, hostile, &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{echo}})
		if n := len(sb.out.String()) - logBefore; n > 16<<10 {
			t.Errorf("%d bytes of log for 2000 NACKs of 1 MB, want at most 16 KiB", n)
		}
		if got := metricValue(t, sb, "switchboard_xds_nacks_total", `client_class="other",type="cds"`); got != 1 {
			t.Errorf("nacks_total{cds} = %v, want 1", got)
		}
		if got := metricValue(t, sb, "switchboard_xds_limit_exceeded_total", `limit="nack_log"`); got != 1999 {
			t.Errorf("limit_exceeded{nack_log} = %v, want 1999", got)
		}
		_, body := sb.get("/debug/clients")
		if len(body) > 64<<10 {
			t.Errorf("/debug/clients is %d bytes", len(body))
		}
		var cs []struct {
			NodeID string `json:"node_id"`
			Types  map[string]struct {
				Nacks         int `json:"nacks"`
				LastNackBytes int `json:"last_nack_bytes"`
			} `json:"types"`
		}
		if err := json.Unmarshal([]byte(body), &cs); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range cs {
			if c.NodeID == "hostile" {
				found = true
				if s := c.Types["cds"]; s.Nacks != 1 || s.LastNackBytes != 1<<20 {
					t.Errorf("hostile client's CDS status: %+v, want 1 NACK of %d bytes", s, 1<<20)
				}
			}
		}
		if !found {
			t.Errorf("no hostile client in /debug/clients: %s", body)
		}
		// The good client is still served.
		exchange(t, good, &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ListenerType, ResourceNames: []string{echo}})
	})
}
