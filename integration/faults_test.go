package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"
	"k8s.io/client-go/kubernetes"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/internal/poll"
)

// apiServerOutage is how long TestFaultAPIServerDown keeps the API server
// down: the 30 s of the issue. The test runs in parallel with the others
// (it has a control plane of its own), so this costs little wall time.
const apiServerOutage = 30 * time.Second

// TestFaultAPIServerDown kills the API server Switchboard watches for 30 s
// while grpc-go xDS clients keep calling. Meanwhile a second API server on
// the same etcd (as in an HA cluster, where the writes go on) deletes an
// EndpointSlice and a Service and adds a slice. While the first is down the
// clients keep routing on their last config, and Switchboard says it is not
// synced (switchboard_watcher_synced 0, watch errors counted). When it comes
// back, Switchboard relists and the clients converge on what was written
// meanwhile: no delete is lost.
func TestFaultAPIServerDown(t *testing.T) {
	t.Parallel()
	bin, runner := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A control plane of its own: stopping the package's shared API server
	// would break the tests running in parallel.
	cp, err := harness.Start(ctx, harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Error(err)
		}
	})
	admin, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := t.TempDir() + "/kubeconfig"
	if err := cp.WriteKubeconfig(kubeconfig, harness.SwitchboardUser); err != nil {
		t.Fatal(err)
	}
	w := apiWorld{admin}
	ns := w.Namespace(t)
	b := backends(t, "o", 4)
	w.ApplyService(t, newService(ns, "keep", port...))
	w.ApplySlice(t, newSlice(ns, "keep", "keep-1", port, ep(b[0], harness.Ready, "z1")))
	w.ApplySlice(t, newSlice(ns, "keep", "keep-2", port, ep(b[1], harness.Ready, "z1")))
	w.ApplyService(t, newService(ns, "gone", port...))
	w.ApplySlice(t, newSlice(ns, "gone", "gone-1", port, ep(b[2], harness.Ready, "z1")))

	sb := startSwitchboard(t, bin, "--kubeconfig", kubeconfig)
	s := newScenario(t, w, sb, runner, clients.GoGRPC, 4*time.Minute)
	keep := s.client("xds:///keep." + ns + ":50051")
	gone := s.client("xds:///gone." + ns + ":50051")
	rs, err := keep.WaitSpread(ctx, 40, ids(b[0], b[1])...)
	s.check("keep spread before the outage", rs, err)
	rs, err = gone.WaitOnlyFrom(ctx, 10, b[2].ID())
	s.check("gone before the outage", rs, err)
	if v := metricValue(t, sb, "switchboard_watcher_synced", ""); v != 1 {
		t.Fatalf("switchboard_watcher_synced = %v before the outage, want 1", v)
	}

	// The second API server starts before the outage: its start is not
	// what is measured.
	second, err := cp.SecondAPIServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Stop() })
	admin2, err := kubernetes.NewForConfig(second.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	w2 := apiWorld{admin2}

	keepFrom, goneFrom := keep.Len(), gone.Len()
	stopped := time.Now()
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	notSynced := waitSeries(t, sb, "switchboard_watcher_synced", "", 30*time.Second, func(v float64) bool { return v == 0 })
	t.Logf("faults api-server-down: switchboard_watcher_synced 0 %v after the API server was killed", notSynced.Sub(stopped).Round(time.Millisecond))

	// Written through the second API server while the first is down.
	w2.DeleteSlice(t, ns, "keep-2")
	w2.ApplySlice(t, newSlice(ns, "keep", "keep-3", port, ep(b[3], harness.Ready, "z1")))
	w2.DeleteService(t, ns, "gone")

	// The clients keep calling for the whole outage, on their last config.
	for _, c := range []struct {
		p    *clients.Process
		from int
		want []string
	}{{keep, keepFrom, ids(b[0], b[1])}, {gone, goneFrom, ids(b[2])}} {
		window, err := c.p.WaitFor(ctx, c.from, func(w []clients.Result) bool {
			return len(w) > 0 && w[len(w)-1].T.Sub(stopped) >= apiServerOutage
		})
		s.check("calls through the outage", window, err)
		if bad := failedOrOther(window, c.want...); len(bad) > 0 {
			t.Fatalf("during the outage %d of %d calls failed or went elsewhere than %v; first: %v", len(bad), len(window), c.want, bad[0])
		}
		t.Logf("faults api-server-down: %d calls during the %v outage, all OK on the last config %v", len(window), apiServerOutage, c.want)
	}
	if v := metricValue(t, sb, "switchboard_watcher_synced", ""); v != 0 {
		t.Fatalf("switchboard_watcher_synced = %v at the end of the outage, want 0", v)
	}
	errs := metricValue(t, sb, "switchboard_watcher_watch_errors_total", `resource="endpointslice"`)
	if errs == 0 {
		t.Fatal("switchboard_watcher_watch_errors_total{resource=\"endpointslice\"} = 0 after the outage")
	}
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}

	restart := time.Now()
	if err := cp.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// When the gauge says synced again, watched alongside the convergence.
	syncedAt := make(chan time.Time, 1)
	go func() {
		for conv := time.Now().Add(2 * time.Minute); time.Now().Before(conv); time.Sleep(20 * time.Millisecond) {
			if v, err := scrape(sb, "switchboard_watcher_synced", ""); err == nil && v == 1 {
				syncedAt <- time.Now()
				return
			}
		}
		close(syncedAt)
	}()
	t.Logf("faults api-server-down: API server ready %v after restart; %v endpointslice watch errors counted during the outage",
		back.Sub(restart).Round(time.Millisecond), errs)

	// Converged: keep goes to b0 and b3 only, gone fails. The deadline is
	// generous; the figure is logged.
	conv, cancelConv := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelConv()
	from := keep.Len()
	r, err := keep.WaitBackend(conv, b[3].ID())
	s.check("slice added during the outage arrives", nil, err)
	rs, err = keep.WaitOnlyFrom(conv, 20, ids(b[0], b[3])...)
	s.check("slice deleted during the outage is gone", rs, err)
	last, _ := clients.LastFrom(keep.Results()[from:], b[1].ID())
	rs, err = gone.WaitFailing(conv, 5, codes.Unavailable, "")
	s.check("Service deleted during the outage is gone", rs, err)
	firstFail := rs[0]
	synced, ok := <-syncedAt
	if !ok {
		t.Fatal("switchboard_watcher_synced not back to 1 within 2 minutes of the API server's return")
	}
	lastB1 := "none"
	if !last.T.IsZero() {
		lastB1 = last.T.Sub(back).Round(time.Millisecond).String()
	}
	t.Logf("faults api-server-down: after the API server was ready: synced=1 at %v, first call to the added slice %v, last call to the deleted slice %s, first UNAVAILABLE on the deleted Service %v",
		synced.Sub(back).Round(time.Millisecond), r.T.Sub(back).Round(time.Millisecond), lastB1, firstFail.T.Sub(back).Round(time.Millisecond))
	if testing.Verbose() {
		for _, l := range strings.Split(sb.out.String(), "\n") {
			if strings.Contains(l, "list or watch") || strings.Contains(l, "watch failed") {
				t.Log(l)
			}
		}
	}
}

// failedOrOther returns the results that failed or reached a backend not
// in want.
func failedOrOther(rs []clients.Result, want ...string) []clients.Result {
	var bad []clients.Result
	for _, r := range rs {
		if !r.OK() || !clients.From(want...)(r) {
			bad = append(bad, r)
		}
	}
	return bad
}

// metricValue returns the value of the series name{labels} on sb's
// /metrics (labels as in the exposition, e.g. `resource="service"`, or ""
// for a metric without labels). A missing series fails the test.
func metricValue(t *testing.T, sb *switchboard, name, labels string) float64 {
	t.Helper()
	v, err := scrape(sb, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func scrape(sb *switchboard, name, labels string) (float64, error) {
	families, err := scrapeFamilies(sb)
	if err != nil {
		return 0, err
	}
	f, ok := families[name]
	if !ok {
		return 0, fmt.Errorf("/metrics has no %s", name)
	}
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		if strings.Join(ls, ",") != labels {
			continue
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), nil
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), nil
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue(), nil
		}
	}
	return 0, fmt.Errorf("/metrics has no %s{%s}", name, labels)
}

// scrapeFamilies reads and parses sb's /metrics.
func scrapeFamilies(sb *switchboard) (map[string]*dto.MetricFamily, error) {
	// Not sb.get: scrape is called off the test goroutine too.
	resp, err := http.Get("http://" + sb.admin + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("/metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("/metrics: %w", err)
	}
	parser := expfmt.NewTextParser(prommodel.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("/metrics: %w", err)
	}
	return families, nil
}

// waitSeries polls name{labels} on sb's /metrics until ok holds, for at
// most timeout, and returns when it first held. A gauge changes without an
// event anyone can wait on; polling every 20 ms is the wait.
func waitSeries(t *testing.T, sb *switchboard, name, labels string, timeout time.Duration, ok func(float64) bool) time.Time {
	t.Helper()
	var v float64
	var err error
	if !poll.Wait(timeout, func() bool {
		v, err = scrape(sb, name, labels)
		return err == nil && ok(v)
	}) {
		t.Fatalf("%s{%s} did not reach the wanted value in %v: last %v (%v)", name, labels, timeout, v, err)
	}
	return time.Now()
}
