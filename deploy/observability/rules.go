package observability

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// RulesFile is the alert rules file, relative to the repository root: the
// one source of the rules.
const RulesFile = "deploy/prometheus/switchboard-rules.yaml"

// RunbooksFile holds one "## AlertName" section per alert, relative to the
// repository root; RunbookURL is where it is published, which every
// alert's runbook_url annotation points into (#alertname, lower case).
const (
	RunbooksFile = "docs/runbooks.md"
	RunbookURL   = "https://github.com/switchboard-xds/switchboard/blob/main/" + RunbooksFile
)

// Rule is one alerting rule of the rules file, as Prometheus reads it.
type Rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []Rule `yaml:"rules"`
	} `yaml:"groups"`
}

// Rules decodes a rules file (Prometheus's rule_files format) and returns
// its alerting rules in file order.
func Rules(rulesYAML []byte) ([]Rule, error) {
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(rulesYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		return nil, fmt.Errorf("decode rules: %w", err)
	}
	var out []Rule
	for _, g := range rf.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

// RuleQueries returns the expression of every rule.
func RuleQueries(rulesYAML []byte) ([]Query, error) {
	rs, err := Rules(rulesYAML)
	if err != nil {
		return nil, err
	}
	qs := make([]Query, 0, len(rs))
	for _, r := range rs {
		qs = append(qs, Query{Where: "alert " + r.Alert, Expr: r.Expr})
	}
	return qs, nil
}

// prometheusRuleHeader is the generated PrometheusRule up to its spec.
const prometheusRuleHeader = `# GENERATED from deploy/prometheus/switchboard-rules.yaml by
# go test ./deploy/observability -update; do not edit: edit that file.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: switchboard
  namespace: switchboard-system
  labels:
    app.kubernetes.io/name: switchboard
`

// PrometheusRule returns the Prometheus Operator's PrometheusRule whose
// spec is the rules file's content: its lines as they are (so comments and
// line breaks stay), indented under spec, without the file's leading
// comment, which is about the file. It fails if the result does not decode
// to the same rules.
func PrometheusRule(rulesYAML []byte) ([]byte, error) {
	want, err := Rules(rulesYAML)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(prometheusRuleHeader)
	b.WriteString("spec:\n")
	head := true
	for line := range strings.Lines(string(rulesYAML)) {
		trimmed := strings.TrimSpace(line)
		if head && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		head = false
		if trimmed != "" {
			b.WriteString("  ")
		}
		b.WriteString(strings.TrimRight(line, " \t\r\n") + "\n")
	}
	var obj struct {
		Spec ruleFile `yaml:"spec"`
	}
	if err := yaml.Unmarshal(b.Bytes(), &obj); err != nil {
		return nil, fmt.Errorf("the PrometheusRule does not decode: %w", err)
	}
	var got []Rule
	for _, g := range obj.Spec.Groups {
		got = append(got, g.Rules...)
	}
	if !reflect.DeepEqual(got, want) {
		return nil, errors.New("the PrometheusRule's rules differ from the rules file's")
	}
	return b.Bytes(), nil
}

// WithFor returns the rules file with every rule's `for:` set to d (a
// Prometheus duration such as "1s"): the copy a test loads so that alerts
// fire within its lifetime. Nothing else changes.
func WithFor(rulesYAML []byte, d string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(rulesYAML, &doc); err != nil {
		return nil, fmt.Errorf("decode rules: %w", err)
	}
	n := setFor(&doc, d)
	if n == 0 {
		return nil, errors.New("rules: no `for:` to change")
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("encode rules: %w", err)
	}
	return out, nil
}

// setFor sets the value of every `for` key under n to d and counts them.
func setFor(n *yaml.Node, d string) int {
	count := 0
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "for" && n.Content[i+1].Kind == yaml.ScalarNode {
				n.Content[i+1].Value = d
				count++
			}
		}
	}
	for _, c := range n.Content {
		count += setFor(c, d)
	}
	return count
}
