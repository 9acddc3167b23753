package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// TestDeployProxylessManifests renders deploy/proxyless (a proxyless gRPC
// client whose init container writes its xDS bootstrap) with kustomize's
// API, creates its Namespace for real and dry-runs every object with strict
// field validation, failing on a rejection or a warning (the namespace
// enforces the "restricted" Pod Security Standard). It then checks the
// example's premise on the real API server: a pod of that template bound to
// a Node with topology labels gets those labels (PodTopologyLabels
// admission), and the init container's command, run with the env the
// kubelet would give it from that pod, writes a bootstrap with the pod's
// node id, namespace and zone, at the path GRPC_XDS_BOOTSTRAP names, for
// the Service deploy/kubernetes installs.
func TestDeployProxylessManifests(t *testing.T) {
	bin := switchboardBinary(t)
	cp, admin := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, file, _, _ := runtime.Caller(0)
	deploy := filepath.Join(filepath.Dir(file), "..", "deploy")
	objs := render(t, filepath.Join(deploy, "proxyless"))
	warnings, dyn, mapper := dryRunClients(t, cp)

	nsGVR := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	var ns string
	for _, o := range objs {
		if o.GetKind() != "Namespace" {
			continue
		}
		ns = o.GetName()
		if _, err := dyn.Resource(nsGVR).Create(ctx, o, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}); err != nil {
			t.Fatalf("create %s: %v", objectID(o), err)
		}
		t.Cleanup(func() { _ = dyn.Resource(nsGVR).Delete(context.Background(), o.GetName(), metav1.DeleteOptions{}) })
	}
	dryRunAll(ctx, t, "", warnings, dyn, mapper, objs)

	var dep appsv1.Deployment
	decodeOne(t, objs, "Deployment", &dep)
	var svc corev1.Service
	decodeOne(t, render(t, filepath.Join(deploy, "kubernetes")), "Service", &svc)

	// A pod of the template, bound to a zoned Node (no kubelet runs: it
	// stays Pending, which is all the API server's part needs).
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "proxyless-node", Labels: map[string]string{
		corev1.LabelTopologyZone: "zone-a", corev1.LabelTopologyRegion: "region-1",
	}}}
	if _, err := admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	// No controller manager creates the namespace's default ServiceAccount.
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: dep.Spec.Template.ObjectMeta, Spec: dep.Spec.Template.Spec}
	pod.Name, pod.Namespace, pod.Spec.NodeName = "greeter-client-0", ns, node.Name
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create a pod of the Deployment's template: %v", err)
	}
	t.Cleanup(func() {
		_ = admin.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
	if pod.Labels[corev1.LabelTopologyZone] != "zone-a" || pod.Labels[corev1.LabelTopologyRegion] != "region-1" {
		t.Fatalf("the pod bound to %s has labels %v: the API server did not copy the Node's topology labels", node.Name, pod.Labels)
	}

	if len(pod.Spec.InitContainers) != 1 || len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one init container and one app container, have %d and %d", len(pod.Spec.InitContainers), len(pod.Spec.Containers))
	}
	init, app := pod.Spec.InitContainers[0], pod.Spec.Containers[0]
	args := expandArgs(t, pod, init)
	out := filepath.Join(t.TempDir(), "bootstrap.json")
	var inPod string
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--output="); ok {
			inPod, args[i] = v, "--output="+out
		}
	}
	if inPod == "" {
		t.Fatalf("init container args %q have no --output=", args)
	}
	if got := envValue(app, "GRPC_XDS_BOOTSTRAP"); got != inPod {
		t.Errorf("the app's GRPC_XDS_BOOTSTRAP is %q, the init container writes %q", got, inPod)
	}
	if m, ok := mountOf(init, path.Dir(inPod)); !ok || m.ReadOnly {
		t.Errorf("the init container does not mount %s writable: %+v", path.Dir(inPod), init.VolumeMounts)
	} else if am, ok := mountOf(app, path.Dir(inPod)); !ok || am.Name != m.Name {
		t.Errorf("the app does not mount volume %q at %s: %+v", m.Name, path.Dir(inPod), app.VolumeMounts)
	}
	if b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("the init container's command %q: %v\n%s", args, err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var bs struct {
		XDSServers []struct {
			ServerURI string `json:"server_uri"`
		} `json:"xds_servers"`
		Node struct {
			ID       string            `json:"id"`
			Locality map[string]string `json:"locality"`
			Metadata map[string]string `json:"metadata"`
		} `json:"node"`
	}
	if err := json.Unmarshal(raw, &bs); err != nil {
		t.Fatal(err)
	}
	wantServer := fmt.Sprintf("%s.%s.svc:%d", svc.Name, svc.Namespace, xdsPort(t, &svc))
	if len(bs.XDSServers) != 1 || bs.XDSServers[0].ServerURI != wantServer {
		t.Errorf("xds_servers %+v, want %s (deploy/kubernetes' Service)", bs.XDSServers, wantServer)
	}
	if want := pod.Name + "." + ns; bs.Node.ID != want {
		t.Errorf("node id %q, want %q", bs.Node.ID, want)
	}
	if bs.Node.Locality["zone"] != "zone-a" || bs.Node.Locality["region"] != "region-1" || bs.Node.Metadata["NAMESPACE"] != ns {
		t.Errorf("node locality %v metadata %v, want zone-a, region-1, NAMESPACE %s", bs.Node.Locality, bs.Node.Metadata, ns)
	}
}

// expandArgs is what the kubelet runs for c in pod: its env from the
// downward API fields it uses, substituted for $(NAME) in its args.
func expandArgs(t *testing.T, pod *corev1.Pod, c corev1.Container) []string {
	t.Helper()
	var subst []string
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil {
				t.Fatalf("env %s: only fieldRef is resolved here", e.Name)
			}
			f := e.ValueFrom.FieldRef.FieldPath
			switch {
			case f == "metadata.name":
				v = pod.Name
			case f == "metadata.namespace":
				v = pod.Namespace
			case strings.HasPrefix(f, "metadata.labels['") && strings.HasSuffix(f, "']"):
				v = pod.Labels[strings.TrimSuffix(strings.TrimPrefix(f, "metadata.labels['"), "']")]
			default:
				t.Fatalf("env %s: field %s is not resolved here", e.Name, f)
			}
		}
		subst = append(subst, "$("+e.Name+")", v)
	}
	r := strings.NewReplacer(subst...)
	args := append(append([]string{}, c.Command...), c.Args...)
	for i := range args {
		args[i] = r.Replace(args[i])
	}
	return args
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func mountOf(c corev1.Container, dir string) (corev1.VolumeMount, bool) {
	for _, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) == dir {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

func xdsPort(t *testing.T, svc *corev1.Service) int32 {
	t.Helper()
	for _, p := range svc.Spec.Ports {
		if p.Name == "xds" {
			return p.Port
		}
	}
	t.Fatalf("Service %s has no port named xds", svc.Name)
	return 0
}
