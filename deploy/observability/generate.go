package observability

import (
	"fmt"
	"os"
	"path/filepath"
)

// The generated files, relative to the repository root.
const (
	DashboardFile      = "deploy/grafana/switchboard.json"
	PrometheusRuleFile = "deploy/kubernetes/overlays/monitoring/prometheusrule.yaml"
)

// Generate returns the content of every generated file by its path relative
// to root, the repository root: the dashboard, and the PrometheusRule made
// from the rules file under root.
func Generate(root string) (map[string][]byte, error) {
	dash, err := Dashboard()
	if err != nil {
		return nil, err
	}
	rules, err := os.ReadFile(filepath.Join(root, RulesFile))
	if err != nil {
		return nil, fmt.Errorf("read the rules: %w", err)
	}
	pr, err := PrometheusRule(rules)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", RulesFile, err)
	}
	return map[string][]byte{DashboardFile: dash, PrometheusRuleFile: pr}, nil
}
