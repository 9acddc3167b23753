// Package harness runs a real Kubernetes control plane, etcd and
// kube-apiserver built by `make tools`, for Switchboard's integration tests.
//
// A test package starts one control plane in TestMain or in its one top-level
// test, and runs inside a network namespace of its own (RunInNetns) so that
// EndpointSlices can name 10.244.x.y addresses that test backends really
// listen on. The API server runs with RBAC authorization and two static-token
// identities: AdminUser (system:masters) for setting up fixtures, and
// SwitchboardUser, a token of the ServiceAccount switchboard-system/switchboard
// bound only by the committed deploy/kubernetes/base/rbac.yaml, for running
// Switchboard the way a cluster would.
//
// By default no controllers run: nothing creates EndpointSlices (tests do,
// with the helpers in objects.go), and deleted namespaces never finish
// terminating, so every test works in a namespace of its own.
//
// # Cluster mode
//
// ControlPlane.StartCluster adds what turns workloads into endpoints:
// kube-controller-manager (the Deployment, ReplicaSet, EndpointSlice,
// ServiceAccount, namespace and garbage-collector controllers; no node
// lifecycle controller, so nothing evicts), kube-scheduler, and KWOK, which
// plays the kubelet of every fake Node (ClusterOptions.Nodes) with the
// Stages in kwok.yaml. A scheduled Pod at once becomes Running with an IP
// from the lower half of PodCIDR (10.245.0.0/17; RunInNetns makes all of
// PodCIDR local, so a process can bind any such IP), not Ready. It becomes
// Ready when its annotation ReadyAnnotation (switchboard.test/ready) is
// "true" and not Ready when it is anything else: that is the readiness
// probe, and a test flips it with SetPodReady. Each flip writes a new Ready
// lastTransitionTime, which the EndpointSlice controller copies into the
// slice's endpoints.kubernetes.io/last-change-trigger-time (whole seconds:
// metav1.Time has no finer precision). A deleted Pod goes at its
// deletionTimestamp unless a Runner ends it sooner.
//
// Cluster.RunPods starts a Runner, the container runtime: for every Running
// Pod with an IP it starts a real process from RunnerOptions.Command, a
// function from the Pod to an exec.Cmd (TestBackendCommand: the testbackend
// program, one gRPC backend on the Pod's IP per TCP container port, named
// by the Pod), marks the Pod ready once every TCP container port accepts
// connections, sends SIGTERM when the Pod is deleted and deletes it when the
// process has exited. It also creates a KWOK Exec object per Pod, so that
// pods/exec (Exec, or `kubectl exec`) runs the command on this machine with
// POD_NAME, POD_NAMESPACE and POD_IP set: the API server reaches KWOK's
// kubelet server at the Node's InternalIP (10.245.128.1, in PodCIDR) and,
// with no kubelet CA configured, does not verify its self-signed
// certificate.
//
// Give the cluster mode a control plane of its own: the EndpointSlice
// controller takes over every slice labelled as its own (NewEndpointSlice
// does) and rewrites it from Pods. Stop the Runner, then the Cluster, then
// the ControlPlane.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Versions of the binaries the harness expects; hack/tools/install.sh builds
// exactly these.
const (
	KubernetesVersion = "1.37.2"
	EtcdVersion       = "3.6.16"
	KWOKVersion       = "0.8.0"
)

// ToolsDirEnv names the environment variable that overrides where the
// binaries are: a folder holding bin/kube-apiserver and bin/etcd (and, for
// StartCluster, bin/kube-controller-manager, bin/kube-scheduler, bin/kwok and
// kwok-<version>/crds/).
const ToolsDirEnv = "SWITCHBOARD_TOOLS_DIR"

// Options configure Start. The zero value is ready to use.
type Options struct {
	// ToolsDir holds bin/kube-apiserver and bin/etcd (and what StartCluster
	// needs). Empty means
	// $SWITCHBOARD_TOOLS_DIR, else DefaultToolsDir().
	ToolsDir string
	// RBACFile is the manifest whose Namespace, ServiceAccount, ClusterRole
	// and bindings are applied before Start returns; it must hold the
	// ServiceAccount switchboard-system/switchboard, whose token
	// SwitchboardUser is. Empty means deploy/kubernetes/base/rbac.yaml in the
	// enclosing Switchboard module, found by walking up from the working
	// directory.
	RBACFile string
	// Log, when not nil, also receives etcd's and the API server's output.
	// It always goes to log files in the control plane's temporary folder,
	// and the last lines are quoted in errors.
	Log io.Writer
	// StartTimeout bounds Start, including the wait for /readyz. Zero means
	// one minute.
	StartTimeout time.Duration
}

// ControlPlane is a running etcd and kube-apiserver. Its methods are safe for
// concurrent use; Stop must be called once, after which only Dir and URL may
// be used.
type ControlPlane struct {
	dir    string // temporary folder for data, certs, logs
	url    string // https://127.0.0.1:port
	caData []byte // PEM bundle that verifies the API server's certificate
	creds  credentials
	etcd   *process
	// apiserverBin and apiserverArgs (without --secure-port and
	// --cert-dir) start an API server on this etcd, for StartAPIServer
	// and SecondAPIServer.
	apiserverBin  string
	apiserverArgs []string
	port          int
	toolsDir      string // Options.ToolsDir, for StartCluster

	mu        sync.Mutex // guards apiserver
	apiserver *process
}

// DefaultToolsDir returns where `make tools` installs the binaries:
// ${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/k8s-<version>-etcd-<version>.
func DefaultToolsDir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locate cache folder: %w", err)
	}
	return filepath.Join(cache, "switchboard", "k8s-"+KubernetesVersion+"-etcd-"+EtcdVersion), nil
}

// Start runs etcd and kube-apiserver on free loopback ports, waits until the
// API server's /readyz passes, applies the RBAC manifest, gets a token for
// its ServiceAccount (SwitchboardUser) through the TokenRequest API, and waits for the
// Service default/kubernetes that the API server makes itself. It fails with
// an error naming `make tools` when the binaries are missing; it never skips.
//
// The temporary folder is made under $SWITCHBOARD_HARNESS_TMPDIR when set (as
// RunInNetns does, so the folder goes even when the test binary panics), else
// under os.TempDir(). On error nothing is left running.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	etcdBin, apiserverBin, err := locateBinaries(opts.ToolsDir)
	if err != nil {
		return nil, err
	}
	rbacFile := opts.RBACFile
	if rbacFile == "" {
		if rbacFile, err = findRBACFile(); err != nil {
			return nil, err
		}
	}

	dir, err := os.MkdirTemp(os.Getenv(tmpDirEnv), "switchboard-harness-")
	if err != nil {
		return nil, fmt.Errorf("make temporary folder: %w", err)
	}
	cp := &ControlPlane{dir: dir, toolsDir: opts.ToolsDir}
	defer func() {
		if err != nil {
			// A process that failed has its log quoted in err already.
			_ = cp.kill()
			err = errors.Join(err, cp.removeDir())
		}
	}()

	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	cp.url = "https://127.0.0.1:" + strconv.Itoa(ports[2])

	cp.etcd, err = startProcess("etcd", etcdBin, []string{
		"--name=harness",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=harness=" + peerURL,
		// The data is thrown away with the folder; fsync only costs time.
		"--unsafe-no-fsync",
		// One member on loopback: elect it in about 0.1 s, not 1 s.
		"--heartbeat-interval=10",
		"--election-timeout=100",
		"--log-level=warn",
	}, nil, filepath.Join(dir, "etcd.log"), opts.Log)
	if err != nil {
		return nil, err
	}

	creds, tokenFile, saPub, saKey, err := writeCredentials(dir)
	if err != nil {
		return nil, err
	}
	cp.creds = creds
	certDir := filepath.Join(dir, "certs")
	cp.apiserverBin, cp.port = apiserverBin, ports[2]
	cp.apiserverArgs = []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		// A loopback advertise address is refused by the endpoints
		// reconciler, so it is switched off; nothing here needs the
		// default/kubernetes endpoints.
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--authorization-mode=RBAC",
		"--anonymous-auth=false",
		"--token-auth-file=" + tokenFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		// StartCluster's Nodes have only an InternalIP, where KWOK serves
		// the kubelet API (exec); it has a self-signed certificate, and
		// with no --kubelet-certificate-authority the API server does not
		// verify it.
		"--kubelet-preferred-address-types=InternalIP",
		"--profiling=false",
	}
	cp.apiserver, err = cp.startAPIServerProcess(cp.port, certDir, "kube-apiserver.log", opts.Log)
	if err != nil {
		return nil, err
	}
	// The API server spends its first seconds loading and building its
	// handlers before it connects to etcd, so both start at once; it
	// retries until etcd answers anyway.
	if err := waitHTTP(ctx, cp.etcd, &http.Client{}, etcdURL+"/health"); err != nil {
		return nil, fmt.Errorf("etcd did not become healthy: %w", err)
	}
	if cp.caData, err = waitServingCA(ctx, cp.apiserver, certDir); err != nil {
		return nil, err
	}
	if err := cp.waitReady(ctx, cp.apiserver, cp.AdminConfig()); err != nil {
		return nil, err
	}

	admin, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		return nil, fmt.Errorf("build admin client: %w", err)
	}
	if err := ApplyRBAC(ctx, admin, rbacFile); err != nil {
		return nil, err
	}
	if cp.creds.tokens[SwitchboardUser], err = serviceAccountToken(ctx, admin); err != nil {
		return nil, err
	}
	// /readyz passes once the API server's bootstrap controller has
	// started, not once it has made the default namespace and
	// default/kubernetes; wait, so that tests start from a settled cluster.
	if err := waitDefaultService(ctx, cp.apiserver, admin); err != nil {
		return nil, err
	}
	return cp, nil
}

// Stop kills etcd and the API server with their process groups and removes
// the temporary folder. It reports a process that had exited on its own
// before Stop (with its log), and a folder it could not remove; the control
// plane is gone either way. Stop is for the one owner of the control plane,
// called once.
func (cp *ControlPlane) Stop() error {
	return errors.Join(cp.kill(), cp.removeDir())
}

// kill stops the processes that were started.
func (cp *ControlPlane) kill() error {
	var errs []error
	// The API server first, so it does not log etcd connection errors. It
	// gets SIGKILL at once: its graceful termination takes over a second and
	// protects nothing here, where all state is thrown away. etcd stops on
	// SIGTERM in tens of milliseconds.
	cp.mu.Lock()
	if cp.apiserver != nil {
		errs = append(errs, cp.apiserver.stop(0))
	}
	cp.mu.Unlock()
	if cp.etcd != nil {
		errs = append(errs, cp.etcd.stop(time.Second))
	}
	return errors.Join(errs...)
}

// removeDir removes the temporary folder.
func (cp *ControlPlane) removeDir() error {
	if err := os.RemoveAll(cp.dir); err != nil {
		return fmt.Errorf("remove %s: %w", cp.dir, err)
	}
	return nil
}

// Dir returns the control plane's temporary folder, which holds etcd.log and
// kube-apiserver.log until Stop.
func (cp *ControlPlane) Dir() string { return cp.dir }

// URL returns the API server's address, https://127.0.0.1:PORT.
func (cp *ControlPlane) URL() string { return cp.url }

// AdminConfig returns a new rest.Config for AdminUser (system:masters),
// verifying the API server against its own self-signed CA.
func (cp *ControlPlane) AdminConfig() *rest.Config {
	cfg, _ := cp.UserConfig(AdminUser) // AdminUser always exists
	return cfg
}

// UserConfig returns a new rest.Config for AdminUser or SwitchboardUser.
func (cp *ControlPlane) UserConfig(user string) (*rest.Config, error) {
	tok, ok := cp.creds.tokens[user]
	if !ok {
		return nil, fmt.Errorf("harness: unknown user %q (want %q or %q)", user, AdminUser, SwitchboardUser)
	}
	return &rest.Config{
		Host:            cp.url,
		BearerToken:     tok,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), cp.caData...)},
		// Tests create objects in bursts; the client-side default of 5 QPS
		// would make them wait, and the API server is ours alone.
		QPS:   1000,
		Burst: 2000,
	}, nil
}

// freePorts returns n distinct TCP ports that were free on 127.0.0.1 a moment
// ago (see FreePort).
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		p, err := FreePort()
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ports = append(ports, p)
	}
	return ports, nil
}
