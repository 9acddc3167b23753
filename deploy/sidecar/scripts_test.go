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
// and shellcheck (Debian's shellcheck package) when it is installed.
func TestScriptsParse(t *testing.T) {
	shellcheck, _ := exec.LookPath("shellcheck")
	if shellcheck == "" {
		t.Log("shellcheck not installed (apt-get install shellcheck): bash -n only")
	}
	for _, s := range scripts {
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		if shellcheck != "" {
			if out, err := exec.Command(shellcheck, s).CombinedOutput(); err != nil {
				t.Errorf("shellcheck %s: %v\n%s", s, err, out)
			}
		}
	}
}
