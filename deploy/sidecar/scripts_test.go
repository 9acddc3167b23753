// Package sidecar holds no code: deploy/sidecar is the Envoy sidecar example
// (manifests, capture.sh). Its test checks the shell scripts that no unit
// test runs: capture.sh runs for real in integration's TestCapture, and
// deploy/e2e-kind/run.sh needs Docker and kind, so it is only parsed here.
package sidecar

import (
	"os/exec"
	"testing"
)

var scripts = []string{"capture.sh", "../e2e-kind/run.sh"}

// TestScriptsParse runs `bash -n` (parse without running) on each script,
// and shellcheck (Debian's shellcheck package, which `make tools`
// installs: without it the test fails rather than check less).
func TestScriptsParse(t *testing.T) {
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatalf("shellcheck not found (make tools installs it, or apt-get install shellcheck): %v", err)
	}
	for _, s := range scripts {
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		if out, err := exec.Command(shellcheck, s).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", s, err, out)
		}
	}
}
