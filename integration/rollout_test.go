package integration

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/switchboard-xds/switchboard/integration/clients"
	"github.com/switchboard-xds/switchboard/integration/harness"
)

// clusterEnv is the package's second control plane, in cluster mode, with a
// Runner that starts a testbackend per Pod. It is apart from controlPlane's:
// there, tests write EndpointSlices by hand with the controller's managed-by
// label, which a running EndpointSlice controller would take over.
var clusterEnv struct {
	once    sync.Once
	cp      *harness.ControlPlane
	cluster *harness.Cluster
	runner  *harness.Runner
	admin   kubernetes.Interface
	err     error
}

// clusterPlane starts (once) the cluster-mode control plane and returns it
// with an admin client. Pods run integration/cmd/testbackend.
func clusterPlane(t *testing.T) (*harness.ControlPlane, kubernetes.Interface) {
	t.Helper()
	switchboardBinary(t) // makes env.dir
	clusterEnv.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		backend := filepath.Join(env.dir, "testbackend")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", backend, "github.com/switchboard-xds/switchboard/integration/cmd/testbackend").CombinedOutput(); err != nil {
			clusterEnv.err = &buildError{out: string(out), err: err}
			return
		}
		if clusterEnv.cp, clusterEnv.err = harness.Start(ctx, harness.Options{}); clusterEnv.err != nil {
			return
		}
		nodes := []harness.Node{
			{Name: "node-a", Labels: map[string]string{corev1.LabelTopologyZone: "z1"}},
			{Name: "node-b", Labels: map[string]string{corev1.LabelTopologyZone: "z2"}},
		}
		if clusterEnv.cluster, clusterEnv.err = clusterEnv.cp.StartCluster(ctx, harness.ClusterOptions{Nodes: nodes}); clusterEnv.err != nil {
			return
		}
		if clusterEnv.runner, clusterEnv.err = clusterEnv.cluster.RunPods(ctx, harness.RunnerOptions{Command: harness.TestBackendCommand(backend)}); clusterEnv.err != nil {
			return
		}
		clusterEnv.admin, clusterEnv.err = kubernetes.NewForConfig(clusterEnv.cp.AdminConfig())
	})
	if clusterEnv.err != nil {
		t.Fatalf("cluster: %v", clusterEnv.err)
	}
	return clusterEnv.cp, clusterEnv.admin
}

// TestRollout runs rollouts through the real Deployment, ReplicaSet and
// EndpointSlice controllers, with Pods played by KWOK and served by real
// backend processes, under each of the three clients calling without pause:
// scale up and down, a rolling update, a Pod made unready and ready again, a
// Pod deleted, a Service's selector moved to another Deployment. No call may
// fail. A deleted Pod's backend gets SIGTERM as its endpoint turns
// terminating, and drains as a gRPC server should (GracefulStop: GOAWAY,
// in-flight calls finish), so clients move their calls before it is gone.
// Each step logs convergence: the client-side time from the API write to
// the calls' move, and Switchboard's switchboard_convergence_seconds{type=
// "eds"} over the step (from the controller's last-change-trigger-time, or
// from when Switchboard saw the slice when the controller wrote none).
func TestRollout(t *testing.T) {
	bin, runner := binaries(t)
	cp, admin := clusterPlane(t)
	eachClusterClient(t, cp, bin, func(t *testing.T, sb *switchboard, kind clients.Kind) {
		rolloutStory(t, admin, sb, runner, kind)
	})
}

// eachClusterClient runs f for each client kind in parallel (eachClient),
// each with a Switchboard of its own reading the cluster's API server with
// its least-privilege identity.
func eachClusterClient(t *testing.T, cp *harness.ControlPlane, bin string, f func(t *testing.T, sb *switchboard, kind clients.Kind)) {
	eachClient(t, func(t *testing.T, kind clients.Kind) {
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		if err := cp.WriteKubeconfig(kubeconfig, harness.SwitchboardUser); err != nil {
			t.Fatal(err)
		}
		f(t, startSwitchboard(t, bin, "--kubeconfig", kubeconfig), kind)
	})
}

// rollout is one client's rollout story in a namespace of its own.
type rollout struct {
	t     *testing.T
	ctx   context.Context
	admin kubernetes.Interface
	sb    *switchboard
	ns    string
	p     *clients.Process
	kind  clients.Kind
	// spread is the Pods the client's calls were last spread over.
	spread []string
}

// newRollout makes a namespace with the Service greeter (port 50051)
// selecting app=<app>.
func newRollout(t *testing.T, ctx context.Context, admin kubernetes.Interface, sb *switchboard, kind clients.Kind, app string) *rollout {
	r := &rollout{t: t, ctx: ctx, admin: admin, sb: sb, ns: harness.TestNamespace(t, admin), kind: kind}
	if _, err := admin.CoreV1().Services(r.ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "greeter"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Name: "grpc", Port: grpcPort, TargetPort: intstr.FromInt32(grpcPort)}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return r
}

// startClient starts a client of r's kind calling greeter with o (Target and
// Bootstrap are filled in), stopped when the test ends.
func (r *rollout) startClient(runner *clients.Runner, o clients.Options) *clients.Process {
	r.t.Helper()
	o.Target = "xds:///greeter." + r.ns + ".svc.cluster.local:50051"
	o.Bootstrap = r.sb.bootstrap(r.t.Name())
	p, err := runner.Start(r.ctx, r.kind, o)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = p.Stop() })
	return p
}

func rolloutStory(t *testing.T, admin kubernetes.Interface, sb *switchboard, runner *clients.Runner, kind clients.Kind) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := newRollout(t, ctx, admin, sb, kind, "greeter")
	r.deploy("greeter", 2, nil)
	pods := r.waitRollout("greeter", 2)
	p := r.startClient(runner, clients.Options{})
	r.p = p
	if _, err := p.WaitOK(ctx); err != nil {
		t.Fatalf("first call: %v", err)
	}
	// Every call from the first success on must succeed.
	from := p.Len() - 1
	if _, err := p.WaitSpread(ctx, 40, pods...); err != nil {
		t.Fatal(err)
	}
	r.spread = pods

	r.step("scale up 2→4", func() []string {
		r.scale("greeter", 4)
		return r.waitRollout("greeter", 4)
	})
	r.step("scale down 4→2", func() []string {
		r.scale("greeter", 2)
		return r.waitRollout("greeter", 2)
	})
	r.step("rolling update (maxSurge 1, maxUnavailable 0)", func() []string {
		r.patchDeployment("greeter", `{"spec":{"template":{"metadata":{"annotations":{"switchboard.test/revision":"2"}}}}}`)
		return r.waitRollout("greeter", 2)
	})
	pods = r.readyPods("app=greeter")
	r.step("pod made unready", func() []string {
		if err := harness.SetPodReady(ctx, admin, r.ns, pods[0], false); err != nil {
			t.Fatal(err)
		}
		return pods[1:]
	})
	r.step("pod ready again", func() []string {
		if err := harness.SetPodReady(ctx, admin, r.ns, pods[0], true); err != nil {
			t.Fatal(err)
		}
		return pods
	})
	r.step("pod deleted", func() []string {
		if err := admin.CoreV1().Pods(r.ns).Delete(ctx, pods[0], metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		return r.waitRollout("greeter", 2)
	})
	r.deploy("greeter-v2", 2, nil)
	r.waitRollout("greeter-v2", 2)
	r.step("service selector moved to greeter-v2", func() []string {
		patch := `{"spec":{"selector":{"app":"greeter-v2"}}}`
		if _, err := admin.CoreV1().Services(r.ns).Patch(ctx, "greeter", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		return r.readyPods("app=greeter-v2")
	})

	var failed []clients.Result
	for _, res := range p.Results()[from:] {
		if !res.OK() {
			failed = append(failed, res)
		}
	}
	t.Logf("%s: %d calls from the first success, %d failed", kind, p.Len()-from, len(failed))
	if len(failed) > 0 {
		t.Errorf("%d calls failed during the rollouts (%s); first: %v", len(failed), kind, failed[:min(len(failed), 10)])
	}
}

// step runs change, which returns the Pods that should answer afterwards,
// waits until the client's calls are spread over exactly those, and logs
// how long that took, every slice write the controller made meanwhile (with
// its trigger time), and what Switchboard measured.
func (r *rollout) step(what string, change func() []string) {
	r.t.Helper()
	before := scrapeHistogram(r.t, r.sb, "eds")
	old := r.spread
	writes := watchSlices(r.t, r.ctx, r.admin, r.ns, "greeter")
	from := r.p.Len()
	t0 := time.Now()
	want := change()
	controllers := time.Since(t0)
	rs, err := r.p.WaitFor(r.ctx, from, clients.Spread(20*len(want), want...))
	if err != nil {
		r.t.Fatalf("%s (%s): calls not spread over %v: %v", what, r.kind, want, err)
	}
	r.spread = want
	// The client had moved once every new Pod had answered and no removed
	// one answered any more.
	var moved time.Duration
	for _, b := range old {
		if !slices.Contains(want, b) {
			if last, ok := clients.LastFrom(rs, b); ok {
				moved = max(moved, last.T.Sub(t0))
			}
		}
	}
	for _, b := range want {
		if slices.Contains(old, b) {
			continue
		}
		if first := slices.IndexFunc(rs, func(res clients.Result) bool { return res.OK() && res.Backend == b }); first >= 0 {
			moved = max(moved, rs[first].T.Sub(t0))
		}
	}
	// The ACK that Switchboard observes may trail the calls a little.
	var h histogram
	for deadline := time.Now().Add(5 * time.Second); ; {
		if h = scrapeHistogram(r.t, r.sb, "eds").minus(before); h.count > 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-r.ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	r.t.Logf("rollout %s %s: calls moved to %d pods %v after the API write (controllers done at %v); "+
		"switchboard_convergence_seconds{type=\"eds\"} over the step: %d observations, p50 %.0f ms, p99 %.0f ms; slice writes: %s",
		r.kind, what, len(want), moved.Round(time.Millisecond), controllers.Round(time.Millisecond),
		h.count, h.quantile(0.5)*1e3, h.quantile(0.99)*1e3, writes(t0))
}

// watchSlices watches the Service's EndpointSlices from now on. The
// returned func stops the watch and describes every write since: when it
// arrived, its ready endpoints and its trigger time, relative to t0.
func watchSlices(t *testing.T, ctx context.Context, c kubernetes.Interface, ns, svc string) func(t0 time.Time) string {
	t.Helper()
	list, err := c.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.DiscoveryV1().EndpointSlices(ns).Watch(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc, ResourceVersion: list.ResourceVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	type write struct {
		at    time.Time
		typ   watch.EventType
		slice *discoveryv1.EndpointSlice
	}
	var writes []write
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if es, ok := ev.Object.(*discoveryv1.EndpointSlice); ok {
				writes = append(writes, write{time.Now(), ev.Type, es})
			}
		}
	}()
	return func(t0 time.Time) string {
		w.Stop()
		<-done
		out := make([]string, 0, len(writes))
		for _, wr := range writes {
			trig := "none"
			if v, ok := wr.slice.Annotations[corev1.EndpointsLastChangeTriggerTime]; ok {
				if at, err := time.Parse(time.RFC3339Nano, v); err == nil {
					trig = at.Sub(t0).Round(time.Millisecond).String()
				}
			}
			ready := 0
			for _, ep := range wr.slice.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					ready++
				}
			}
			out = append(out, fmt.Sprintf("[+%v %s %d/%d ready, trigger %s]", wr.at.Sub(t0).Round(time.Millisecond), wr.typ, ready, len(wr.slice.Endpoints), trig))
		}
		if len(out) == 0 {
			return "none"
		}
		return strings.Join(out, " ")
	}
}

// deploy creates a Deployment of the testbackend on port 50051, its Pods
// labelled app=name and annotated with annotations, rolling out with
// maxSurge 1 and maxUnavailable 0.
func (r *rollout) deploy(name string, replicas int32, annotations map[string]string) {
	r.t.Helper()
	labels := map[string]string{"app": name}
	maxSurge, maxUnavailable := intstr.FromInt32(1), intstr.FromInt32(0)
	grace := int64(10)
	_, err := r.admin.AppsV1().Deployments(r.ns).Create(r.ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &maxSurge, MaxUnavailable: &maxUnavailable},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name: "greeter", Image: "testbackend",
						Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: grpcPort}},
					}},
				},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *rollout) scale(name string, replicas int32) {
	r.t.Helper()
	r.patchDeployment(name, fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas))
}

func (r *rollout) patchDeployment(name, patch string) {
	r.t.Helper()
	if _, err := r.admin.AppsV1().Deployments(r.ns).Patch(r.ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

// waitRollout waits until the Deployment has rolled out completely (every
// replica updated and available, no old or terminating Pod left) and
// returns its ready Pods.
func (r *rollout) waitRollout(name string, replicas int32) []string {
	r.t.Helper()
	for {
		d, err := r.admin.AppsV1().Deployments(r.ns).Get(r.ctx, name, metav1.GetOptions{})
		if err != nil {
			r.t.Fatal(err)
		}
		s := d.Status
		if s.ObservedGeneration == d.Generation && s.Replicas == replicas && s.UpdatedReplicas == replicas &&
			s.AvailableReplicas == replicas && s.ReadyReplicas == replicas {
			all, err := r.admin.CoreV1().Pods(r.ns).List(r.ctx, metav1.ListOptions{LabelSelector: "app=" + name})
			if err != nil {
				r.t.Fatal(err)
			}
			if ready := r.readyPods("app=" + name); len(all.Items) == int(replicas) && len(ready) == int(replicas) {
				return ready
			}
		}
		select {
		case <-r.ctx.Done():
			r.t.Fatalf("Deployment %s did not roll out to %d: %+v", name, replicas, s)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readyPods returns the names of the Ready Pods that match selector and are
// not being deleted, sorted.
func (r *rollout) readyPods(selector string) []string {
	r.t.Helper()
	list, err := r.admin.CoreV1().Pods(r.ns).List(r.ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		r.t.Fatal(err)
	}
	var names []string
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				names = append(names, p.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}
