package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestFaultThousandClientsReconnect connects 1000 raw SotW ADS clients (one
// TCP connection each, as 1000 gRPC clients would have) to the binary on a
// folder of 50 Services, then SIGKILLs and restarts it so all 1000 lose
// their stream and reconnect at once. Every client must get back the whole
// world: every cluster, and its Service's assignment with every endpoint.
// The times are logged; they include grpc-go's reconnect backoff (1 s base,
// jittered) for the connections that failed while the port was closed.
func TestFaultThousandClientsReconnect(t *testing.T) {
	t.Parallel()
	const nClients, nServices = 1000, 50
	w, sb, _ := standalone(t)
	ns := w.Namespace(t)
	var clusters []string
	want := map[string][]string{}
	for i := range nServices {
		svc := fmt.Sprintf("s%d", i)
		var eps []harness.Endpoint
		var addrs []string
		for k := 1; k <= 3; k++ {
			a := fmt.Sprintf("10.244.200.%d", 3*i+k)
			eps = append(eps, harness.Endpoint{Address: a, State: harness.Ready, Zone: "z1", Pod: "p-" + a})
			addrs = append(addrs, a)
		}
		w.ApplyService(t, newService(ns, svc, port...))
		w.ApplySlice(t, newSlice(ns, svc, svc+"-1", port, eps...))
		name := svc + "." + ns + ".svc.cluster.local:50051"
		clusters = append(clusters, name)
		want[name] = addrs
	}
	slices.Sort(clusters)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	type converged struct{ client, gen int }
	done := make(chan converged, 2*nClients)
	var gen atomic.Int32
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range nClients {
		conn, err := grpc.NewClient(sb.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		name := clusters[i%nServices]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				g := int(gen.Load())
				reported := false
				_ = adsSession(ctx, conn, fmt.Sprintf("reconnect-%d", i), []string{name}, func(st adsState) bool {
					if !reported && slices.Equal(st.Clusters, clusters) && slices.Equal(st.Endpoints[name], want[name]) {
						reported = true
						done <- converged{i, g}
					}
					return true
				})
			}
		}()
	}
	// waitAll waits until every client converged on a stream of generation
	// g, and returns when the last did.
	waitAll := func(what string, g int) time.Time {
		t.Helper()
		seen := map[int]bool{}
		for len(seen) < nClients {
			select {
			case c := <-done:
				if c.gen == g {
					seen[c.client] = true
				}
			case <-ctx.Done():
				t.Fatalf("%s: %d of %d clients converged", what, len(seen), nClients)
			}
		}
		return time.Now()
	}
	start := time.Now()
	all := waitAll("first connect", 0)
	t.Logf("faults reconnect: %d clients connected at once all converged in %v", nClients, all.Sub(start).Round(time.Millisecond))

	gen.Store(1)
	killed := time.Now()
	sb.kill()
	launched := time.Now()
	sb.launch()
	sb.waitReady()
	ready := time.Now()
	all = waitAll("reconnect", 1)
	t.Logf("faults reconnect: after SIGKILL and restart, all %d clients converged %v after the kill, %v after the restart was launched (ready after %v)",
		nClients, all.Sub(killed).Round(time.Millisecond), all.Sub(launched).Round(time.Millisecond), ready.Sub(launched).Round(time.Millisecond))
}
