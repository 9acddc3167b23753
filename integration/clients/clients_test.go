package clients_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/testbackend"
)

// TestClientsFollowEDS proves each client program against a minimal
// go-control-plane ADS server: calls spread over both backends of the
// assignment, and stop reaching a backend removed from it. It also checks
// the output contract's --count mode (with --concurrency and
// --cycle-header) and that no client NACKed.
func TestClientsFollowEDS(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	r, err := clients.Prepare(ctx, clients.PrepareOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prepared all clients in %v", time.Since(start).Round(time.Millisecond))
	for _, kind := range clients.AllKinds() {
		t.Run(string(kind), func(t *testing.T) { testFollowEDS(t, r, kind) })
	}
}

func testFollowEDS(t *testing.T, r *clients.Runner, kind clients.Kind) {
	// Node needs seconds to load its protos on a busy 2-core machine.
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	a := startBackend(t, "backend-a")
	b := startBackend(t, "backend-b")
	xds := startXDS(t, "echo", a.Addr(), b.Addr())
	opts := clients.Options{Target: "xds:///echo", Bootstrap: xds.bootstrap()}

	p, err := r.Start(ctx, kind, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	// The counted run also exercises the rest of the contract: two rounds
	// of two calls 5 ms apart and a short one, each call with its own
	// cycled header.
	counted := opts
	counted.Count = 5
	counted.Concurrency = 2
	counted.StaggerMS = 5
	counted.Cycle = clients.HeaderCycle{Key: "x-key", Values: []string{"k0", "k1", "k2"}}
	pc, err := r.Start(ctx, kind, counted)
	if err != nil {
		t.Fatal(err)
	}

	first, err := p.WaitOK(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := p.Results()
	before = before[:slices.IndexFunc(before, clients.Result.OK)]
	t.Logf("%s: first ADS request %v after start, first OK call %v after start; agents %q; failed calls before it: %v",
		kind, xds.firstRequest().Sub(p.Started()).Round(time.Millisecond),
		first.T.Sub(p.Started()).Round(time.Millisecond), xds.userAgents(), before)

	if _, err := p.WaitSpread(ctx, 20, "backend-a", "backend-b"); err != nil {
		t.Fatal(err)
	}

	removed := time.Now()
	xds.setEndpoints(t, a.Addr())
	w, err := p.WaitOnlyFrom(ctx, 20, "backend-a")
	if err != nil {
		t.Fatal(err)
	}
	if last, ok := clients.LastFrom(w, "backend-b"); ok {
		t.Logf("%s: last call to the removed backend %v after the update", kind, last.T.Sub(removed).Round(time.Millisecond))
	} else {
		t.Logf("%s: no call reached the removed backend after the update", kind)
	}
	for _, r := range w {
		if !r.OK() {
			t.Errorf("%s: call failed during the removal: %s", kind, r)
		}
	}

	if err := pc.Wait(ctx); err != nil {
		t.Errorf("--count 5 run: %v", err)
	}
	counts := pc.Results()
	if n := len(counts); n != 5 {
		t.Errorf("--count 5 --concurrency 2 run printed %d results, want 5", n)
	}
	seqs := map[int]bool{}
	for _, r := range counts {
		seqs[r.Seq] = true
	}
	if len(seqs) != len(counts) || !seqs[0] || !seqs[4] || len(clients.Rounds(counts, 2)) != 2 {
		t.Errorf("--count 5 --concurrency 2 run: seq numbers are not 0..4: %v", counts)
	}
	if nacks := xds.nackList(); len(nacks) > 0 {
		t.Errorf("%s NACKed: %q", kind, nacks)
	}
}

func startBackend(t *testing.T, id string) *testbackend.Backend {
	t.Helper()
	b, err := testbackend.Start("127.0.0.1:0", id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Error(err)
		}
	})
	return b
}
