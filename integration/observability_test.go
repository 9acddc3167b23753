package integration

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/switchboard-xds/switchboard/deploy/observability"
	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestObservabilityMetricsAtStart: every metric a dashboard panel or an
// alert rule reads is in a live scrape of the real binary right after it
// is ready, in standalone mode on the demo's manifests and in Kubernetes mode on
// the real API server, with at least one
// sample: a panel that shows "No data" on a healthy idle install, or a rule
// whose increase() misses the first event because its series did not
// exist yet, is a bug. The names come from parsing every query with
// Prometheus's PromQL parser, not from a hand list.
func TestObservabilityMetricsAtStart(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		_, sb := demoSwitchboard(t, switchboardBinary(t))
		checkMetricsAtStart(t, sb)
	})
	t.Run("kubernetes", func(t *testing.T) {
		kubeconfig, _ := switchboardKubeconfig(t)
		checkMetricsAtStart(t, startSwitchboard(t, switchboardBinary(t), "--kubeconfig", kubeconfig))
	})
}

// checkMetricsAtStart fails t unless every metric the dashboard and the
// rules read has a sample on sb's /metrics.
func checkMetricsAtStart(t *testing.T, sb *switchboard) {
	t.Helper()
	have := scrapedNames(t, sb)
	refs := referencedNames(t)
	var missing []string
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		if have[name] || prometheusSynthetic[name] {
			continue
		}
		missing = append(missing, name)
	}
	if len(missing) > 0 {
		var b strings.Builder
		for _, n := range missing {
			fmt.Fprintf(&b, "\n  %s (read by %s)", n, strings.Join(slices.Compact(refs[n]), "; "))
		}
		t.Errorf("%d of %d metrics that the dashboard and the rules read have no sample in /metrics right after start (not exported, or a label value not initialised): %s%s",
			len(missing), len(refs), strings.Join(missing, " "), b.String())
	}
}

// TestObservabilityPrometheus runs a real Prometheus (Debian's 2.42) that
// scrapes a running Switchboard every second and evaluates the rules file
// every second, under a small workload: a real grpc-go xDS client, a raw
// ADS client (class envoy) that NACKs everything, one (class c-core)
// that never ACKs, one that ends its stream, and an EndpointSlice change. The rules are a copy of
// deploy/prometheus/switchboard-rules.yaml with every `for:` at 1s (the
// real ones, up to 15m, outlast a test); thresholds are unchanged. It
// asserts through Prometheus's HTTP API that every rule evaluates without
// error, that every dashboard query returns data, that the NACK alert fires
// for the NACKing client and the stale-client alert for the one that
// stopped ACKing.
func TestObservabilityPrometheus(t *testing.T) {
	bin, runner := binaries(t)
	w, sb := demoSwitchboard(t, bin)
	rules, err := os.ReadFile(filepath.Join(repoRoot(), observability.RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	short, err := observability.WithFor(rules, "1s")
	if err != nil {
		t.Fatal(err)
	}
	prom := startPrometheus(t, `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yaml]
scrape_configs:
  - job_name: switchboard
    static_configs: [{targets: ["`+sb.admin+`"]}]
`, map[string][]byte{"rules.yaml": short})
	pc, err := promapi.NewClient(promapi.Config{Address: "http://" + prom.addr})
	if err != nil {
		t.Fatal(err)
	}
	api := promv1.NewAPI(pc)
	// Prometheus hands its first targets to the scrapers some seconds after
	// start; events before its first scrape would be in the counters' first
	// samples, which increase() does not count.
	upCtx, cancelUp := context.WithTimeout(context.Background(), 60*time.Second)
	waitQuery(upCtx, t, api, `up{job="switchboard"} == 1`)
	cancelUp()

	// The workload.
	s := newScenario(t, w, sb, runner, clients.GoGRPC, 5*time.Minute)
	ctx := s.ctx
	ns := w.Namespace(t)
	b := backends(t, "o", 2)
	w.ApplyService(t, newService(ns, "echo", port...))
	w.ApplySlice(t, newSlice(ns, "echo", "echo-1", port, ep(b[0], harness.Ready, "z1")))
	p := s.start(clients.Options{Target: "xds:///echo." + ns + ":50051"}, "--zone", "z1")
	if _, err := p.WaitOK(ctx); err != nil {
		t.Fatalf("grpc-go client: %v", err)
	}
	nacker := startRawADS(t, sb.xds, "nacker", "envoy", nackAll)
	silent := startRawADS(t, sb.xds, "silent", "gRPC C-core linux Test", neverAck)
	brief := startRawADS(t, sb.xds, "brief", "gRPC Go", neverAck)
	for _, c := range []*rawADS{nacker, silent, brief} {
		if err := c.waitResponses(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	// A stream that ends, so that stream durations have an observation.
	brief.stop()
	// A change, so that convergence and translation have observations.
	w.ApplySlice(t, newSlice(ns, "echo", "echo-1", port, ep(b[1], harness.Ready, "z1")))
	if _, err := p.WaitOnlyFrom(ctx, 10, b[1].ID()); err != nil {
		t.Fatalf("grpc-go client after the change: %v", err)
	}

	checkRulesHealthy(ctx, t, api)
	checkDashboardQueries(ctx, t, api, sb)
	checkAlertsFire(ctx, t, api, map[string]model.LabelSet{
		"SwitchboardNACKs":       {"client_class": "envoy"},
		"SwitchboardClientStale": {"client_class": "c-core"},
	})
}

// waitQuery waits until query returns data.
func waitQuery(ctx context.Context, t *testing.T, api promv1.API, query string) {
	t.Helper()
	for {
		v, _, _, err := api.Query(ctx, query, time.Now())
		if err == nil && !empty(v) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: no data (last error %v): %v", query, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkRulesHealthy waits until every rule has been evaluated and fails
// for each that evaluates with an error.
func checkRulesHealthy(ctx context.Context, t *testing.T, api promv1.API) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		res, err := api.Rules(ctx, nil)
		if err != nil {
			t.Fatalf("/api/v1/rules: %v", err)
		}
		var unknown, bad []string
		n := 0
		for _, g := range res.Groups {
			for _, r := range g.Rules {
				a, ok := r.(promv1.AlertingRule)
				if !ok {
					continue
				}
				n++
				switch a.Health {
				case promv1.RuleHealthGood:
				case promv1.RuleHealthBad:
					bad = append(bad, a.Name+": "+a.LastError)
				default:
					unknown = append(unknown, a.Name)
				}
			}
		}
		if n == 0 {
			t.Fatal("Prometheus loaded no alerting rules")
		}
		if len(unknown) == 0 {
			for _, e := range bad {
				t.Errorf("rule evaluates with an error: %s", e)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("rules never evaluated: %v", unknown)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkDashboardQueries waits until every dashboard query, with the job and
// instance variables set as a user selecting this replica sets them,
// returns data, and fails naming those that never do.
func checkDashboardQueries(ctx context.Context, t *testing.T, api promv1.API, sb *switchboard) {
	t.Helper()
	vars := observability.Vars{Job: "switchboard", Instance: strings.ReplaceAll(sb.admin, ".", `\\.`), RateInterval: "30s"}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	pending := observability.DashboardQueries()
	for {
		var still []observability.Query
		for _, q := range pending {
			v, _, _, err := api.Query(ctx, observability.Expand(q.Expr, vars), time.Now())
			if err != nil {
				// Prometheus refused the query: asking again will not help.
				t.Errorf("%s: %v", q.Where, err)
				continue
			}
			if empty(v) {
				still = append(still, q)
			}
		}
		pending = still
		if len(pending) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			for _, q := range pending {
				names, _ := observability.MetricNames(observability.Expand(q.Expr, vars))
				t.Errorf("%s: no data after 60s from %s (reads %s)", q.Where, observability.Expand(q.Expr, vars), strings.Join(names, ", "))
			}
			return
		case <-time.After(time.Second):
		}
	}
}

// empty reports whether a query result has no sample. A NaN sample (a
// quantile over a window without observations) is data: the series exist.
func empty(v model.Value) bool {
	switch v := v.(type) {
	case model.Vector:
		return len(v) == 0
	case model.Matrix:
		return len(v) == 0
	case *model.Scalar:
		return v == nil || math.IsNaN(float64(v.Value))
	default:
		return v == nil
	}
}

// checkAlertsFire waits until each alert named in want is firing with at
// least the given labels, and fails naming those that never do.
func checkAlertsFire(ctx context.Context, t *testing.T, api promv1.API, want map[string]model.LabelSet) {
	t.Helper()
	// The stale threshold is 30 s of a client not ACKing, then 1 s of for:.
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for {
		res, err := api.Alerts(ctx)
		if err != nil {
			t.Fatalf("/api/v1/alerts: %v", err)
		}
		seen := map[string][]string{}
		for _, a := range res.Alerts {
			name := string(a.Labels[model.AlertNameLabel])
			seen[name] = append(seen[name], fmt.Sprintf("%s %v", a.State, a.Labels))
			if a.State != promv1.AlertStateFiring {
				continue
			}
			if labels, ok := want[name]; ok && hasLabels(a.Labels, labels) {
				t.Logf("%s fires: %v", name, a.Labels)
				delete(want, name)
			}
		}
		if len(want) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			for name, labels := range want {
				t.Errorf("alert %s with %v not firing after 90s; alerts of that name: %v", name, labels, seen[name])
			}
			return
		case <-time.After(time.Second):
		}
	}
}

func hasLabels(have, want model.LabelSet) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
