package integration

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestFaultSwitchboardKilled SIGKILLs Switchboard (API-server mode) while a
// grpc-go xDS client makes 4 calls at a time, a delta client is subscribed
// to everything, and restarts it:
//   - a SotW client that connects while it starts gets the whole world in
//     its first CDS and first EDS response, never an empty or partial one;
//   - the delta client reconnects with the versions it had
//     (initial_resource_versions) and gets nothing resent whose content did
//     not change: a later change arrives alone;
//   - the grpc-go client keeps calling the same two backends throughout,
//     with no failed call.
func TestFaultSwitchboardKilled(t *testing.T) {
	t.Parallel()
	bin, runner := binaries(t)
	kubeconfig, admin := switchboardKubeconfig(t)
	w := apiWorld{admin}
	ns := w.Namespace(t)
	b := backends(t, "k", 2)
	want := map[string][]string{}
	live := "live." + ns + ".svc.cluster.local:50051"
	w.ApplyService(t, newService(ns, "live", port...))
	w.ApplySlice(t, newSlice(ns, "live", "live-1", port, ep(b[0], harness.Ready, "z1"), ep(b[1], harness.Ready, "z1")))
	want[live] = []string{addrOf(b[0].Addr()), addrOf(b[1].Addr())}
	const nServices = 30
	for i := range nServices {
		svc := fmt.Sprintf("k%d", i)
		a1, a2 := fmt.Sprintf("10.244.201.%d", 2*i+1), fmt.Sprintf("10.244.201.%d", 2*i+2)
		w.ApplyService(t, newService(ns, svc, port...))
		w.ApplySlice(t, newSlice(ns, svc, svc+"-1", port,
			harness.Endpoint{Address: a1, State: harness.Ready, Zone: "z1", Pod: "p-" + a1},
			harness.Endpoint{Address: a2, State: harness.Ready, Zone: "z1", Pod: "p-" + a2}))
		want[svc+"."+ns+".svc.cluster.local:50051"] = []string{a1, a2}
	}
	for _, v := range want {
		slices.Sort(v)
	}
	names := slices.Sorted(maps.Keys(want))

	sb := startSwitchboard(t, bin, "--kubeconfig", kubeconfig)
	s := newScenario(t, w, sb, runner, clients.GoGRPC, 4*time.Minute)
	ctx := s.ctx
	p := s.start(clients.Options{Target: "xds:///live." + ns + ":50051", Concurrency: 4})
	rs, err := p.WaitSpread(ctx, 40, ids(b...)...)
	s.check("spread before the kill", rs, err)

	conn, err := grpc.NewClient(sb.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	node := &corev3.Node{Id: "killed-delta", UserAgentName: "envoy"}
	versions := deltaSubscribe(t, ctx, conn, node, names)

	from := p.Len()
	killed := time.Now()
	sb.kill()
	// A SotW client connecting while Switchboard starts.
	sb.launch()
	launched := time.Now()
	var firstCDS, firstEDS *adsState
	var firstAt time.Time
	during, err := grpc.NewClient(sb.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer during.Close()
	err = adsSession(ctx, during, "during-start", names, func(st adsState) bool {
		if firstCDS == nil && st.Clusters != nil {
			firstAt = time.Now()
			c := st
			firstCDS = &c
		}
		if firstEDS == nil && len(st.Endpoints) > 0 {
			e := st
			firstEDS = &e
		}
		return firstCDS == nil || firstEDS == nil
	})
	if err != nil {
		t.Fatalf("client connecting during start: %v", err)
	}
	sb.waitReady()
	ready := time.Now()
	t.Logf("faults kill: restarted Switchboard ready %v after launch; a client connecting during start got its first response %v after launch",
		ready.Sub(launched).Round(time.Millisecond), firstAt.Sub(launched).Round(time.Millisecond))
	for _, n := range names {
		if _, ok := slices.BinarySearch(firstCDS.Clusters, n); !ok {
			t.Errorf("first CDS response after the restart lacks %s (%d clusters)", n, len(firstCDS.Clusters))
		}
		if got := slices.Sorted(slices.Values(firstEDS.Endpoints[n])); !slices.Equal(got, want[n]) {
			t.Errorf("first EDS response after the restart: %s = %v, want %v", n, got, want[n])
		}
	}

	// The delta client resumes with the versions it had; one change later,
	// that change must be all it got.
	moved := names[0] // k0's
	got := deltaResume(t, ctx, conn, node, names, versions, func() {
		w.ApplySlice(t, newSlice(ns, "k0", "k0-1", port, harness.Endpoint{Address: "10.244.201.250", State: harness.Ready, Zone: "z1", Pod: "p-moved"}))
	}, moved)
	t.Logf("faults kill: the delta client resumed with %d+%d versions and got %d resources up to the one change", len(versions[resourcev3.ClusterType]), len(versions[resourcev3.EndpointType]), got)

	rs, err = p.WaitSpread(ctx, 40, ids(b...)...)
	s.check("spread after the restart", rs, err)
	window := p.Results()[from:]
	if bad := failedOrOther(window, ids(b...)...); len(bad) > 0 {
		t.Errorf("%d of %d calls from the kill to convergence failed or went elsewhere; first: %v", len(bad), len(window), bad[0])
	}
	t.Logf("faults kill: %d calls from the kill (%v) to convergence after the restart, none failed, all on the same 2 backends",
		len(window), time.Since(killed).Round(time.Millisecond))
}

// deltaSubscribe opens a delta stream on conn as node with a wildcard CDS
// subscription and EDS for names, and reads until every name arrived as
// cluster and as assignment. It returns the versions it holds, by type URL
// then name.
func deltaSubscribe(t *testing.T, ctx context.Context, conn *grpc.ClientConn, node *corev3.Node, names []string) map[string]map[string]string {
	t.Helper()
	d := deltaOpen(t, ctx, conn, node, names, nil)
	versions := map[string]map[string]string{resourcev3.ClusterType: {}, resourcev3.EndpointType: {}}
	complete := func() bool {
		for _, n := range names {
			if versions[resourcev3.ClusterType][n] == "" || versions[resourcev3.EndpointType][n] == "" {
				return false
			}
		}
		return true
	}
	for !complete() {
		r, err := d.next()
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range r.GetResources() {
			versions[r.GetTypeUrl()][res.GetName()] = res.GetVersion()
		}
		for _, n := range r.GetRemovedResources() {
			delete(versions[r.GetTypeUrl()], n)
		}
	}
	return versions
}

// deltaOpen opens the stream and sends the two subscriptions, with had (by
// type URL) as initial_resource_versions.
func deltaOpen(t *testing.T, ctx context.Context, conn *grpc.ClientConn, node *corev3.Node, names []string, had map[string]map[string]string) *deltaStream {
	t.Helper()
	d, err := openDelta(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(
		d.send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, InitialResourceVersions: had[resourcev3.ClusterType]}),
		d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: names, InitialResourceVersions: had[resourcev3.EndpointType]}),
	); err != nil {
		t.Fatal(err)
	}
	return d
}

// deltaResume reopens the delta stream with the versions had, makes one
// change with change, and reads until the assignment changed arrives. No
// resource may come with the version it had: that would be a resend of
// unchanged content. It returns how many resources arrived in all.
func deltaResume(t *testing.T, ctx context.Context, conn *grpc.ClientConn, node *corev3.Node, names []string, had map[string]map[string]string, change func(), changed string) int {
	t.Helper()
	d := deltaOpen(t, ctx, conn, node, names, had)
	change()
	n := 0
	for {
		r, err := d.next()
		if err != nil {
			t.Fatal(err)
		}
		done := false
		for _, res := range r.GetResources() {
			n++
			if v, ok := had[r.GetTypeUrl()][res.GetName()]; ok && v == res.GetVersion() {
				t.Errorf("delta resume: %s %s resent with the version the client had (%s)", typeName(r.GetTypeUrl()), res.GetName(), v)
			}
			done = done || (r.GetTypeUrl() == resourcev3.EndpointType && res.GetName() == changed)
		}
		if removed := r.GetRemovedResources(); len(removed) > 0 && slices.ContainsFunc(removed, func(n string) bool { return slices.Contains(names, n) }) {
			t.Errorf("delta resume: %s removed %v", typeName(r.GetTypeUrl()), removed)
		}
		if done {
			return n
		}
	}
}

func typeName(typeURL string) string { return typeURL[strings.LastIndex(typeURL, ".")+1:] }

func addrOf(hostport string) string {
	h, _, _ := strings.Cut(hostport, ":")
	return h
}
