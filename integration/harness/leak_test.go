package harness_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/internal/poll"
)

// Environment of the child that TestNoLeakWhenTestBinaryPanics runs.
const (
	panicChildEnv = "HARNESS_TEST_PANIC_CHILD" // file to write cp.Dir() into
	netnsEnv      = "SWITCHBOARD_NETNS"        // cleared so the child makes its own namespace
)

// TestNoLeakWhenTestBinaryPanics runs this test binary again, through
// RunInNetns as `go test` would, with a test that starts a control plane and
// panics without calling Stop. Afterwards no etcd or kube-apiserver of that
// control plane may be running and its temporary folder must be gone.
func TestNoLeakWhenTestBinaryPanics(t *testing.T) {
	if dirFile := os.Getenv(panicChildEnv); dirFile != "" {
		panicWithControlPlane(t, dirFile)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dirFile := filepath.Join(t.TempDir(), "dir")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestNoLeakWhenTestBinaryPanics$", "-test.count=1")
	cmd.Env = append(os.Environ(), panicChildEnv+"="+dirFile, netnsEnv+"=")
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || !bytes.Contains(out, []byte("deliberate panic")) {
		t.Fatalf("child: %v, want a deliberate panic; output:\n%s", err, out)
	}
	data, err := os.ReadFile(dirFile)
	if err != nil {
		t.Fatalf("child did not start a control plane: %v; output:\n%s", err, out)
	}
	dir := string(data)

	// SIGKILL from Pdeathsig is immediate, but reaping the orphans is not.
	// Polling /proc: there is no event to wait on.
	var left []string
	if !poll.Wait(10*time.Second, func() bool {
		left = processesMentioning(t, dir)
		return len(left) == 0
	}) {
		t.Fatalf("still running after the test binary panicked: %v", left)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary folder %s left behind: %v", dir, err)
	}
}

// panicWithControlPlane is the child's side: start, record the folder, panic.
func panicWithControlPlane(t *testing.T, dirFile string) {
	cp, err := harness.Start(t.Context(), harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dirFile, []byte(cp.Dir()), 0o600); err != nil {
		t.Fatal(err)
	}
	panic("deliberate panic with a running control plane")
}

// processesMentioning returns the command lines of live processes whose
// arguments contain s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		if line := string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})); strings.Contains(line, s) {
			found = append(found, p+": "+line)
		}
	}
	return found
}

// TestStartFailsCleanly gives Start an RBAC manifest with a misspelt field,
// which it finds only once both processes run: Start must say what is wrong
// and leave no process or folder behind.
func TestStartFailsCleanly(t *testing.T) {
	manifest := filepath.Join(t.TempDir(), "rbac.yaml")
	err := os.WriteFile(manifest, []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: typo
rulez: []
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	parent := os.Getenv("SWITCHBOARD_HARNESS_TMPDIR")
	before, _ := filepath.Glob(filepath.Join(parent, "switchboard-harness-*"))
	_, err = harness.Start(t.Context(), harness.Options{RBACFile: manifest})
	if err == nil || !strings.Contains(err.Error(), "rulez") {
		t.Fatalf("Start with a misspelt manifest: %v, want an error naming the field", err)
	}
	t.Logf("Start: %v", err)
	after, _ := filepath.Glob(filepath.Join(parent, "switchboard-harness-*"))
	if len(after) != len(before) {
		t.Errorf("temporary folders before Start %v, after its failure %v", before, after)
	}
	if left := processesMentioning(t, filepath.Join(parent, "switchboard-harness-")); len(left) != 0 {
		t.Errorf("still running after Start failed: %v", left)
	}
}
