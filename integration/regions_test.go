package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/watcher"
)

// TestNodeRegions: --node-regions needs list/watch on nodes, which the
// default ClusterRole does not grant (a warning at start, and an exit that
// names the forbidden resource after --sync-timeout); with
// deploy/rbac-node-regions.yaml applied, each endpoint's locality carries
// its Node's region. Localities do not change how a gRPC client spreads
// calls, so this test reads the assignment as a client would, over ADS.
func TestNodeRegions(t *testing.T) {
	bin := switchboardBinary(t)
	kubeconfig, admin := switchboardKubeconfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	out, err := exec.CommandContext(ctx, bin, "serve", "--kubeconfig", kubeconfig, "--node-regions", "--sync-timeout", "2s",
		"--xds-address", freeAddr(t), "--admin-address", freeAddr(t)).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err == nil || !strings.Contains(string(out), "rbac-node-regions.yaml") || !strings.Contains(lines[len(lines)-1], "nodes is forbidden") {
		t.Fatalf("--node-regions without the nodes ClusterRole: err %v, output:\n%s", err, out)
	}

	_, file, _, _ := runtime.Caller(0)
	if err := harness.ApplyRBAC(ctx, admin, filepath.Join(filepath.Dir(file), "..", "deploy", "rbac-node-regions.yaml")); err != nil {
		t.Fatal(err)
	}
	for name, region := range map[string]string{"node-eu": "eu", "node-us": "us"} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{watcher.RegionLabel: region}}}
		if _, err := admin.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w := apiWorld{admin}
	ns := w.Namespace(t)
	w.ApplyService(t, newService(ns, "geo", port...))
	eu := harness.Endpoint{Address: "10.244.250.1", State: harness.Ready, Zone: "eu-1", NodeName: "node-eu", Pod: "p1"}
	us := harness.Endpoint{Address: "10.244.250.2", State: harness.Ready, Zone: "us-1", NodeName: "node-us", Pod: "p2"}
	w.ApplySlice(t, newSlice(ns, "geo", "geo-1", port, eu, us))
	sb := startSwitchboard(t, bin, "--kubeconfig", kubeconfig, "--node-regions")

	conn, err := grpc.NewClient(sb.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := "geo." + ns + ".svc.cluster.local:50051"
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{name}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	cla := &endpointv3.ClusterLoadAssignment{}
	if len(resp.GetResources()) != 1 || resp.GetResources()[0].UnmarshalTo(cla) != nil {
		t.Fatalf("EDS for %s: %v", name, resp)
	}
	got := map[string]string{}
	for _, l := range cla.GetEndpoints() {
		got[l.GetLocality().GetZone()] = l.GetLocality().GetRegion()
	}
	if got["eu-1"] != "eu" || got["us-1"] != "us" {
		t.Fatalf("zone -> region in the assignment = %v, want eu-1->eu, us-1->us", got)
	}
}
