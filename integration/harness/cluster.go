package harness

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// kwokConfig holds the Stages KWOK plays (see the file's comment).
//
//go:embed kwok.yaml
var kwokConfig []byte

// ReadyAnnotation is the Pod annotation that KWOK's stages in cluster mode
// read as the outcome of the Pod's readiness probe: "true" makes a Running
// Pod Ready, anything else or none makes it not Ready. A Runner sets "true"
// when the Pod's backend accepts connections and the annotation is absent;
// SetPodReady flips it.
const ReadyAnnotation = "switchboard.test/ready"

// Addresses in PodCIDR (which RunInNetns makes local): Pods get addresses
// from podRange, every fake Node has nodeIP, where KWOK serves the kubelet
// API.
const (
	podRange = "10.245.0.0/17"
	nodeIP   = "10.245.128.1"
)

// controllers are the kube-controller-manager controllers the cluster mode
// runs: what turns a Deployment into Pods and Pods into EndpointSlices, what
// gives every namespace its default ServiceAccount (without which no Pod is
// admitted), and what finishes deleting namespaces and owned objects.
var controllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"endpointslice-controller",
	"serviceaccount-controller",
	"namespace-controller",
	"garbage-collector-controller",
}

// execGVR is KWOK's Exec resource: how `kubectl exec` into one Pod runs.
var execGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "execs"}

// ClusterOptions configure StartCluster. The zero value is ready to use.
type ClusterOptions struct {
	// Nodes are the fake Nodes to create; nil means one, named "node-0".
	Nodes []Node
	// Log, when not nil, also receives the three programs' output. It
	// always goes to log files in the control plane's folder.
	Log io.Writer
	// StartTimeout bounds StartCluster. Zero means one minute.
	StartTimeout time.Duration
}

// Node is one fake Node of the cluster.
type Node struct {
	Name string
	// Labels are the Node's labels besides kubernetes.io/hostname, such as
	// topology.kubernetes.io/zone.
	Labels map[string]string
}

// Cluster is kube-controller-manager, kube-scheduler and KWOK running
// against a ControlPlane: Deployments make Pods, Pods are scheduled to fake
// Nodes, become Running with an address in PodCIDR and Ready as
// ReadyAnnotation says, and the EndpointSlice controller writes their
// slices. Stop it before the ControlPlane.
type Cluster struct {
	cp          *ControlPlane
	dir         string
	kubeletPort int
	procs       []*process // controller manager, scheduler, kwok
	// restartKWOK starts KWOK again in procs[kwokIndex]; waitUp uses it
	// when KWOK dies before the cluster is up (see kwokStartTries).
	restartKWOK func(try int) error
}

// kwokIndex is KWOK's place in Cluster.procs.
const kwokIndex = 2

// kwokStartTries is how many times StartCluster starts KWOK before it
// gives up. KWOK v0.8.0 sometimes dies as it starts, with "fatal error:
// concurrent map writes" in its CEL environment (github.com/wzshiming/
// easycel), seen once in eight starts here; a second start has always
// come up.
const kwokStartTries = 3

// StartCluster applies KWOK's Exec CustomResourceDefinition, starts
// kube-controller-manager (the controllers listed above, no leader
// election, no serving port), kube-scheduler and KWOK with the admin
// identity, creates the Nodes, and returns once KWOK has made every Node
// Ready and the controller manager has given namespace default its
// ServiceAccount. On error nothing it started is left running.
func (cp *ControlPlane) StartCluster(ctx context.Context, opts ClusterOptions) (_ *Cluster, err error) {
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	bins, err := locateTools(cp.toolsDir, "kube-controller-manager", "kube-scheduler", "kwok")
	if err != nil {
		return nil, err
	}
	tools, err := toolsDir(cp.toolsDir)
	if err != nil {
		return nil, err
	}
	execCRD := filepath.Join(tools, "kwok-"+KWOKVersion, "crds", "kwok.x-k8s.io_execs.yaml")

	c := &Cluster{cp: cp, dir: filepath.Join(cp.dir, "cluster")}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Stop())
		}
	}()
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	kubeconfig := filepath.Join(c.dir, "admin.kubeconfig")
	if err := cp.WriteKubeconfig(kubeconfig, AdminUser); err != nil {
		return nil, err
	}
	kwokConf := filepath.Join(c.dir, "kwok.yaml")
	if err := os.WriteFile(kwokConf, kwokConfig, 0o600); err != nil {
		return nil, fmt.Errorf("harness: write KWOK configuration: %w", err)
	}
	if c.kubeletPort, err = FreePort(); err != nil {
		return nil, err
	}
	admin, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cp.AdminConfig())
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	// KWOK watches Exec objects from its start, so their resource must be
	// served first.
	if err := applyCRD(ctx, dyn, execCRD); err != nil {
		return nil, err
	}

	kubeletAddr := net.JoinHostPort(nodeIP, strconv.Itoa(c.kubeletPort))
	for _, p := range []struct {
		name, bin string
		args      []string
	}{
		{"kube-controller-manager", bins[0], []string{
			"--kubeconfig=" + kubeconfig,
			"--controllers=" + strings.Join(controllers, ","),
			"--leader-elect=false",
			"--secure-port=0",
			"--use-service-account-credentials=false",
		}},
		{"kube-scheduler", bins[1], []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--leader-elect=false",
			"--secure-port=0",
		}},
		{"kwok", bins[2], []string{
			"--kubeconfig=" + kubeconfig,
			"--config=" + kwokConf,
			"--manage-all-nodes",
			"--cidr=" + podRange,
			"--node-ip=" + nodeIP,
			"--node-port=" + strconv.Itoa(c.kubeletPort),
			"--server-address=" + kubeletAddr,
			"--enable-crds=Exec",
		}},
	} {
		proc, err := startProcess(p.name, p.bin, p.args, nil, filepath.Join(cp.dir, p.name+".log"), opts.Log)
		if err != nil {
			return nil, err
		}
		c.procs = append(c.procs, proc)
		if p.name == "kwok" {
			c.restartKWOK = func(try int) error {
				proc, err := startProcess(p.name, p.bin, p.args, nil, filepath.Join(cp.dir, fmt.Sprintf("kwok-start-%d.log", try)), opts.Log)
				if err == nil {
					c.procs[kwokIndex] = proc
				}
				return err
			}
		}
	}

	nodes := opts.Nodes
	if nodes == nil {
		nodes = []Node{{Name: "node-0"}}
	}
	for _, n := range nodes {
		labels := map[string]string{corev1.LabelHostname: n.Name, corev1.LabelOSStable: "linux"}
		for k, v := range n.Labels {
			labels[k] = v
		}
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels}}
		created, err := admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("harness: create Node %s: %w", n.Name, err)
		}
		// The API server's TaintNodesByCondition admission taints a new
		// Node node.kubernetes.io/not-ready until the node lifecycle
		// controller sees it Ready. That controller is not run (it would
		// also evict Pods on missed heartbeats), so the taint goes here.
		if len(created.Spec.Taints) > 0 {
			created.Spec.Taints = nil
			if _, err := admin.CoreV1().Nodes().Update(ctx, created, metav1.UpdateOptions{}); err != nil {
				return nil, fmt.Errorf("harness: untaint Node %s: %w", n.Name, err)
			}
		}
	}
	if err := c.waitUp(ctx, admin, nodes, kubeletAddr); err != nil {
		return nil, err
	}
	return c, nil
}

// waitUp waits until every Node is Ready, KWOK's kubelet server accepts
// connections, and the serviceaccount controller has run.
func (c *Cluster) waitUp(ctx context.Context, admin kubernetes.Interface, nodes []Node, kubeletAddr string) error {
	var last error
	kwokTries := 1
	for {
		if c.procs[kwokIndex].exited() && kwokTries < kwokStartTries {
			kwokTries++
			if err := c.restartKWOK(kwokTries); err != nil {
				return err
			}
		}
		last = c.exited()
		if last != nil {
			return last
		}
		last = func() error {
			for _, n := range nodes {
				node, err := admin.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if !nodeReady(node) {
					return fmt.Errorf("node %s not Ready", n.Name)
				}
			}
			conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", kubeletAddr)
			if err != nil {
				return fmt.Errorf("KWOK's kubelet server: %w", err)
			}
			_ = conn.Close()
			if _, err := admin.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{}); err != nil {
				return fmt.Errorf("ServiceAccount default/default (made by kube-controller-manager): %w", err)
			}
			return nil
		}()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("harness: cluster did not come up: %w (last: %w)\n%s", ctx.Err(), last, c.logTails())
		case <-time.After(pollInterval):
		}
	}
}

// exited returns the error of a cluster program that has exited, if any.
func (c *Cluster) exited() error {
	for _, p := range c.procs {
		if p.exited() {
			return p.exitErrorOr(fmt.Errorf("%s exited with status 0\n%s", p.name, p.logTail()))
		}
	}
	return nil
}

// logTails returns the last lines of every program's log.
func (c *Cluster) logTails() string {
	var s string
	for _, p := range c.procs {
		s += p.logTail() + "\n"
	}
	return s
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Stop kills KWOK, the scheduler and the controller manager, and reports a
// program that had exited on its own. Pods and Nodes stay in the API
// server as they are.
func (c *Cluster) Stop() error {
	var errs []error
	for _, p := range c.procs {
		// SIGKILL at once: they keep no state, and the scheduler and
		// KWOK exit with status 1 on SIGTERM.
		errs = append(errs, p.stop(0))
	}
	c.procs = nil
	return errors.Join(errs...)
}

// SetPodReady sets ReadyAnnotation on the Pod to "true" or "false"; KWOK then
// makes the Pod Ready or not Ready, with a new lastTransitionTime, as a
// readiness probe that starts to pass or fail would.
func SetPodReady(ctx context.Context, c kubernetes.Interface, namespace, name string, ready bool) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, ReadyAnnotation, strconv.FormatBool(ready))
	if _, err := c.CoreV1().Pods(namespace).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("harness: set %s/%s ready=%t: %w", namespace, name, ready, err)
	}
	return nil
}

// applyCRD creates the CustomResourceDefinition in the file at path (one
// document) unless it exists, and waits until it is Established.
func applyCRD(ctx context.Context, dyn dynamic.Interface, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("harness: KWOK's CRD (run `make tools`): %w", err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("harness: %s: %w", path, err)
	}
	crd := &unstructured.Unstructured{Object: obj}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("harness: create CRD %s: %w", crd.GetName(), err)
	}
	for {
		got, err := crds.Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("harness: get CRD %s: %w", crd.GetName(), err)
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("harness: CRD %s not Established: %w", crd.GetName(), ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}
