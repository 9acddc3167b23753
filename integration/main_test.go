// Package integration tests Switchboard as users run it: the built binary,
// fed by a real kube-apiserver and etcd (or a folder of manifests), serving
// three xDS client implementations we did not write: grpc-go, grpc-js-xds
// and gRPC C-core. Everything runs inside a network namespace that TestMain
// makes, so backends listen on 10.244.x.y (which the API server accepts in
// EndpointSlices) and no traffic can leave the machine.
package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.RunInNetns(m)) }

// env holds what the tests of this package share: built once, on first use.
var env struct {
	buildOnce sync.Once
	dir       string
	bin       string
	buildErr  error

	clientsOnce sync.Once
	runner      *clients.Runner
	clientsErr  error

	cpOnce sync.Once
	cp     *harness.ControlPlane
	admin  kubernetes.Interface
	cpErr  error
}

// binaries builds Switchboard and prepares the three client programs.
func binaries(t *testing.T) (string, *clients.Runner) {
	t.Helper()
	bin := switchboardBinary(t)
	env.clientsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		env.runner, env.clientsErr = clients.Prepare(ctx, clients.PrepareOptions{Dir: env.dir})
	})
	if env.clientsErr != nil {
		t.Fatalf("build: clients: %v", env.clientsErr)
	}
	return bin, env.runner
}

// switchboardBinary builds Switchboard, for tests that run no client.
func switchboardBinary(t *testing.T) string {
	t.Helper()
	env.buildOnce.Do(func() {
		env.dir, env.buildErr = os.MkdirTemp("", "switchboard-integration-")
		if env.buildErr != nil {
			return
		}
		env.bin = filepath.Join(env.dir, "switchboard")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", env.bin, "github.com/switchboard-xds/switchboard/cmd/switchboard").CombinedOutput()
		if err != nil {
			env.buildErr = &buildError{out: string(out), err: err}
		}
	})
	if env.buildErr != nil {
		t.Fatalf("build: %v", env.buildErr)
	}
	return env.bin
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// controlPlane starts the package's one kube-apiserver and etcd.
func controlPlane(t *testing.T) (*harness.ControlPlane, kubernetes.Interface) {
	t.Helper()
	env.cpOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		env.cp, env.cpErr = harness.Start(ctx, harness.Options{})
		if env.cpErr != nil {
			return
		}
		env.admin, env.cpErr = kubernetes.NewForConfig(env.cp.AdminConfig())
	})
	if env.cpErr != nil {
		t.Fatalf("control plane: %v", env.cpErr)
	}
	return env.cp, env.admin
}
