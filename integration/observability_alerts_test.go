package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/switchboard-xds/switchboard/deploy/observability"
)

// TestObservabilityAlertsLifecycle runs a real Prometheus on the rules file
// (every `for:` at 1s, thresholds unchanged) against `switchboard serve
// --manifests` and walks the alerts an install meets on its first day:
//   - fresh, with no client ever connected: SwitchboardNoClients does not
//     fire (it waits for clients to have been seen), nor does
//     SwitchboardScrapeMissing (the job is scraped);
//   - a client that NACKs from its first response (class envoy):
//     SwitchboardClientsNacking fires for it, on lds, the first type it
//     asks for;
//   - that client gone: switchboard_xds_nacked_streams falls to 0, and now
//     that clients were seen, SwitchboardNoClients fires;
//   - every dashboard query returns data;
//   - a second Prometheus whose job has another name:
//     SwitchboardScrapeMissing fires there.
func TestObservabilityAlertsLifecycle(t *testing.T) {
	_, sb := demoSwitchboard(t, switchboardBinary(t))
	rules, err := os.ReadFile(filepath.Join(repoRoot(), observability.RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	short, err := observability.WithFor(rules, "1s")
	if err != nil {
		t.Fatal(err)
	}
	promConfig := func(job string) string {
		return `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yaml]
scrape_configs:
  - job_name: ` + job + `
    static_configs: [{targets: ["` + sb.admin + `"]}]
`
	}
	api := promAPI(t, startPrometheus(t, promConfig("switchboard"), map[string][]byte{"rules.yaml": short}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitQuery(ctx, t, api, `up{job="switchboard"} == 1`)
	checkRulesHealthy(ctx, t, api)

	// Fresh: several scrapes with no client and rule evaluations after
	// them, and neither alert is pending or firing.
	waitQuery(ctx, t, api, `count_over_time(switchboard_cache_ready{job="switchboard"}[1m]) >= 3`)
	waitEvaluatedAfter(ctx, t, api, time.Now())
	checkAlertsSilent(ctx, t, api, "SwitchboardNoClients", "SwitchboardScrapeMissing", "SwitchboardClientsNacking")

	nacker := startRawADS(t, sb.xds, "nacker", "envoy", nackAll)
	if err := nacker.waitResponses(ctx, 1); err != nil {
		t.Fatal(err)
	}
	checkAlertsFire(ctx, t, api, map[string]model.LabelSet{
		"SwitchboardClientsNacking": {"client_class": "envoy", "type": "lds", "severity": "critical"},
	})

	nacker.stop()
	waitQuery(ctx, t, api, `sum(switchboard_xds_nacked_streams{job="switchboard"}) == 0`)
	checkAlertsFire(ctx, t, api, map[string]model.LabelSet{
		"SwitchboardNoClients": {"job": "switchboard"},
	})

	// Every dashboard panel has data after this day, the new ones too.
	checkDashboardQueries(ctx, t, api, sb)

	other := promAPI(t, startPrometheus(t, promConfig("not-switchboard"), map[string][]byte{"rules.yaml": short}))
	checkAlertsFire(ctx, t, other, map[string]model.LabelSet{
		"SwitchboardScrapeMissing": {"job": "switchboard"},
	})
}

func promAPI(t *testing.T, p *prometheus) promv1.API {
	t.Helper()
	pc, err := promapi.NewClient(promapi.Config{Address: "http://" + p.addr})
	if err != nil {
		t.Fatal(err)
	}
	return promv1.NewAPI(pc)
}

// waitEvaluatedAfter waits until every alerting rule was last evaluated
// after since.
func waitEvaluatedAfter(ctx context.Context, t *testing.T, api promv1.API, since time.Time) {
	t.Helper()
	for {
		res, err := api.Rules(ctx, nil)
		if err != nil {
			t.Fatalf("/api/v1/rules: %v", err)
		}
		done := true
		for _, g := range res.Groups {
			for _, r := range g.Rules {
				if a, ok := r.(promv1.AlertingRule); ok && !a.LastEvaluation.After(since) {
					done = false
				}
			}
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("rules not evaluated after %v: %v", since, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkAlertsSilent fails for each named alert that is pending or firing.
func checkAlertsSilent(ctx context.Context, t *testing.T, api promv1.API, names ...string) {
	t.Helper()
	res, err := api.Alerts(ctx)
	if err != nil {
		t.Fatalf("/api/v1/alerts: %v", err)
	}
	for _, a := range res.Alerts {
		for _, n := range names {
			if string(a.Labels[model.AlertNameLabel]) == n {
				t.Errorf("%s is %s on a fresh install: %v", n, a.State, a.Labels)
			}
		}
	}
}
