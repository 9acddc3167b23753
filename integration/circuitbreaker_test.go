package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
)

// breakerMessage is (the start of) the status message kind fails a call
// with when a circuit breaker of maxRequests on the Service "capped" drops
// it, as measured.
func breakerMessage(kind clients.Kind, maxRequests int) string {
	switch kind {
	case clients.GoGRPC:
		return fmt.Sprintf("max requests %d exceeded on service capped.", maxRequests) // then the rest of the cluster name
	case clients.NodeGRPCJS:
		return "Call dropped by load balancing policy."
	default:
		return "circuit breaker drop"
	}
}

// TestCircuitBreaker: switchboard.io/max-requests=2 is the cluster's
// circuit breaker (gRFC A32). Three backends hold every call 2 s; a client
// makes rounds of 5 concurrent calls. Each client runs three programs at
// once, each with its own call counter:
//
//   - staggered, on the capped Service: the 5 calls start 20 ms apart, all
//     in flight together. In every client 2 succeed and 3 fail with
//     UNAVAILABLE at once, long before the 2 s answer.
//   - burst, on the capped Service: the 5 calls start in one go. C-core
//     counts a call when it is picked, and picks one at a time: 2 succeed,
//     3 are dropped. grpc-go also counts at the pick but picks in parallel
//     with a check-then-add counter, which gRFC A32 allows to overshoot
//     under races: at least one call is dropped and at least 2 succeed
//     (2 in every round measured). grpc-js-xds 1.14.1 counts a call only
//     once its stream is started, after an asynchronous step (call
//     credentials) that follows the pick, so calls started in one
//     event-loop turn all see the old count: all 5 succeed.
//   - open, without the annotation: all 5 succeed (the default is 1024).
func TestCircuitBreaker(t *testing.T) {
	const (
		delay       = 2 * time.Second
		maxRequests = 2
		concurrent  = 5
		rounds      = 2 // rounds asserted, after the first with a success
	)
	w, sb, runner := standalone(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		s := newScenario(t, w, sb, runner, kind, 3*time.Minute)
		ns := w.Namespace(t)
		b := backends(t, "c", 3)
		for _, x := range b {
			x.SetDelay(delay)
		}
		eps := []harness.Endpoint{ep(b[0], harness.Ready, "z1"), ep(b[1], harness.Ready, "z1"), ep(b[2], harness.Ready, "z1")}
		w.ApplyService(t, policyService(ns, "capped", "", map[string]string{"switchboard.io/max-requests": fmt.Sprint(maxRequests)}))
		w.ApplySlice(t, newSlice(ns, "capped", "capped-1", port, eps...))
		w.ApplyService(t, policyService(ns, "open", "", nil))
		w.ApplySlice(t, newSlice(ns, "open", "open-1", port, eps...))

		dropped := breakerMessage(kind, maxRequests)
		limited := func(round []clients.Result) error { return capped(round, maxRequests, maxRequests, dropped, delay) }
		unlimited := func(round []clients.Result) error { return allOK(round) }
		burst := limited
		switch kind {
		case clients.GoGRPC:
			burst = func(round []clients.Result) error { return capped(round, maxRequests, concurrent-1, dropped, delay) }
		case clients.NodeGRPCJS:
			burst = unlimited
		}
		runs := []struct {
			name, svc string
			staggerMS int
			check     func([]clients.Result) error
		}{
			{"staggered", "capped", 20, limited},
			{"burst", "capped", 0, burst},
			{"open", "open", 0, unlimited},
		}
		procs := make([]*clients.Process, len(runs))
		for i, r := range runs {
			procs[i] = s.start(clients.Options{
				Target:      "xds:///" + r.svc + "." + ns + ":50051",
				Bootstrap:   sb.bootstrap(t.Name() + "-" + r.name),
				Concurrency: concurrent,
				StaggerMS:   r.staggerMS,
				IntervalMS:  50,
				TimeoutMS:   int(3 * delay / time.Millisecond),
			})
		}
		for i, r := range runs {
			for _, round := range waitRounds(t, s, procs[i], concurrent, rounds) {
				if err := r.check(round); err != nil {
					t.Errorf("%s %s round %d: %v", kind, r.name, round[0].Seq/concurrent, err)
				}
				ok := slices.DeleteFunc(slices.Clone(round), func(r clients.Result) bool { return !r.OK() })
				t.Logf("%s %s round %d: %d of %d OK %s", kind, r.name, round[0].Seq/concurrent, len(ok), len(round), messages(round))
			}
		}
	})
}

// capped checks one round against a circuit breaker: from minOK to maxOK
// calls succeed and the others fail with UNAVAILABLE and a message
// containing dropped, every one of them before the first success minus half
// of delay (they never waited for a backend).
func capped(round []clients.Result, minOK, maxOK int, dropped string, delay time.Duration) error {
	var ok, failed []clients.Result
	for _, r := range round {
		if r.OK() {
			ok = append(ok, r)
		} else {
			failed = append(failed, r)
		}
	}
	if len(ok) < minOK || len(ok) > maxOK {
		return fmt.Errorf("%d calls succeeded, want %d to %d: %v", len(ok), minOK, maxOK, round)
	}
	firstOK := slices.MinFunc(ok, func(a, b clients.Result) int { return a.T.Compare(b.T) }).T
	for _, r := range failed {
		if r.Code != codes.Unavailable || !strings.Contains(r.Err, dropped) {
			return fmt.Errorf("call failed with %s %q, want UNAVAILABLE %q: %v", r.Code, r.Err, dropped, round)
		}
		if r.T.After(firstOK.Add(-delay / 2)) {
			return fmt.Errorf("dropped call ended %v before the first success, want at least %v: %v", firstOK.Sub(r.T), delay/2, round)
		}
	}
	return nil
}

// allOK checks that every call of round succeeded.
func allOK(round []clients.Result) error {
	if i := slices.IndexFunc(round, func(r clients.Result) bool { return !r.OK() }); i >= 0 {
		return fmt.Errorf("call failed: %v", round)
	}
	return nil
}

// waitRounds waits until the client has finished n complete rounds of k
// calls after the first round in which a call succeeded (the client is
// connected), and returns those n rounds.
func waitRounds(t *testing.T, s *scenario, p *clients.Process, k, n int) [][]clients.Result {
	t.Helper()
	var got [][]clients.Result
	_, err := p.WaitFor(s.ctx, 0, func(w []clients.Result) bool {
		all := clients.Rounds(w, k)
		warm := slices.IndexFunc(all, func(round []clients.Result) bool { return slices.ContainsFunc(round, clients.Result.OK) })
		if warm < 0 || len(all)-warm-1 < n {
			return false
		}
		got = all[warm+1 : warm+1+n]
		return true
	})
	if err != nil {
		t.Fatalf("%s: waiting for %d rounds of %d calls after the first success: %v", s.kind, n, k, err)
	}
	return got
}

// messages lists the distinct error messages of rs, for logs.
func messages(rs []clients.Result) string {
	var msgs []string
	for _, r := range rs {
		if r.Err != "" && !slices.Contains(msgs, r.Err) {
			msgs = append(msgs, r.Err)
		}
	}
	if len(msgs) == 0 {
		return ""
	}
	return fmt.Sprintf("%q", msgs)
}
