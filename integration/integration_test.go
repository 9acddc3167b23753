package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestStandalone runs the core story on `switchboard serve --manifests`
// with a real grpc-go xDS client.
func TestStandalone(t *testing.T) {
	w, sb, runner := standalone(t)
	runCore(t, w, sb, runner, clients.GoGRPC)
}

// TestAPIServer runs the core story against a real kube-apiserver, with
// Switchboard reading through its least-privilege identity (deploy/kubernetes/base/rbac.yaml),
// for each of the three client implementations.
func TestAPIServer(t *testing.T) {
	bin, runner := binaries(t)
	kubeconfig, admin := switchboardKubeconfig(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		sb := startSwitchboard(t, bin, "--kubeconfig", kubeconfig)
		runCore(t, apiWorld{admin}, sb, runner, kind)
		// From each EndpointSlice write (its last-change-trigger-time, or
		// when the watcher saw it) to the client's ACK.
		reportConvergence(t, sb, "TestAPIServer/"+string(kind))
	})
}

// TestAPIServerRestart restarts Switchboard under running clients.
func TestAPIServerRestart(t *testing.T) {
	bin, runner := binaries(t)
	kubeconfig, admin := switchboardKubeconfig(t)
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		sb := startSwitchboard(t, bin, "--kubeconfig", kubeconfig)
		restartStory(t, apiWorld{admin}, sb, runner, kind)
	})
}

// standalone runs Switchboard on a folder of manifests of the test's own.
func standalone(t *testing.T) (folderWorld, *switchboard, *clients.Runner) {
	t.Helper()
	bin, runner := binaries(t)
	w := newFolderWorld(t)
	return w, startSwitchboard(t, bin, "--manifests", w.dir), runner
}

// switchboardKubeconfig starts (once) the package's control plane and
// returns a kubeconfig for Switchboard's own least-privilege identity, and
// an admin client for writing the world.
func switchboardKubeconfig(t *testing.T) (string, kubernetes.Interface) {
	t.Helper()
	cp, admin := controlPlane(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cp.WriteKubeconfig(kubeconfig, harness.SwitchboardUser); err != nil {
		t.Fatal(err)
	}
	return kubeconfig, admin
}

// eachClient runs f as a parallel subtest for each client implementation.
func eachClient(t *testing.T, f func(t *testing.T, kind clients.Kind)) {
	t.Helper()
	for _, kind := range clients.AllKinds() {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			f(t, kind)
		})
	}
}

// TestUnreachableAPIServer: a clear one-line error and a non-zero exit.
func TestUnreachableAPIServer(t *testing.T) {
	bin := switchboardBinary(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "serve", "--kubeconfig", kubeconfig, "--xds-address", freeAddr(t), "--admin-address", freeAddr(t)).CombinedOutput()
	if err == nil {
		t.Fatalf("serve with an unreachable API server exited 0:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "switchboard: API server https://127.0.0.1:1") {
		t.Fatalf("last line = %q, want a one-line error naming the API server", last)
	}
}

// TestBadFlags: a clear one-line error and a non-zero exit.
func TestBadFlags(t *testing.T) {
	bin := switchboardBinary(t)
	for _, args := range [][]string{
		{"serve", "--kubeconfig", "x", "--manifests", "y"},
		{"serve", "--log-format", "xml"},
		{"serve", "--cluster-domain", "Not_A_Domain"},
		{"bootstrap", "grpc", "--node-id", "n"},
		{"nope"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil {
			t.Errorf("%v exited 0", args)
			continue
		}
		if !strings.Contains(string(out), "switchboard: ") {
			t.Errorf("%v: no 'switchboard: ' error line in:\n%s", args, out)
		}
	}
}
