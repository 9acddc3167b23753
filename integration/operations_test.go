package integration

import (
	"context"
	"encoding/json"
	"os/exec"
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
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/internal/poll"
)

// TestOperations runs the operator's tools against the real binary in
// manifest mode with a real grpc-go xDS client: the series dashboards read
// exist at 0 from the start, gRPC health turns SERVING, an endpoint change
// is observed in switchboard_convergence_seconds, `switchboard status`
// shows the client SYNCED for all four types, /debug/config_dump shows
// what it was sent, and a raw ADS client that NACKs EDS shows NACKED.
func TestOperations(t *testing.T) {
	w, sb, runner := standalone(t)

	_, metrics := sb.get("/metrics")
	for _, series := range []string{
		`switchboard_convergence_seconds_count{client_class="c-core",type="lds"} 0`,
		`switchboard_convergence_stage_seconds_count{stage="push"} 0`,
		`switchboard_xds_oldest_unacked_seconds{client_class="envoy"} 0`,
		`switchboard_xds_nacks_total{client_class="other",type="eds"} 0`,
		`switchboard_xds_connected_clients{client_class="envoy",zone="none"} 0`,
		`switchboard_xds_stream_duration_seconds_count{client_class="other"} 0`,
		`switchboard_build_info{go_version="go`,
		`grpc_server_started_total{grpc_method="StreamAggregatedResources",grpc_service="envoy.service.discovery.v3.AggregatedDiscoveryService",grpc_type="bidi_stream"} 0`,
		`grpc_server_handling_seconds_count{grpc_method="FetchClientStatus",grpc_service="envoy.service.status.v3.ClientStatusDiscoveryService",grpc_type="unary"} 0`,
	} {
		if !strings.Contains(metrics, series) {
			t.Errorf("/metrics at start lacks %s", series)
		}
	}

	conn, err := grpc.NewClient(sb.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	s := newScenario(t, w, sb, runner, clients.GoGRPC, 3*time.Minute)
	health, err := healthpb.NewHealthClient(conn).Check(s.ctx, &healthpb.HealthCheckRequest{})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc.health.v1 Check = %v, %v; want SERVING once the manifests are loaded", health, err)
	}

	ns := w.Namespace(t)
	b := backends(t, "ops", 2)
	w.ApplyService(t, newService(ns, "ops", port...))
	w.ApplySlice(t, newSlice(ns, "ops", "ops-1", port, ep(b[0], harness.Ready, "z1")))
	c := s.client("xds:///ops." + ns + ":50051")
	rs, err := c.WaitSpread(s.ctx, 10, b[0].ID())
	s.check("serving", rs, err)
	w.ApplySlice(t, newSlice(ns, "ops", "ops-1", port, ep(b[1], harness.Ready, "z1")))
	rs, err = c.WaitOnlyFrom(s.ctx, 10, b[1].ID())
	s.check("following the change", rs, err)
	waitMetric(t, sb, `switchboard_convergence_seconds_count\{client_class="other",type="eds"\}`, 1)

	node := t.Name()
	line := waitStatus(t, sb, node, func(f []string) bool {
		return strings.Count(strings.Join(f, " "), "SYNCED") == 4
	})
	t.Logf("switchboard status (grpc-go client):\n%s", line)

	// What the client was sent, by name.
	code, body := sb.get("/debug/config_dump?node=" + node)
	if code != 200 {
		t.Fatalf("/debug/config_dump?node=%s = %d %s", node, code, body)
	}
	var dump []struct {
		Types map[string]struct {
			State string `json:"state"`
			Names []struct {
				Name     string          `json:"name"`
				Resource json.RawMessage `json:"resource"`
			} `json:"names"`
		} `json:"types"`
	}
	if err := json.Unmarshal([]byte(body), &dump); err != nil || len(dump) != 1 {
		t.Fatalf("config_dump: %v:\n%s", err, body)
	}
	eds := dump[0].Types["eds"]
	if eds.State != "SYNCED" || len(eds.Names) != 1 || !strings.Contains(string(eds.Names[0].Resource), b[1].Addr()[:strings.LastIndex(b[1].Addr(), ":")]) {
		t.Fatalf("config_dump eds = %+v, want the assignment with %s", eds, b[1].Addr())
	}
	if code, _ := sb.get("/debug/config_dump?node=nobody"); code != 404 {
		t.Errorf("config_dump of an unknown node = %d, want 404", code)
	}

	// A raw ADS client that NACKs the assignment.
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ads.Send(&discoveryv3.DiscoveryRequest{
		Node:          &corev3.Node{Id: "nacker", UserAgentName: "raw-test"},
		TypeUrl:       resourcev3.EndpointType,
		ResourceNames: []string{eds.Names[0].Name},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := ads.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := ads.Send(&discoveryv3.DiscoveryRequest{
		TypeUrl:       resourcev3.EndpointType,
		ResourceNames: []string{eds.Names[0].Name},
		ResponseNonce: resp.GetNonce(),
		ErrorDetail:   &statuspb.Status{Code: int32(codes.InvalidArgument), Message: "test rejects this assignment"},
	}); err != nil {
		t.Fatal(err)
	}
	line = waitStatus(t, sb, "nacker", func(f []string) bool { return strings.Contains(strings.Join(f, " "), "NACKED") })
	t.Logf("switchboard status (NACKing client):\n%s", line)
	if f := strings.Fields(line); len(f) < 4 || f[len(f)-2] != "NACKED" {
		t.Errorf("nacker's EDS column is not NACKED: %q", line)
	}
	waitMetric(t, sb, `switchboard_xds_nacks_total\{client_class="other",type="eds"\}`, 1)
}

// waitStatus runs `switchboard status` until the line of node satisfies
// ok, and returns the whole output.
func waitStatus(t *testing.T, sb *switchboard, node string, ok func(fields []string) bool) string {
	t.Helper()
	var out []byte
	if !poll.Wait(30*time.Second, func() bool {
		var err error
		out, err = exec.Command(sb.bin, "status", "--debug", sb.debug).CombinedOutput()
		if err != nil {
			t.Fatalf("switchboard status: %v\n%s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == node && ok(f) {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("switchboard status never showed %s as wanted:\n%s", node, out)
	}
	return string(out)
}
