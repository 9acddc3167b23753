package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// peerEnv makes the test binary act as a peer process (see TestMain), so
// the smoke test runs the real driver against real child processes.
const peerEnv = "SWITCHBOARD_LOAD_TEST_PEER=1"

func TestMain(m *testing.M) {
	if os.Getenv("SWITCHBOARD_LOAD_TEST_PEER") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := ServePeer(ctx, os.Args[1:], os.Stdin, os.Stdout, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func smokeOptions(t *testing.T, perClient int) (Options, *bytes.Buffer) {
	t.Helper()
	var stderr bytes.Buffer
	return Options{
		Clients: 3, Services: 5, Endpoints: 4, PerClient: perClient, Changes: 6,
		// A short churn phase: 20 changes in a second, Zipf over 5 Services,
		// so that some Services change again before their last push.
		Churn:       ChurnOptions{Rates: []int{20}, Duration: time.Second, Seed: 1},
		Kinds:       Kinds,
		PeerCommand: []string{os.Args[0]},
		PeerEnv:     []string{peerEnv},
		PeerStderr:  &stderr,
		// Generous: the race detector and a busy machine slow everything.
		SyncTimeout: time.Minute, ChangeTimeout: 30 * time.Second,
	}, &stderr
}

// TestLoadSmoke runs the whole harness at a tiny size against every peer
// and checks behaviour, not timings: every change reached every affected
// client, every client ended with exactly the server's world (after the
// single changes and after churn), every churn change got a staleness, and
// the report lines have the grep-able form.
func TestLoadSmoke(t *testing.T) {
	for _, tc := range []struct {
		perClient int
		delta     bool
	}{{0, false}, {2, false}, {0, true}} {
		t.Run(fmt.Sprintf("per-client=%d/delta=%v", tc.perClient, tc.delta), func(t *testing.T) {
			opts, stderr := smokeOptions(t, tc.perClient)
			opts.Delta = tc.delta
			results, err := Run(t.Context(), opts)
			if err != nil {
				t.Fatalf("Run: %v\npeer stderr:\n%s", err, stderr)
			}
			if len(results) != len(Kinds) {
				t.Fatalf("got %d results, want %d", len(results), len(Kinds))
			}
			for _, r := range results {
				if r.Delta != tc.delta {
					t.Errorf("%s: result says delta=%v, want %v", r.Kind, r.Delta, tc.delta)
				}
				if r.Changes != opts.Changes || r.Timeouts != 0 || r.FinalMismatches != 0 {
					t.Errorf("%s: %d changes, %d timed out, %d resources differ from the world at the end; want %d, 0, 0",
						r.Kind, r.Changes, r.Timeouts, r.FinalMismatches, opts.Changes)
				}
				if r.PushesPerAffected <= 0 || r.BytesDownPerChange <= 0 || r.BytesUpPerChange <= 0 {
					t.Errorf("%s: pushes %v, bytes down %v, up %v per change; want them counted", r.Kind, r.PushesPerAffected, r.BytesDownPerChange, r.BytesUpPerChange)
				}
				if len(r.Churn) != 1 {
					t.Fatalf("%s: %d churn results, want 1", r.Kind, len(r.Churn))
				}
				c := r.Churn[0]
				if c.Skipped != "" || c.Changes != 20 || len(c.Staleness) != c.Changes || len(c.NotConverged) != 0 ||
					c.FinalMismatches != 0 || c.Unknown != 0 {
					t.Errorf("%s churn: skipped %q, %d changes, %d with a staleness, %d not converged, %d final mismatches, %d unknown assignments; want \"\", 20, 20, 0, 0, 0",
						r.Kind, c.Skipped, c.Changes, len(c.Staleness), len(c.NotConverged), c.FinalMismatches, c.Unknown)
				}
				if c.PushesPerClientPerSec <= 0 || c.BytesDownPerSec <= 0 || c.BytesUpPerSec <= 0 || c.CPUCores < 0 {
					t.Errorf("%s churn: pushes %v per client per s, bytes down %v, up %v per s, %v cores; want them counted",
						r.Kind, c.PushesPerClientPerSec, c.BytesDownPerSec, c.BytesUpPerSec, c.CPUCores)
				}
			}
			if err := CheckFinalState(results); err != nil {
				t.Errorf("CheckFinalState: %v", err)
			}
			lines := Lines(results)
			t.Log("\n" + strings.Join(lines, "\n"))
			// 3 metrics × 3 peers, then churn: 3 metrics × 3 peers and
			// the final state.
			if len(lines) != 19 {
				t.Fatalf("got %d report lines, want 19:\n%s", len(lines), strings.Join(lines, "\n"))
			}
			peer := `((go-control-plane-(linear|snapshot)) [0-9.]+ (ms|B|KB|MB|cores|per client per s), ratio ([0-9.]+|inf)|floor [0-9.]+ (ms|B|KB|MB|cores|per client per s), over-floor ([0-9.]+|inf))`
			form := regexp.MustCompile(`^((convergence p99|cpu per change|bytes per change) N=3 R=5( each=2)?( delta)?: switchboard [0-9.]+ (ms|B|KB|MB), ` + peer + `|` +
				`churn 20/s N=3 R=5( each=2)?( delta)?: switchboard p99 staleness [0-9.]+ ms, ` + peer + `|` +
				`churn (cpu|pushes) 20/s N=3 R=5( each=2)?( delta)?: switchboard [0-9.]+ (cores|per client per s), ` + peer + `|` +
				`final state N=3 R=5( each=2)?( delta)? rate=20/s: switchboard 0 mismatches, go-control-plane-linear 0 mismatches, go-control-plane-snapshot 0 mismatches, floor 0 mismatches)$`)
			for _, l := range lines {
				if !form.MatchString(l) {
					t.Errorf("report line not in the grep-able form: %q", l)
				}
				if strings.Contains(l, " delta") != tc.delta {
					t.Errorf("report line does not say its protocol (delta=%v): %q", tc.delta, l)
				}
			}
			md := Markdown(results, "test", "test")
			svg := ChartSVG(results, opts.Services)
			if !strings.Contains(md, "| switchboard |") || !strings.Contains(md, "| switchboard | 20/s | 20 |") || !strings.HasPrefix(svg, "<svg") {
				t.Errorf("report or chart is missing its content")
			}
		})
	}
}

func TestClusterName(t *testing.T) {
	w := newWorld(t, 2, 3)
	res, err := w.Translate(1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := clusterName(res.Assignments[0].Wire)
	if err != nil || got != ResourceName(1) {
		t.Fatalf("clusterName = %q, %v; want %q", got, err, ResourceName(1))
	}
}

// TestChangeIsNewContent checks that every change gives the changed
// Service content it never had, so a convergence cannot be confused with an
// older version.
func TestChangeIsNewContent(t *testing.T) {
	w := newWorld(t, 3, 4)
	h := newHasher()
	seen := map[uint64]bool{}
	e, err := w.expected(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range e.assignments {
		seen[d] = true
	}
	for k := 1; k <= 50; k++ {
		i, err := w.Change(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.digest(h, e, i); err != nil {
			t.Fatal(err)
		}
		if seen[e.assignments[i]] {
			t.Fatalf("change %d gave Service %d content it had before", k, i)
		}
		seen[e.assignments[i]] = true
	}
}

// TestLoadChurnBehind drives a server that cannot converge within the
// drain (1 ns): it takes 20 ms more per change (--apply-delay), four times
// what the 500 ms window at 200/s allows, so it is behind whatever the
// machine's speed (a fast server alone converged every change before the
// drain ended, and the test failed on a fresh clone). The phase must
// report its changes as not converged with a lower-bound staleness, skip
// the higher rate, and end the run (the peer may still have changes to
// apply and answers to give when it is stopped).
func TestLoadChurnBehind(t *testing.T) {
	opts, stderr := smokeOptions(t, 0)
	opts.PeerCommand = append(opts.PeerCommand, "--apply-delay", "20ms")
	opts.Kinds = []Kind{KindSwitchboard}
	opts.Changes = 0
	opts.Churn = ChurnOptions{Rates: []int{200, 400}, Duration: 500 * time.Millisecond, Seed: 1, Drain: time.Nanosecond}
	results, err := Run(t.Context(), opts)
	if err != nil {
		t.Fatalf("Run: %v\npeer stderr:\n%s", err, stderr)
	}
	if len(results) != 1 || len(results[0].Churn) != 2 {
		t.Fatalf("got %d results, want 1 with 2 churn phases", len(results))
	}
	first, second := results[0].Churn[0], results[0].Churn[1]
	if !first.Behind() || len(first.Staleness)+len(first.NotConverged) != first.Changes {
		t.Fatalf("first phase: %d changes, %d converged, %d not; want some not converged and every change counted",
			first.Changes, len(first.Staleness), len(first.NotConverged))
	}
	if _, low := first.StalenessQuantile(1); !low {
		t.Errorf("max staleness of a phase with open changes is not marked as a lower bound")
	}
	if second.Skipped != "behind at 200/s" {
		t.Errorf("second phase skipped %q, want \"behind at 200/s\"", second.Skipped)
	}
	if l := strings.Join(Lines(results), "\n"); !strings.Contains(l, "not converged)") {
		t.Errorf("report lines do not say that changes did not converge:\n%s", l)
	}
}

func newWorld(t *testing.T, services, endpoints int) *World {
	t.Helper()
	w, err := NewWorld(services, endpoints, 1)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
