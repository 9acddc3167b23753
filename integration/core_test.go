package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/integration/testbackend"
)

// subnets hands each test its own 10.244.N.0/24 for backends.
var subnets atomic.Int32

const grpcPort = 50051

var port = []harness.Port{{Name: "grpc", Port: grpcPort}}

// backends starts n test backends on a fresh subnet; backend i (from 1)
// listens on 10.244.N.i:50051 and calls itself "<prefix>i".
func backends(t *testing.T, prefix string, n int) []*testbackend.Backend {
	t.Helper()
	subnet := subnets.Add(1)
	var out []*testbackend.Backend
	for i := 1; i <= n; i++ {
		b, err := testbackend.Start(fmt.Sprintf("10.244.%d.%d:%d", subnet, i, grpcPort), fmt.Sprintf("%s%d", prefix, i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Stop() })
		out = append(out, b)
	}
	return out
}

func ep(b *testbackend.Backend, state harness.EndpointState, zone string) harness.Endpoint {
	host, _, _ := strings.Cut(b.Addr(), ":")
	return harness.Endpoint{Address: host, State: state, Zone: zone, Pod: b.ID()}
}

func ids(bs ...*testbackend.Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.ID()
	}
	return out
}

// scenario drives one client kind through the core behaviours against one
// world and one Switchboard.
type scenario struct {
	t      *testing.T
	w      world
	sb     *switchboard
	runner *clients.Runner
	kind   clients.Kind
	ctx    context.Context
}

// newScenario is a scenario whose context ends after timeout or with the
// test.
func newScenario(t *testing.T, w world, sb *switchboard, runner *clients.Runner, kind clients.Kind, timeout time.Duration) *scenario {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return &scenario{t: t, w: w, sb: sb, runner: runner, kind: kind, ctx: ctx}
}

// client starts a client of the scenario's kind dialing target.
func (s *scenario) client(target string) *clients.Process {
	s.t.Helper()
	return s.start(clients.Options{Target: target})
}

// start starts a client of the scenario's kind with o, stopped when the
// test ends. When o.Bootstrap is nil it is made by `switchboard bootstrap
// grpc` for node id t.Name() with bootstrapArgs (e.g. "--zone", "z").
func (s *scenario) start(o clients.Options, bootstrapArgs ...string) *clients.Process {
	s.t.Helper()
	if o.Bootstrap == nil {
		o.Bootstrap = s.sb.bootstrap(s.t.Name(), bootstrapArgs...)
	}
	p, err := s.runner.Start(s.ctx, s.kind, o)
	if err != nil {
		s.t.Fatalf("%s client: %v", s.kind, err)
	}
	s.t.Cleanup(func() { _ = p.Stop() })
	return p
}

func (s *scenario) check(what string, _ []clients.Result, err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatalf("%s (%s): %v", what, s.kind, err)
	}
}

// reportGone logs how long after t0 the last call reached a backend that
// left; reportNew how long until the first call reached one that came.
func (s *scenario) reportGone(what string, t0 time.Time, rs []clients.Result, gone string) {
	last, ok := clients.LastFrom(rs, gone)
	if !ok {
		s.t.Logf("convergence %s %s: no call to %s after the change", s.kind, what, gone)
		return
	}
	s.t.Logf("convergence %s %s: last call to %s %v after the change", s.kind, what, gone, last.T.Sub(t0).Round(time.Millisecond))
}

func (s *scenario) reportNew(what string, t0 time.Time, r clients.Result) {
	s.t.Logf("convergence %s %s: first call to %s %v after the change", s.kind, what, r.Backend, r.T.Sub(t0).Round(time.Millisecond))
}

// runCore is the shared end-to-end story: spread, not-ready, removed,
// added, second slice, every name form, a second namespace with the same
// Service name, and a deleted Service.
func runCore(t *testing.T, w world, sb *switchboard, runner *clients.Runner, kind clients.Kind) {
	s := newScenario(t, w, sb, runner, kind, 4*time.Minute)
	ctx := s.ctx
	ns := w.Namespace(t)
	b := backends(t, "b", 4)
	w.ApplyService(t, newService(ns, "greeter", port...))
	w.ApplySlice(t, newSlice(ns, "greeter", "greeter-1", port, ep(b[0], harness.Ready, "z1"), ep(b[1], harness.Ready, "z1"), ep(b[2], harness.Ready, "z2")))

	canonical := "xds:///greeter." + ns + ".svc.cluster.local:50051"
	p := s.client(canonical)
	first, err := p.WaitOK(ctx)
	if err != nil {
		t.Fatalf("first call (%s): %v", kind, err)
	}
	t.Logf("startup %s: first successful call %v after the client started", kind, first.T.Sub(p.Started()).Round(time.Millisecond))
	rs, err := p.WaitSpread(ctx, 60, ids(b[0], b[1], b[2])...)
	s.check("calls spread over all ready endpoints", rs, err)

	// An endpoint marked not ready stops receiving calls.
	t0 := time.Now()
	w.ApplySlice(t, newSlice(ns, "greeter", "greeter-1", port, ep(b[0], harness.Ready, "z1"), ep(b[1], harness.Ready, "z1"), ep(b[2], harness.NotReady, "z2")))
	rs, err = p.WaitOnlyFrom(ctx, 40, ids(b[0], b[1])...)
	s.check("not-ready endpoint leaves", rs, err)
	s.reportGone("not-ready", t0, rs, b[2].ID())

	// An endpoint removed from its slice stops receiving calls.
	t0 = time.Now()
	w.ApplySlice(t, newSlice(ns, "greeter", "greeter-1", port, ep(b[0], harness.Ready, "z1"), ep(b[2], harness.NotReady, "z2")))
	rs, err = p.WaitOnlyFrom(ctx, 40, b[0].ID())
	s.check("removed endpoint leaves", rs, err)
	s.reportGone("removed", t0, rs, b[1].ID())

	// An added (and a ready-again) endpoint starts receiving calls.
	t0 = time.Now()
	w.ApplySlice(t, newSlice(ns, "greeter", "greeter-1", port, ep(b[0], harness.Ready, "z1"), ep(b[1], harness.Ready, "z1"), ep(b[2], harness.Ready, "z2")))
	r, err := p.WaitBackend(ctx, b[1].ID())
	s.check("added endpoint starts", nil, err)
	s.reportNew("added", t0, r)
	rs, err = p.WaitSpread(ctx, 60, ids(b[0], b[1], b[2])...)
	s.check("spread after endpoints came back", rs, err)

	// A second slice for the same Service adds its endpoints.
	t0 = time.Now()
	w.ApplySlice(t, newSlice(ns, "greeter", "greeter-2", port, ep(b[3], harness.Ready, "z2")))
	r, err = p.WaitBackend(ctx, b[3].ID())
	s.check("second slice", nil, err)
	s.reportNew("second-slice", t0, r)
	rs, err = p.WaitSpread(ctx, 80, ids(b...)...)
	s.check("spread over both slices", rs, err)

	// Every name form resolves, and a second namespace with a Service of
	// the same name is independent. The clients start together: a
	// grpc-js-xds client takes seconds to load.
	ns2 := w.Namespace(t)
	other := backends(t, "other", 1)
	w.ApplyService(t, newService(ns2, "greeter", port...))
	w.ApplySlice(t, newSlice(ns2, "greeter", "greeter-1", port, ep(other[0], harness.Ready, "z1")))
	forms := map[string][]string{
		"xds:///greeter." + ns + ":50051":                    ids(b...),
		"xds:///greeter." + ns + ".svc:50051":                ids(b...),
		"xds:///greeter." + ns:                               ids(b...),
		"xds:///greeter." + ns + ".svc":                      ids(b...),
		"xds:///greeter." + ns + ".svc.cluster.local":        ids(b...),
		"xds:///greeter." + ns2 + ".svc.cluster.local:50051": ids(other...),
		"xds:///greeter." + ns2 + ":50051":                   ids(other...),
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(forms))
	for target, want := range forms {
		q := s.client(target)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := q.WaitOK(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", target, err)
				return
			}
			if _, err := q.WaitSpread(ctx, 10*len(want), want...); err != nil {
				errs <- fmt.Errorf("%s: %w", target, err)
			}
			_ = q.Stop()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("name form (%s): %v", kind, err)
	}
	rs, err = p.WaitSpread(ctx, 40, ids(b...)...)
	s.check("first namespace unaffected by the second", rs, err)

	// Deleted EndpointSlices: their endpoints leave; with none left the
	// Service keeps its cluster with an empty assignment, so calls fail
	// fast with UNAVAILABLE, and recover when a slice comes back.
	t0 = time.Now()
	w.DeleteSlice(t, ns, "greeter-2")
	rs, err = p.WaitOnlyFrom(ctx, 40, ids(b[0], b[1], b[2])...)
	s.check("deleted slice's endpoints leave", rs, err)
	s.reportGone("slice-deleted", t0, rs, b[3].ID())
	w.DeleteSlice(t, ns, "greeter-1")
	rs, err = p.WaitFailing(ctx, 5, codes.Unavailable, "")
	s.check("no slices left: calls fail with UNAVAILABLE", rs, err)
	t.Logf("no endpoints %s: %q", kind, rs[len(rs)-1].Err)
	w.ApplySlice(t, newSlice(ns, "greeter", "greeter-1", port, ep(b[0], harness.Ready, "z1")))
	rs, err = p.WaitOnlyFrom(ctx, 20, b[0].ID())
	s.check("a slice came back", rs, err)

	// A deleted Service fails its calls with UNAVAILABLE.
	t0 = time.Now()
	w.DeleteService(t, ns, "greeter")
	rs, err = p.WaitFailing(ctx, 10, codes.Unavailable, "")
	s.check("deleted Service fails calls", rs, err)
	t.Logf("deleted %s: calls fail %v after the delete with %q", kind, rs[len(rs)-1].T.Sub(t0).Round(time.Millisecond), rs[len(rs)-1].Err)
}

// restartStory stops Switchboard while a client runs; the client keeps
// calling with what it has, and after the restart it follows new changes.
func restartStory(t *testing.T, w world, sb *switchboard, runner *clients.Runner, kind clients.Kind) {
	s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
	ctx := s.ctx
	ns := w.Namespace(t)
	b := backends(t, "r", 3)
	w.ApplyService(t, newService(ns, "greeter", port...))
	w.ApplySlice(t, newSlice(ns, "greeter", "greeter-1", port, ep(b[0], harness.Ready, "z1"), ep(b[1], harness.Ready, "z1")))
	p := s.client("xds:///greeter." + ns + ":50051")
	rs, err := p.WaitSpread(ctx, 40, ids(b[0], b[1])...)
	s.check("spread before restart", rs, err)

	sb.stop()
	rs, err = p.WaitSpread(ctx, 40, ids(b[0], b[1])...)
	s.check("calls keep working while Switchboard is down", rs, err)
	w.ApplySlice(t, newSlice(ns, "greeter", "greeter-1", port, ep(b[0], harness.Ready, "z1"), ep(b[2], harness.Ready, "z1")))
	t0 := time.Now()
	sb.start()
	r, err := p.WaitBackend(ctx, b[2].ID())
	s.check("reconverged after restart", nil, err)
	t.Logf("restart %s: first call to the endpoint added while Switchboard was down %v after it was started again", kind, r.T.Sub(t0).Round(time.Millisecond))
	rs, err = p.WaitOnlyFrom(ctx, 40, ids(b[0], b[2])...)
	s.check("only current endpoints after restart", rs, err)
}
