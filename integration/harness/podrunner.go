package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// CommandFunc returns the command that plays a Pod's containers, built from
// the Pod (its name, IP, container ports, annotations), or nil for a Pod
// that runs no process. The Runner sets the command's process group,
// output and parent-death signal; everything else (program, arguments,
// environment) is the function's.
type CommandFunc func(pod *corev1.Pod) (*exec.Cmd, error)

// TestBackendCommand returns a CommandFunc that runs the testbackend program
// at bin (integration/cmd/testbackend) for every Pod with TCP container
// ports: one gRPC backend per port on the Pod's IP, each naming itself by
// the Pod's name (its x-backend header), so a call's answer says which Pod
// served it. A Pod without TCP ports runs nothing.
func TestBackendCommand(bin string) CommandFunc {
	return func(pod *corev1.Pod) (*exec.Cmd, error) {
		var listen string
		for _, port := range tcpPorts(pod) {
			if listen != "" {
				listen += ","
			}
			listen += net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(port))) + "=" + pod.Name
		}
		if listen == "" {
			return nil, nil
		}
		return exec.Command(bin, "--listen", listen), nil
	}
}

// RunnerOptions configure RunPods.
type RunnerOptions struct {
	// Command chooses each Pod's process. Required.
	Command CommandFunc
	// Namespace limits the Runner to one namespace; empty means all.
	Namespace string
}

// Runner plays the container runtime for a Cluster's Pods: a process per
// Pod, readiness and exec configuration. See RunPods.
type Runner struct {
	opts   RunnerOptions
	admin  kubernetes.Interface
	dyn    dynamic.Interface
	logDir string
	queue  workqueue.TypedRateLimitingInterface[string]
	lister func(key string) (*corev1.Pod, bool, error)
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	pods map[string]*podProcess // by namespace/name
	errs []error                // processes that exited unasked, failed calls
}

// podProcess is one Pod's process; cmd is nil for a Pod that runs none.
type podProcess struct {
	uid         types.UID
	cmd         *exec.Cmd
	exited      chan struct{} // closed when cmd has been waited for
	terminating bool
}

// RunPods starts a Runner. It watches Pods and, for each one that is Running
// with an IP and not being deleted, once per Pod UID:
//
//  1. starts opts.Command(pod) in a process group of its own, its output in
//     <namespace>.<name>.log in the control plane's folder;
//  2. creates a KWOK Exec object named after the Pod (owned by it, so the
//     garbage collector removes it), so that `kubectl exec` into the Pod
//     runs the command locally, in the Runner's working directory, with
//     POD_NAME, POD_NAMESPACE and POD_IP set;
//  3. once the process accepts TCP connections on the Pod's IP at every TCP
//     container port (a readiness probe), sets ReadyAnnotation to "true"
//     unless the Pod already has it, and KWOK makes the Pod Ready.
//
// When the Pod is being deleted it sends SIGTERM to the process group, as a
// kubelet does, waits for the process to exit (SIGKILL at the Pod's
// deletionTimestamp, the end of its grace period), then deletes the Pod with
// grace period 0, as the kubelet does once its containers have stopped.
// When the Pod is gone the process is killed. A process that exits while
// its Pod is not being deleted is an error that Stop returns.
func (c *Cluster) RunPods(ctx context.Context, opts RunnerOptions) (*Runner, error) {
	if opts.Command == nil {
		return nil, errors.New("harness: RunnerOptions.Command is required")
	}
	admin, err := kubernetes.NewForConfig(c.cp.AdminConfig())
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	dyn, err := dynamic.NewForConfig(c.cp.AdminConfig())
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &Runner{
		opts: opts, admin: admin, dyn: dyn, logDir: c.cp.dir,
		queue:  workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		cancel: cancel, done: make(chan struct{}), pods: map[string]*podProcess{},
	}
	factory := informers.NewSharedInformerFactoryWithOptions(admin, 0, informers.WithNamespace(opts.Namespace))
	inf := factory.Core().V1().Pods().Informer()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			r.queue.Add(key)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		cancel()
		return nil, fmt.Errorf("harness: %w", err)
	}
	r.lister = func(key string) (*corev1.Pod, bool, error) {
		obj, ok, err := inf.GetStore().GetByKey(key)
		if err != nil || !ok {
			return nil, ok, err
		}
		return obj.(*corev1.Pod), true, nil
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		cancel()
		return nil, errors.New("harness: pod runner: informer did not sync")
	}
	go func() {
		defer close(r.done)
		for r.processNext(ctx) {
		}
	}()
	go func() {
		<-ctx.Done()
		r.queue.ShutDown()
		factory.Shutdown()
	}()
	return r, nil
}

// Stop stops watching, kills every process the Runner started and returns
// the errors it met: processes that exited while their Pod was not being
// deleted, and API calls that failed.
func (r *Runner) Stop() error {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, p := range r.pods {
		p.kill()
		delete(r.pods, key)
	}
	return errors.Join(r.errs...)
}

func (r *Runner) processNext(ctx context.Context) bool {
	key, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(key)
	if err := r.sync(ctx, key); err != nil && ctx.Err() == nil {
		r.queue.AddRateLimited(key)
		return true
	}
	r.queue.Forget(key)
	return true
}

// sync brings the process of the Pod at key in line with the Pod.
func (r *Runner) sync(ctx context.Context, key string) error {
	pod, exists, err := r.lister(key)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.pods[key]
	if cur != nil && (!exists || cur.uid != pod.UID) {
		cur.kill()
		delete(r.pods, key)
		cur = nil
	}
	switch {
	case !exists:
		return nil
	case pod.DeletionTimestamp != nil:
		if cur != nil && !cur.terminating {
			cur.terminating = true
			go r.terminate(ctx, pod, cur)
		}
		return nil
	case cur != nil || pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "":
		return nil
	}
	p, err := r.start(ctx, pod)
	if err != nil {
		r.errs = append(r.errs, err)
		return nil
	}
	r.pods[key] = p
	go r.becomeReady(ctx, pod, p)
	return nil
}

// start runs the Pod's command and creates its Exec object.
func (r *Runner) start(ctx context.Context, pod *corev1.Pod) (*podProcess, error) {
	p := &podProcess{uid: pod.UID, exited: make(chan struct{})}
	cmd, err := r.opts.Command(pod)
	if err != nil {
		return nil, fmt.Errorf("harness: command for Pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if err := r.createExec(ctx, pod); err != nil {
		return nil, err
	}
	if cmd == nil {
		close(p.exited)
		return p, nil
	}
	logPath := filepath.Join(r.logDir, pod.Namespace+"."+pod.Name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("harness: start Pod %s/%s's process: %w", pod.Namespace, pod.Name, err)
	}
	p.cmd = cmd
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		close(p.exited)
		r.mu.Lock()
		defer r.mu.Unlock()
		if !p.terminating && r.pods[pod.Namespace+"/"+pod.Name] == p {
			r.errs = append(r.errs, fmt.Errorf("harness: Pod %s/%s's process exited while the Pod was not being deleted: %w (log %s)",
				pod.Namespace, pod.Name, err, logPath))
		}
	}()
	return p, nil
}

// createExec creates the KWOK Exec object for the Pod.
func (r *Runner) createExec(ctx context.Context, pod *corev1.Pod) error {
	env := []any{
		map[string]any{"name": "POD_NAME", "value": pod.Name},
		map[string]any{"name": "POD_NAMESPACE", "value": pod.Namespace},
		map[string]any{"name": "POD_IP", "value": pod.Status.PodIP},
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "Exec",
		"metadata": map[string]any{
			"name":      pod.Name,
			"namespace": pod.Namespace,
			"ownerReferences": []any{map[string]any{
				"apiVersion": "v1", "kind": "Pod", "name": pod.Name, "uid": string(pod.UID),
			}},
		},
		"spec": map[string]any{"execs": []any{map[string]any{"local": map[string]any{"envs": env}}}},
	}}
	_, err := r.dyn.Resource(execGVR).Namespace(pod.Namespace).Create(ctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// A Pod of the same name before this one: replace its Exec.
		err = r.dyn.Resource(execGVR).Namespace(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			_, err = r.dyn.Resource(execGVR).Namespace(pod.Namespace).Create(ctx, obj, metav1.CreateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("harness: create Exec for Pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// becomeReady probes the Pod's TCP ports until each accepts a connection,
// then sets ReadyAnnotation unless the Pod has it.
func (r *Runner) becomeReady(ctx context.Context, pod *corev1.Pod, p *podProcess) {
	for _, port := range tcpPorts(pod) {
		addr := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(port)))
		for {
			conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
			if err == nil {
				_ = conn.Close()
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-p.exited:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	// A resourceVersion in the patch makes it conditional: a test that set
	// the annotation meanwhile wins.
	for ctx.Err() == nil {
		cur, err := r.admin.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil || cur.UID != pod.UID || cur.DeletionTimestamp != nil {
			return
		}
		if _, ok := cur.Annotations[ReadyAnnotation]; ok {
			return
		}
		patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q,"annotations":{%q:"true"}}}`, cur.ResourceVersion, ReadyAnnotation)
		_, err = r.admin.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if !apierrors.IsConflict(err) {
			if err != nil && ctx.Err() == nil {
				r.fail(fmt.Errorf("harness: mark Pod %s/%s ready: %w", pod.Namespace, pod.Name, err))
			}
			return
		}
	}
}

// terminate stops a deleted Pod's process as the kubelet would, then deletes
// the Pod for good.
func (r *Runner) terminate(ctx context.Context, pod *corev1.Pod, p *podProcess) {
	if p.cmd != nil {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		deadline := time.Until(pod.DeletionTimestamp.Time)
		select {
		case <-p.exited:
		case <-time.After(deadline):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.exited
		case <-ctx.Done():
			return
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	zero := int64(0)
	uid := pod.UID
	err := r.admin.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
		r.fail(fmt.Errorf("harness: delete terminated Pod %s/%s: %w", pod.Namespace, pod.Name, err))
	}
}

func (r *Runner) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

// kill sends SIGKILL to the process group, if any, and waits for it.
func (p *podProcess) kill() {
	if p.cmd == nil {
		return
	}
	p.terminating = true
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// tcpPorts returns the Pod's TCP container ports, in order.
func tcpPorts(pod *corev1.Pod) []int32 {
	var ports []int32
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
				ports = append(ports, p.ContainerPort)
			}
		}
	}
	return ports
}
