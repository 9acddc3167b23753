package loadtest

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/model"
)

// TestLoadSmokeEnvoy runs Envoy-shaped clients at a tiny size, SotW and
// delta, against Switchboard (through pipeline.Syncer with the sidecar
// stage), the LinearCache and the floor, with gRPC clients on the same
// world, and checks behaviour, not timings: every endpoint change and every
// added Service reached every sidecar, the sidecars agree at the end, and
// the report has the envoy lines and targets. It is the bench smoke test
// of the Envoy rows of make bench.
func TestLoadSmokeEnvoy(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%v", delta), func(t *testing.T) {
			var results []Result
			for _, shape := range []Shape{ShapeGRPC, ShapeEnvoy} {
				opts, stderr := smokeOptions(t, 0)
				opts.Churn = ChurnOptions{}
				opts.Delta, opts.Shape, opts.Sidecars = delta, shape, true
				opts.Namespaces, opts.Adds = 2, 3
				opts.Kinds = []Kind{KindSwitchboard, KindLinear, KindFloor}
				rs, err := Run(t.Context(), opts)
				if err != nil {
					t.Fatalf("Run %s: %v\npeer stderr:\n%s", shape, err, stderr)
				}
				if len(rs) != 3 {
					t.Fatalf("%s: got %d results, want 3", shape, len(rs))
				}
				for _, r := range rs {
					if r.Changes != opts.Changes || r.Timeouts != 0 || r.FinalMismatches != 0 {
						t.Errorf("%s %s: %d changes, %d timed out, %d final mismatches; want %d, 0, 0",
							shape, r.Kind, r.Changes, r.Timeouts, r.FinalMismatches, opts.Changes)
					}
					if shape != ShapeEnvoy {
						continue
					}
					if r.Adds != 3 || r.AddTimeouts != 0 || len(r.AddLatencies) != 3 || r.AddP99() <= 0 {
						t.Errorf("envoy %s: %d adds, %d timed out, latencies %v; want 3 converged", r.Kind, r.Adds, r.AddTimeouts, r.AddLatencies)
					}
					if r.SyncBytesPerClient <= 0 || r.BytesDownPerChange <= 0 || r.BytesDownPerAdd <= 0 {
						t.Errorf("envoy %s: sync %v B per client, %v B per change, %v B per add; want them counted",
							r.Kind, r.SyncBytesPerClient, r.BytesDownPerChange, r.BytesDownPerAdd)
					}
				}
				results = append(results, rs...)
			}
			lines := Lines(results)
			t.Log("\n" + strings.Join(lines, "\n"))
			form := regexp.MustCompile(`^(envoy vs grpc p99 N=3 R=5( delta)? ns=2: switchboard envoy [0-9.]+ ms, grpc [0-9.]+ ms, ratio [0-9.]+|` +
				`service added p99 N=3 R=5( delta)? envoy ns=2: switchboard [0-9.]+ ms, (go-control-plane-linear [0-9.]+ ms, ratio|floor [0-9.]+ ms, over-floor) [0-9.]+|` +
				`heap per sidecar N=3 R=5( delta)? envoy ns=2: switchboard -?[0-9.]+ (B|KB|MB), (go-control-plane-linear|floor) -?[0-9.]+ (B|KB|MB))$`)
			n := 0
			for _, l := range lines {
				if strings.HasPrefix(l, "envoy vs grpc") || strings.HasPrefix(l, "service added") || strings.HasPrefix(l, "heap per sidecar") {
					n++
					if !form.MatchString(l) {
						t.Errorf("envoy report line not in the grep-able form: %q", l)
					}
				}
			}
			if n != 5 {
				t.Errorf("got %d envoy report lines, want 5 (1 ratio, 2 added, 2 heap)", n)
			}
			md := Markdown(results, "test", "test")
			if !strings.Contains(md, "| service added p50 |") || !strings.Contains(md, "heap per sidecar") {
				t.Errorf("Markdown has no envoy table or targets:\n%s", md)
			}
		})
	}
}

// TestLoadSmokeRoutes: a world with mesh routes (Options.Routes) runs the
// same changes to convergence, and its full batch carries one HTTPRoute
// per routed Service, whose two backends are Services of the world in the
// route's own namespace.
func TestLoadSmokeRoutes(t *testing.T) {
	w, err := NewWorld(10, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	w.SetRoutes(7)
	b := w.Batch(nil, time.Time{})
	if len(b.Routes) != 7 {
		t.Fatalf("full batch has %d routes, want 7", len(b.Routes))
	}
	for k, r := range b.Routes {
		if len(r.Parents) != 1 || b.Services[model.ServiceKey{Namespace: k.Namespace, Name: r.Parents[0].Name}] == nil {
			t.Errorf("route %v: parent %v is not a Service of its namespace", k, r.Parents)
		}
		for _, be := range r.Rules[0].Backends {
			if be.Namespace != k.Namespace || b.Services[model.ServiceKey{Namespace: be.Namespace, Name: be.Name}] == nil {
				t.Errorf("route %v: backend %s/%s is not a Service of its namespace", k, be.Namespace, be.Name)
			}
		}
	}
	opts, stderr := smokeOptions(t, 0)
	opts.Churn = ChurnOptions{}
	opts.Delta, opts.Shape, opts.Sidecars = true, ShapeEnvoy, true
	opts.Namespaces, opts.Routes = 2, 5
	opts.Kinds = []Kind{KindSwitchboard}
	rs, err := Run(t.Context(), opts)
	if err != nil {
		t.Fatalf("Run: %v\npeer stderr:\n%s", err, stderr)
	}
	for _, r := range rs {
		if r.Changes != opts.Changes || r.Timeouts != 0 || r.FinalMismatches != 0 || r.Routes != 5 {
			t.Errorf("%s: %d changes, %d timed out, %d final mismatches, routes=%d; want %d, 0, 0, 5",
				r.Kind, r.Changes, r.Timeouts, r.FinalMismatches, r.Routes, opts.Changes)
		}
		if !strings.Contains(r.scenario(), "routes=5") {
			t.Errorf("scenario %q does not say routes=5", r.scenario())
		}
	}
}
