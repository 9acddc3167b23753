//go:build soak

package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/internal/poll"
)

// Soak bounds: after the churn, with the same clients connected, the
// binary's goroutines may exceed their post-warm-up count by soakGoroutines
// (streams mid-reconnect come and go), and its heap in use (the lowest of
// 20 samples over 10 s, which approximates the live heap after a GC) may
// be at most soakHeapFactor times the same figure after warm-up.
const (
	soakGoroutines = 20
	soakHeapFactor = 1.25
)

// TestSoak churns the binary (standalone mode) for SOAK_DURATION (default
// 10m; `make soak`): 10 endpoint changes a second over 20 Services, 50 raw
// SotW clients that drop their stream after a few responses and reopen it
// (every fifth time on a new TCP connection), and a grpc-go xDS client
// calling a stable Service throughout. At the end every raw client must
// hold the last content of its Service, the grpc-go client must have had no
// failed call, and goroutines and heap must be back within the bounds
// above of their values after warm-up. Built only with -tags soak.
func TestSoak(t *testing.T) {
	duration := 10 * time.Minute
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SOAK_DURATION: %v", err)
		}
		duration = d
	}
	warmup := min(duration/5, time.Minute)
	const nServices, nClients = 20, 50

	w, sb, runner := standalone(t)
	ns := w.Namespace(t)
	b := backends(t, "soak", 3)
	w.ApplyService(t, newService(ns, "stable", port...))
	w.ApplySlice(t, newSlice(ns, "stable", "stable-1", port, ep(b[0], harness.Ready, "z1"), ep(b[1], harness.Ready, "z1"), ep(b[2], harness.Ready, "z1")))

	var mu sync.Mutex
	want := map[string][]string{} // guarded by mu
	names := make([]string, nServices)
	change := func(i, gen int) {
		var eps []harness.Endpoint
		var addrs []string
		for k := range 5 {
			a := fmt.Sprintf("10.244.%d.%d", 210+i%40, 1+(gen*5+k)%250)
			eps = append(eps, harness.Endpoint{Address: a, State: harness.Ready, Zone: "z1", Pod: "p-" + a})
			addrs = append(addrs, a)
		}
		slices.Sort(addrs)
		mu.Lock()
		want[names[i]] = addrs
		mu.Unlock()
		w.ApplySlice(t, newSlice(ns, fmt.Sprintf("c%d", i), fmt.Sprintf("c%d-1", i), port, eps...))
	}
	for i := range nServices {
		names[i] = fmt.Sprintf("c%d.%s.svc.cluster.local:50051", i, ns)
		w.ApplyService(t, newService(ns, fmt.Sprintf("c%d", i), port...))
		change(i, 0)
	}

	s := newScenario(t, w, sb, runner, clients.GoGRPC, duration+5*time.Minute)
	ctx := s.ctx
	p := s.client("xds:///stable." + ns + ":50051")
	rs, err := p.WaitSpread(ctx, 30, ids(b...)...)
	s.check("stable spread", rs, err)
	from := p.Len()

	// The raw clients: each keeps its latest addresses for its Service.
	cctx, stopClients := context.WithCancel(ctx)
	defer stopClients()
	var churning atomic.Bool
	churning.Store(true)
	latest := make([]atomic.Pointer[[]string], nClients)
	var sessions atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopClients()
	for c := range nClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := names[c%nServices]
			var conn *grpc.ClientConn
			defer func() {
				if conn != nil {
					_ = conn.Close()
				}
			}()
			for n := 0; cctx.Err() == nil; n++ {
				if n%5 == 0 {
					if conn != nil {
						_ = conn.Close()
					}
					var err error
					if conn, err = grpc.NewClient(sb.xds, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
						t.Error(err)
						return
					}
				}
				sessions.Add(1)
				responses, limit := 0, 4+(c+n)%8
				_ = adsSession(cctx, conn, fmt.Sprintf("soak-%d", c), []string{name}, func(st adsState) bool {
					if eps, ok := st.Endpoints[name]; ok {
						got := slices.Sorted(slices.Values(eps))
						latest[c].Store(&got)
					}
					responses++
					return !churning.Load() || responses < limit
				})
			}
		}()
	}

	sample := func(what string) (goroutines, heap float64) {
		t.Helper()
		heap = -1
		for range 20 {
			// Also called off the test goroutine: report, do not FailNow.
			g, err1 := scrape(sb, "go_goroutines", "")
			h, err2 := scrape(sb, "go_memstats_heap_inuse_bytes", "")
			if err := errors.Join(err1, err2); err != nil {
				t.Errorf("soak %s: %v", what, err)
				return goroutines, heap
			}
			goroutines = max(goroutines, g)
			if heap < 0 || h < heap {
				heap = h
			}
			time.Sleep(500 * time.Millisecond) // sampling interval, not synchronisation
		}
		t.Logf("soak %s: go_goroutines max %v, go_memstats_heap_inuse_bytes min %.1f MiB", what, goroutines, heap/(1<<20))
		return goroutines, heap
	}

	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	changes := 0
	var warmG, warmH float64
	warmDone := make(chan [2]float64, 1)
	warmStarted := false
	for time.Since(start) < duration {
		select {
		case <-tick.C:
			changes++
			change(changes%nServices, changes)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case v := <-warmDone:
			warmG, warmH = v[0], v[1]
		}
		if !warmStarted && time.Since(start) >= warmup {
			warmStarted = true
			go func() {
				g, h := sample("after warm-up")
				warmDone <- [2]float64{g, h}
			}()
		}
	}
	if warmH == 0 {
		v := <-warmDone
		warmG, warmH = v[0], v[1]
	}
	churning.Store(false)

	// Every raw client converges on the last content of its Service.
	// The clients' state changes without an event here.
	deadline := time.Now().Add(time.Minute)
	for c := range nClients {
		mu.Lock()
		exp := want[names[c%nServices]]
		mu.Unlock()
		if !poll.Wait(time.Until(deadline), func() bool {
			got := latest[c].Load()
			return got != nil && slices.Equal(*got, exp)
		}) {
			t.Fatalf("client %d did not converge on %s = %v", c, names[c%nServices], exp)
		}
	}
	endG, endH := sample("at the end")
	window := p.Results()[from:]
	if bad := failedOrOther(window, ids(b...)...); len(bad) > 0 {
		t.Errorf("grpc-go client: %d of %d calls failed or went elsewhere; first %v", len(bad), len(window), bad[0])
	}
	t.Logf("soak: %v, %d endpoint changes, %d raw SotW sessions by %d clients, %d grpc-go calls all OK; goroutines %v -> %v (bound +%d), heap in use %.1f -> %.1f MiB (bound x%.2f)",
		duration, changes, sessions.Load(), nClients, len(window), warmG, endG, soakGoroutines, warmH/(1<<20), endH/(1<<20), soakHeapFactor)
	if endG > warmG+soakGoroutines {
		t.Errorf("goroutines %v at the end, more than %v after warm-up + %d", endG, warmG, soakGoroutines)
	}
	if endH > warmH*soakHeapFactor {
		t.Errorf("heap in use %.1f MiB at the end, more than %.2f x %.1f MiB after warm-up", endH/(1<<20), soakHeapFactor, warmH/(1<<20))
	}
}
