package observability

import (
	"bytes"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the generated dashboard and PrometheusRule")

// root is the repository root (this package is deploy/observability).
const root = "../.."

// TestGenerated: the committed dashboard and PrometheusRule are what
// Generate writes; -update rewrites them.
func TestGenerated(t *testing.T) {
	files, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(root, name)
		if *update {
			if err := os.WriteFile(path, files[name], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./deploy/observability -update)", err)
		}
		if d := cmp.Diff(string(have), string(files[name])); d != "" {
			t.Errorf("%s is not what the generator writes (run go test ./deploy/observability -update); -committed +generated:\n%s", name, d)
		}
	}
}

func readRules(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// allQueries are the dashboard's and the rules' queries.
func allQueries(t *testing.T) []Query {
	t.Helper()
	rq, err := RuleQueries(readRules(t))
	if err != nil {
		t.Fatal(err)
	}
	return append(DashboardQueries(), rq...)
}

// Sentinels for the variables, to find where they end up in the AST.
var sentinels = Vars{Job: "JOB_VARIABLE", Instance: "INSTANCE_VARIABLE", RateInterval: "1m"}

// TestQueriesParse: every query parses as PromQL once Grafana's variables
// are expanded and names each metric it reads; the job and instance
// variables appear only as the value of a =~ matcher, and every dashboard
// selector carries both (so the variable bar filters every panel).
func TestQueriesParse(t *testing.T) {
	for _, q := range allQueries(t) {
		expr := Expand(q.Expr, sentinels)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: a variable Expand does not know is left in %q", q.Where, expr)
			continue
		}
		if _, err := MetricNames(expr); err != nil {
			t.Errorf("%s: %v", q.Where, err)
			continue
		}
		e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
		if err != nil {
			t.Fatal(err)
		}
		dashboard := strings.HasPrefix(q.Where, "panel ")
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			seen := map[string]bool{}
			for _, m := range vs.LabelMatchers {
				for name, s := range map[string]string{"job": sentinels.Job, "instance": sentinels.Instance} {
					if !strings.Contains(m.Value, s) {
						continue
					}
					if m.Type != labels.MatchRegexp || m.Name != name || m.Value != s {
						t.Errorf("%s: $%s in matcher %s, want only %s=~\"$%s\"", q.Where, name, m, name, name)
					}
					seen[name] = true
				}
			}
			if dashboard && (!seen["job"] || !seen["instance"]) {
				t.Errorf("%s: selector %s lacks job=~\"$job\" or instance=~\"$instance\"", q.Where, vs)
			}
			return nil
		})
	}
}

// TestMetricNames: the names a query reads, histogram suffixes included.
func TestMetricNames(t *testing.T) {
	got, err := MetricNames(`histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"x"}[1m]))) / on() group_left {__name__="b"} > c`)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a_bucket", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("MetricNames = %v, want %v", got, want)
	}
	if _, err := MetricNames(`{job="x"}`); err == nil {
		t.Error("a selector without a metric name passed")
	}
	if _, err := MetricNames(`rate(x[1m]`); err == nil {
		t.Error("a query that does not parse passed")
	}
}

// TestDashboardModel checks what Grafana needs to import the JSON as is.
func TestDashboardModel(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, DashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	type datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	promDS := datasource{Type: "prometheus", UID: "${" + DatasourceVar + "}"}
	var d struct {
		SchemaVersion uint16 `json:"schemaVersion"`
		UID           string `json:"uid"`
		Panels        []struct {
			ID         int                      `json:"id"`
			Type       string                   `json:"type"`
			Title      string                   `json:"title"`
			Datasource *datasource              `json:"datasource"`
			GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
			Targets    []struct {
				Datasource datasource `json:"datasource"`
				Expr       string     `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.SchemaVersion != dashboard.NewDashboard().SchemaVersion || d.UID == "" {
		t.Errorf("schemaVersion %d uid %q", d.SchemaVersion, d.UID)
	}
	if len(d.Templating.List) == 0 || d.Templating.List[0].Name != DatasourceVar || d.Templating.List[0].Type != "datasource" || d.Templating.List[0].Query != "prometheus" {
		t.Errorf("the first variable is not a prometheus datasource variable %q: %+v", DatasourceVar, d.Templating.List)
	}
	ids := map[int]bool{}
	cells := map[[2]int]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := cells[[2]int{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", p.Title, other, x, y)
				}
				cells[[2]int{x, y}] = p.Title
			}
		}
		if p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q is wider than the grid", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || *p.Datasource != promDS {
			t.Errorf("panel %q: datasource %v, want %v", p.Title, p.Datasource, promDS)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource != promDS || tg.Expr == "" {
				t.Errorf("panel %q: target %+v", p.Title, tg)
			}
		}
	}
}

// TestRules: every alert has a severity, a summary, a description and a
// runbook_url that points at a section of docs/runbooks.md named after the
// alert (GitHub's anchor of a "## Name" heading is the name in lower case).
func TestRules(t *testing.T) {
	rs, err := Rules(readRules(t))
	if err != nil {
		t.Fatal(err)
	}
	runbooks, err := os.ReadFile(filepath.Join(root, RunbooksFile))
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for line := range strings.Lines(string(runbooks)) {
		if h, ok := strings.CutPrefix(strings.TrimSpace(line), "## "); ok {
			headings[strings.ToLower(h)] = true
		}
	}
	for _, r := range rs {
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: summary or description missing", r.Alert)
		}
		if r.For == "" {
			t.Errorf("%s: no for:", r.Alert)
		}
		anchor := strings.ToLower(r.Alert)
		if want := RunbookURL + "#" + anchor; r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !headings[anchor] {
			t.Errorf("%s: no section \"## %s\" in %s", r.Alert, r.Alert, RunbooksFile)
		}
		delete(headings, anchor)
	}
	for h := range headings {
		t.Errorf("%s: section %q is no alert's", RunbooksFile, h)
	}
}

// TestPrometheusRuleIsTheRules: the generated PrometheusRule's spec holds
// exactly the rules file's rules.
func TestPrometheusRuleIsTheRules(t *testing.T) {
	rules := readRules(t)
	pr, err := PrometheusRule(rules)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Kind string    `yaml:"kind"`
		Spec yaml.Node `yaml:"spec"`
	}
	if err := yaml.Unmarshal(pr, &obj); err != nil {
		t.Fatal(err)
	}
	spec, err := yaml.Marshal(&obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Rules(rules)
	got, err := Rules(spec)
	if err != nil {
		t.Fatal(err)
	}
	if obj.Kind != "PrometheusRule" || len(got) == 0 {
		t.Fatalf("kind %q, %d rules", obj.Kind, len(got))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("PrometheusRule spec differs from the rules file: %s", d)
	}
}

// TestPromtoolCheckRules runs Prometheus's promtool (Debian's prometheus
// package; `make tools` installs it) on the rules file and on the copy
// with short `for:` that the integration test loads.
func TestPromtoolCheckRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (make tools installs Debian's prometheus package): %v", err)
	}
	rules := readRules(t)
	short, err := WithFor(rules, "1s")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(short, rules) || !bytes.Contains(short, []byte("for: 1s")) {
		t.Fatalf("WithFor changed nothing:\n%s", short)
	}
	shortFile := filepath.Join(t.TempDir(), "short.yaml")
	if err := os.WriteFile(shortFile, short, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(root, RulesFile), shortFile} {
		out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput()
		if err != nil {
			t.Errorf("promtool check rules %s: %v\n%s", f, err, out)
		}
	}
	// promtool must be able to fail: a broken expression does.
	broken := bytes.Replace(rules, []byte("switchboard_cache_ready == 0"), []byte("switchboard_cache_ready == ("), 1)
	bad := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(bad, broken, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", bad).CombinedOutput(); err == nil {
		t.Errorf("promtool check rules passed a broken expression:\n%s", out)
	}
}
