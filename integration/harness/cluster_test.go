package harness_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestCluster runs the cluster mode with a process per Pod (python3's
// http.server, which answers on the Pod's IP) and proves what the
// integration tests rely on: the real controllers turn a Deployment into
// Ready Pods with addresses in PodCIDR, and those into an EndpointSlice with
// the controller's trigger time; a Pod's readiness flips with
// ReadyAnnotation; exec runs a local command with the Pod's environment; a
// deleted Pod's process is stopped and the ReplicaSet replaces the Pod.
func TestCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	start := time.Now()
	cp, err := harness.Start(ctx, harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Error(err)
		}
	})
	cl, err := cp.StartCluster(ctx, harness.ClusterOptions{Nodes: []harness.Node{{Name: "node-a"}, {Name: "node-b"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cl.Stop(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("control plane, controllers, scheduler and KWOK up in %v", time.Since(start).Round(time.Millisecond))
	admin := newClient(t, cp.AdminConfig())
	ns := harness.TestNamespace(t, admin)
	podDirs := t.TempDir()
	runner, err := cl.RunPods(ctx, harness.RunnerOptions{
		Namespace: ns,
		Command: func(pod *corev1.Pod) (*exec.Cmd, error) {
			// Each serves a folder holding its Pod's name at /name: KWOK
			// may give a replacement Pod the address of the one it replaces.
			dir := filepath.Join(podDirs, pod.Name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(dir, "name"), []byte(pod.Name), 0o644); err != nil {
				return nil, err
			}
			cmd := exec.Command("python3", "-m", "http.server", "--bind", pod.Status.PodIP, "8080")
			cmd.Dir = dir
			return cmd, nil
		},
		ExecEnv: func(pod *corev1.Pod) map[string]string { return map[string]string{"GREETING": "hello " + pod.Name} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := runner.Stop(); err != nil {
			t.Error(err)
		}
	})

	t.Cleanup(func() {
		if t.Failed() {
			dumpCluster(t, admin, ns, cp.Dir())
		}
	})
	labels := map[string]string{"app": "web"}
	if _, err := admin.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{
			Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080),
		}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	replicas := int32(2)
	if _, err := admin.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "web", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var slice *discoveryv1.EndpointSlice
	waitFor(ctx, t, "two ready endpoints in web's slice", func() error {
		var err error
		slice, err = serviceSlice(ctx, admin, ns, "web")
		if err != nil {
			return err
		}
		if n := readyEndpoints(slice); n != 2 {
			return fmt.Errorf("%d ready endpoints", n)
		}
		return nil
	})
	if got := slice.Labels[discoveryv1.LabelManagedBy]; got != harness.ManagedByController {
		t.Errorf("slice managed by %q, want %q", got, harness.ManagedByController)
	}
	if _, err := time.Parse(time.RFC3339Nano, slice.Annotations["endpoints.kubernetes.io/last-change-trigger-time"]); err != nil {
		t.Errorf("slice has no valid trigger time: %v", err)
	}
	_, podNet, _ := net.ParseCIDR(harness.PodCIDR)
	for _, ep := range slice.Endpoints {
		ip := net.ParseIP(ep.Addresses[0])
		if !podNet.Contains(ip) {
			t.Errorf("endpoint %s not in %s", ip, harness.PodCIDR)
		}
		// The backend really answers on the Pod's IP.
		resp, err := http.Get("http://" + net.JoinHostPort(ip.String(), "8080") + "/")
		if err != nil {
			t.Fatalf("backend of %s: %v", ep.TargetRef.Name, err)
		}
		_ = resp.Body.Close()
	}
	pod := slice.Endpoints[0].TargetRef.Name
	podIP := slice.Endpoints[0].Addresses[0]

	t.Run("Exec", func(t *testing.T) {
		out, errOut, err := harness.Exec(ctx, cp.AdminConfig(), ns, pod, harness.ExecOptions{
			Command: []string{"sh", "-c", `echo "$POD_NAME $POD_NAMESPACE $POD_IP $GREETING"; echo oops >&2`},
		})
		if err != nil {
			t.Fatalf("%v (stderr %q)", err, errOut)
		}
		if got, want := strings.TrimSpace(string(out)), pod+" "+ns+" "+podIP+" hello "+pod; got != want {
			t.Errorf("stdout %q, want %q", got, want)
		}
		if got := strings.TrimSpace(string(errOut)); got != "oops" {
			t.Errorf("stderr %q, want %q", got, "oops")
		}
		if _, _, err := harness.Exec(ctx, cp.AdminConfig(), ns, pod, harness.ExecOptions{Command: []string{"false"}}); err == nil {
			t.Error("false: no error")
		}
	})

	t.Run("Readiness", func(t *testing.T) {
		if err := harness.SetPodReady(ctx, admin, ns, pod, false); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, pod+" not ready in the slice", func() error {
			return endpointState(ctx, admin, ns, pod, false)
		})
		if err := harness.SetPodReady(ctx, admin, ns, pod, true); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, pod+" ready again", func() error {
			return endpointState(ctx, admin, ns, pod, true)
		})
	})

	t.Run("DeletedPodIsReplaced", func(t *testing.T) {
		if name, err := podAt(ctx, podIP); err != nil || name != pod {
			t.Fatalf("at %s before the delete: %q, %v; want %s", podIP, name, err, pod)
		}
		if err := admin.CoreV1().Pods(ns).Delete(ctx, pod, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// The runner stops the process on SIGTERM and deletes the Pod at
		// once, well within its 30 s grace period.
		waitFor(ctx, t, pod+" gone", func() error {
			_, err := admin.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				return nil
			case err != nil:
				return err
			}
			return errors.New("still there")
		})
		waitFor(ctx, t, "two ready endpoints again", func() error {
			s, err := serviceSlice(ctx, admin, ns, "web")
			if err != nil {
				return err
			}
			for _, ep := range s.Endpoints {
				if ep.TargetRef.Name == pod {
					return fmt.Errorf("%s still in the slice", pod)
				}
			}
			if n := readyEndpoints(s); n != 2 {
				return fmt.Errorf("%d ready endpoints", n)
			}
			return nil
		})
		// Nothing answers at its address, or the Pod that took it over.
		if name, err := podAt(ctx, podIP); err == nil && name == pod {
			t.Errorf("%s's process still answers on %s", pod, podIP)
		}
	})
}

// podAt returns the name of the Pod whose process answers at ip:8080.
func podAt(ctx context.Context, ip string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(ip, "8080")+"/name", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /name: %s", resp.Status)
	}
	return string(b), nil
}

// serviceSlice returns the Service's one EndpointSlice.
func serviceSlice(ctx context.Context, c kubernetes.Interface, ns, svc string) (*discoveryv1.EndpointSlice, error) {
	list, err := c.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return nil, err
	}
	if len(list.Items) != 1 {
		return nil, fmt.Errorf("%d slices for %s", len(list.Items), svc)
	}
	return &list.Items[0], nil
}

func readyEndpoints(s *discoveryv1.EndpointSlice) int {
	n := 0
	for _, ep := range s.Endpoints {
		if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
			n++
		}
	}
	return n
}

// endpointState checks the Pod's endpoint in its Service's slice.
func endpointState(ctx context.Context, c kubernetes.Interface, ns, pod string, ready bool) error {
	s, err := serviceSlice(ctx, c, ns, "web")
	if err != nil {
		return err
	}
	for _, ep := range s.Endpoints {
		if ep.TargetRef.Name == pod {
			if got := ep.Conditions.Ready != nil && *ep.Conditions.Ready; got != ready {
				return fmt.Errorf("ready=%t", got)
			}
			return nil
		}
	}
	return fmt.Errorf("%s not in the slice", pod)
}

// waitFor polls check every 20 ms until it returns nil, failing t with the
// last error when ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, check func() error) {
	t.Helper()
	var last error
	for {
		if last = check(); last == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %v)", what, ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dumpCluster logs the namespace's Pods and the controllers' logs, for a
// failed test.
func dumpCluster(t *testing.T, c kubernetes.Interface, ns, dir string) {
	ctx := context.Background()
	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("list pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		t.Logf("pod %s node=%q phase=%s ip=%s deleting=%v annotations=%v conditions=%v", p.Name, p.Spec.NodeName, p.Status.Phase,
			p.Status.PodIP, p.DeletionTimestamp != nil, p.Annotations, p.Status.Conditions)
	}
	for _, name := range []string{"kube-controller-manager.log", "kube-scheduler.log", "kwok.log"} {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		lines := strings.Split(string(data), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		t.Logf("--- %s ---\n%s", name, strings.Join(lines, "\n"))
	}
}
