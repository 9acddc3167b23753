package observability

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestTLSCertificateExpiringFires evaluates SwitchboardTLSCertificateExpiring's
// expression and `for:` under promtool's rule unit tests (a real
// Prometheus rule engine): it fires for a replica whose certificate
// expires in 6 days or has expired, not for one with 30 days left, nor
// for one serving without TLS (the gauge at 0).
func TestTLSCertificateExpiringFires(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (make tools installs Debian's prometheus package): %v", err)
	}
	rs, err := Rules(readRules(t))
	if err != nil {
		t.Fatal(err)
	}
	var rule *Rule
	for i := range rs {
		if rs[i].Alert == "SwitchboardTLSCertificateExpiring" {
			rule = &rs[i]
		}
	}
	if rule == nil {
		t.Fatal("no SwitchboardTLSCertificateExpiring in the rules")
	}
	// The expression and for: alone, so the test need not spell out the
	// rendered annotations.
	rules, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{
		"name":  "tls",
		"rules": []any{map[string]any{"alert": rule.Alert, "expr": rule.Expr, "for": rule.For, "labels": rule.Labels}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	// promtool's clock starts at 0, so a timestamp is also the time left.
	tests := `rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'switchboard_xds_tls_certificate_expiry_timestamp_seconds{job="switchboard", instance="soon"}'
        values: '518400x30'
      - series: 'switchboard_xds_tls_certificate_expiry_timestamp_seconds{job="switchboard", instance="expired"}'
        values: '60x30'
      - series: 'switchboard_xds_tls_certificate_expiry_timestamp_seconds{job="switchboard", instance="later"}'
        values: '2592000x30'
      - series: 'switchboard_xds_tls_certificate_expiry_timestamp_seconds{job="switchboard", instance="plaintext"}'
        values: '0x30'
    alert_rule_test:
      - eval_time: 5m
        alertname: SwitchboardTLSCertificateExpiring
        exp_alerts: []
      - eval_time: 20m
        alertname: SwitchboardTLSCertificateExpiring
        exp_alerts:
          - exp_labels: {job: switchboard, instance: soon, severity: ` + rule.Labels["severity"] + `}
          - exp_labels: {job: switchboard, instance: expired, severity: ` + rule.Labels["severity"] + `}
`
	if err := os.WriteFile(filepath.Join(dir, "tests.yaml"), []byte(tests), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", "tests.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
