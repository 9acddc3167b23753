// Package conformance runs the Gateway API mesh conformance suite
// (sigs.k8s.io/gateway-api/conformance, the version pinned in go.mod) from
// its Go API against Switchboard, in the integration harness's cluster:
// kube-apiserver, etcd, kube-controller-manager, kube-scheduler and KWOK in
// a network namespace of the test's own, the suite's own manifests
// (mesh/manifests.yaml and tests/mesh/*.yaml) applied by the suite.
//
// Each echo Pod runs integration/cmd/echoserver on its Pod IP (the harness's
// process-per-Pod runner, with the container's arguments), and the suite's
// `kubectl exec POD -- client URL ...` runs integration/cmd/client locally
// (KWOK's exec), which sends gRPC through grpc-go's xds resolver and decides
// HTTP with internal/envoysim over the Pod's sidecar configuration (package
// integration/meshclient says exactly what that models).
//
// It is a module of its own: the suite's module needs
// k8s.io/apiextensions-apiserver, which requires a newer
// github.com/grpc-ecosystem/go-grpc-middleware/v2 than the switchboard
// binary is built with; in the root module that would change the binary's
// dependencies for a test.
//
//	make conformance   # writes docs/conformance/report.yaml
//
// The suite's flags apply (go test ... -args -run-test MeshBasic,
// -report-output FILE, -skip-tests ...).
package conformance

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/apis/v1alpha2"
	"sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/flags"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/switchboard-xds/switchboard/integration/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.RunInNetns(m)) }

// SupportedFeatures are the mesh features Switchboard claims: those of
// the MESH-HTTP and MESH-GRPC profiles it implements for Envoy sidecars
// (docs/mesh-routes.md, "What each client kind gets"). The MESH-HTTP tests
// send HTTP, which the exec'd client decides as Envoy would.
var SupportedFeatures = []features.FeatureName{
	features.SupportMesh,
	features.SupportHTTPRoute,
	features.SupportGRPCRoute,
	features.SupportHTTPRouteResponseHeaderModification,
	features.SupportHTTPRouteParentRefPort,
	features.SupportHTTPRoute303RedirectStatusCode,
	features.SupportHTTPRoute307RedirectStatusCode,
	features.SupportHTTPRoute308RedirectStatusCode,
	features.SupportMeshClusterIPMatching,
	features.SupportMeshConsumerRoute,
	features.SupportMeshHTTPRouteRewritePath,
	features.SupportMeshHTTPRouteSchemeRedirect,
	features.SupportMeshHTTPRouteRedirectPort,
	features.SupportMeshHTTPRouteRedirectPath,
	features.SupportMeshHTTPRouteBackendRequestHeaderModification,
	features.SupportMeshHTTPRouteQueryParamMatching,
	features.SupportMeshHTTPRouteNamedRouteRule,
}

// TestMeshConformance builds Switchboard and the two programs of the echo
// Pods, starts the cluster with a runner that plays every Pod with
// echoserver, installs every standard-channel Gateway API CRD of the
// pinned module, starts Switchboard on the cluster with its own
// least-privilege identity, and runs the suite's MESH-HTTP and MESH-GRPC
// profiles.
func TestMeshConformance(t *testing.T) {
	start := time.Now()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/",
		"./cmd/switchboard", "./integration/cmd/echoserver", "./integration/cmd/client")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	version := gitVersion(root)
	t.Logf("built switchboard %s in %v", version, time.Since(start).Round(time.Second))

	// KWOK runs `kubectl exec` commands with its own environment plus the
	// Pod's (POD_NAME, POD_NAMESPACE, POD_IP): "client" is found on this
	// PATH and reaches Switchboard at this address.
	xds, admin, debug := freeAddr(t), freeAddr(t), freeAddr(t)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("SWITCHBOARD_XDS_SERVER", xds)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp, err := harness.Start(ctx, harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	cluster, err := cp.StartCluster(ctx, harness.ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	runner, err := cluster.RunPods(ctx, harness.RunnerOptions{Command: echoCommand(filepath.Join(bin, "echoserver"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := runner.Stop(); err != nil {
			t.Errorf("pod runner: %v", err)
		}
	})
	adminClient, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	crdCtx, crdCancel := context.WithTimeout(ctx, time.Minute)
	defer crdCancel()
	if err := harness.InstallGatewayCRDs(crdCtx, adminClient); err != nil {
		t.Fatal(err)
	}

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cp.WriteKubeconfig(kubeconfig, harness.SwitchboardUser); err != nil {
		t.Fatal(err)
	}
	startSwitchboard(t, filepath.Join(bin, "switchboard"), "--kubeconfig", kubeconfig,
		"--xds-address", xds, "--admin-address", admin, "--debug-address", debug)
	t.Logf("cluster and switchboard up after %v", time.Since(start).Round(time.Second))

	log.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	restConfig := cp.AdminConfig()
	c, err := client.New(restConfig, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, install := range []func(*runtime.Scheme) error{gwv1.Install, v1beta1.Install, v1alpha2.Install, apiextensionsv1.AddToScheme} {
		if err := install(c.Scheme()); err != nil {
			t.Fatal(err)
		}
	}
	opts := suite.ConformanceOptions{
		ConfigurableOptions: suite.ConfigurableOptions{
			CleanupBaseResources: true,
			CleanupTestResources: true,
			TimeoutConfig:        config.DefaultTimeoutConfig(),
			Mode:                 "default",
			SupportedFeatures:    SupportedFeatures,
			ConformanceProfiles:  []suite.ConformanceProfileName{suite.MeshHTTPConformanceProfileName, suite.MeshGRPCConformanceProfileName},
			Implementation: confv1.Implementation{
				Organization: "switchboard-xds",
				Project:      "switchboard",
				URL:          "https://github.com/switchboard-xds/switchboard",
				Version:      version,
				Contact:      []string{"https://github.com/switchboard-xds/switchboard/issues"},
			},
		},
		Client:     c,
		Clientset:  adminClient,
		RestConfig: restConfig,
		ManifestFS: []fs.FS{&conformance.Manifests},
	}
	// The suite's own flags (-run-test, -report-output, -skip-tests, ...)
	// override these, as in its own runner.
	flags.ApplyAll(&opts.ConfigurableOptions)
	if opts.ReportOutputPath == "" {
		// A file of the test's own, so that the report is still logged.
		opts.ReportOutputPath = filepath.Join(t.TempDir(), "report.yaml")
	} else if opts.ReportOutputPath, err = filepath.Abs(opts.ReportOutputPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { t.Logf("conformance run took %v in all", time.Since(start).Round(time.Second)) })
	conformance.RunConformanceWithOptions(t, opts)
}

// echoCommand plays each Pod of the suite with echoserver, given the
// container's arguments (the echo image's flags), on the Pod's IP, named
// by the Pod.
func echoCommand(echoserver string) harness.CommandFunc {
	return func(pod *corev1.Pod) (*exec.Cmd, error) {
		if len(pod.Spec.Containers) == 0 {
			return nil, nil
		}
		cmd := exec.Command(echoserver, pod.Spec.Containers[0].Args...)
		cmd.Env = append(os.Environ(), "POD_NAME="+pod.Name, "POD_NAMESPACE="+pod.Namespace, "POD_IP="+pod.Status.PodIP)
		return cmd, nil
	}
}

// startSwitchboard runs the binary's serve command and waits until its
// /readyz passes; it is stopped with SIGTERM when the test ends.
func startSwitchboard(t *testing.T, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "switchboard.log")
	p, err := harness.StartProcess("switchboard", bin, append([]string{"serve", "--log-level", "debug"}, args...),
		[]string{"POD_NAMESPACE=switchboard-system", "POD_NAME=switchboard-conformance"}, logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(10 * time.Second); err != nil {
			t.Logf("switchboard: %v", err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("switchboard log (last 20000 bytes):\n%s", tail(b, 20000))
			}
		}
	})
	var admin string
	for i, a := range args {
		if a == "--admin-address" && i+1 < len(args) {
			admin = args[i+1]
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.Done():
			t.Fatalf("switchboard exited before ready")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("switchboard not ready within a minute")
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}

// repoRoot is the Switchboard module's folder: two up from here.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root := filepath.Clean(filepath.Join(wd, "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "cmd", "switchboard")); err != nil {
		return "", fmt.Errorf("not the Switchboard module: %w", err)
	}
	return root, nil
}

// gitVersion is `git describe --tags --always --dirty` of the module, as
// `make build` stamps the binary.
func gitVersion(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		return "dev"
	}
	return strings.TrimSpace(string(out))
}
