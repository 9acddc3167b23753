package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/switchboard-xds/switchboard/integration/harness"
)

// world is where a test writes Services and EndpointSlices: a real API
// server, or the folder that standalone mode reads. Scenarios are written
// once against it and run on both.
type world interface {
	// Namespace returns a namespace of the test's own.
	Namespace(t *testing.T) string
	ApplyService(t *testing.T, svc *corev1.Service)
	DeleteService(t *testing.T, namespace, name string)
	ApplySlice(t *testing.T, es *discoveryv1.EndpointSlice)
	DeleteSlice(t *testing.T, namespace, name string)
	// NewClusterIP returns the spec.clusterIP to write in a new ClusterIP
	// Service: "" where an API server allocates one (ApplyService then
	// writes the allocated addresses back into the object), else a fresh
	// address in 10.96.0.0/16.
	NewClusterIP() string
}

// newService is a ClusterIP Service whose ports target themselves, with
// each port's protocol (TCP when empty) and appProtocol (when set).
func newService(namespace, name string, ports ...harness.Port) *corev1.Service {
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": name}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app": name}},
	}
	for _, p := range ports {
		sp := corev1.ServicePort{Name: p.Name, Port: p.Port, Protocol: p.Protocol, TargetPort: intstr.FromInt32(p.Port)}
		if sp.Protocol == "" {
			sp.Protocol = corev1.ProtocolTCP
		}
		if p.AppProtocol != "" {
			sp.AppProtocol = &p.AppProtocol
		}
		svc.Spec.Ports = append(svc.Spec.Ports, sp)
	}
	return svc
}

func newSlice(namespace, service, name string, ports []harness.Port, eps ...harness.Endpoint) *discoveryv1.EndpointSlice {
	es := harness.NewEndpointSlice(harness.Slice{Namespace: namespace, Service: service, Name: name, Ports: ports, Endpoints: eps}, nil)
	es.TypeMeta = metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"}
	return es
}

func opCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// apiWorld writes to the API server as the admin; Switchboard reads it with
// its own least-privilege identity.
type apiWorld struct{ c kubernetes.Interface }

func (w apiWorld) Namespace(t *testing.T) string { return harness.TestNamespace(t, w.c) }

func (w apiWorld) ApplyService(t *testing.T, svc *corev1.Service) {
	t.Helper()
	ctx := opCtx(t)
	cur, err := w.c.CoreV1().Services(svc.Namespace).Get(ctx, svc.Name, metav1.GetOptions{})
	if err == nil {
		svc.ResourceVersion = cur.ResourceVersion
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = cur.Spec.ClusterIP, cur.Spec.ClusterIPs
		_, err = w.c.CoreV1().Services(svc.Namespace).Update(ctx, svc, metav1.UpdateOptions{})
	} else {
		var created *corev1.Service
		if created, err = w.c.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err == nil {
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = created.Spec.ClusterIP, created.Spec.ClusterIPs
		}
	}
	if err != nil {
		t.Fatalf("apply service %s/%s: %v", svc.Namespace, svc.Name, err)
	}
}

func (apiWorld) NewClusterIP() string { return "" }

func (w apiWorld) DeleteService(t *testing.T, namespace, name string) {
	t.Helper()
	if err := w.c.CoreV1().Services(namespace).Delete(opCtx(t), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete service %s/%s: %v", namespace, name, err)
	}
}

func (w apiWorld) ApplySlice(t *testing.T, es *discoveryv1.EndpointSlice) {
	t.Helper()
	ctx := opCtx(t)
	api := w.c.DiscoveryV1().EndpointSlices(es.Namespace)
	cur, err := api.Get(ctx, es.Name, metav1.GetOptions{})
	if err == nil {
		es.ResourceVersion = cur.ResourceVersion
		_, err = api.Update(ctx, es, metav1.UpdateOptions{})
	} else {
		_, err = api.Create(ctx, es, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("apply endpointslice %s/%s: %v", es.Namespace, es.Name, err)
	}
}

func (w apiWorld) DeleteSlice(t *testing.T, namespace, name string) {
	t.Helper()
	if err := w.c.DiscoveryV1().EndpointSlices(namespace).Delete(opCtx(t), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete endpointslice %s/%s: %v", namespace, name, err)
	}
}

// folderWorld writes one manifest file per object, as an operator editing
// the folder of `switchboard serve --manifests` would: a new file renamed
// into place.
type folderWorld struct {
	dir string
	n   *atomic.Int32
	ips *atomic.Int32
}

func newFolderWorld(t *testing.T) folderWorld {
	return folderWorld{dir: t.TempDir(), n: new(atomic.Int32), ips: new(atomic.Int32)}
}

func (w folderWorld) NewClusterIP() string {
	n := w.ips.Add(1)
	return fmt.Sprintf("10.96.%d.%d", n/250, 1+n%250)
}

func (w folderWorld) Namespace(*testing.T) string {
	return fmt.Sprintf("ns%d", w.n.Add(1))
}

func (w folderWorld) path(kind, namespace, name string) string {
	return filepath.Join(w.dir, kind+"-"+namespace+"-"+name+".yaml")
}

func (w folderWorld) write(t *testing.T, path string, obj any) {
	t.Helper()
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	w.writeBytes(t, path, b)
}

func (w folderWorld) writeBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := filepath.Join(w.dir, ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func (w folderWorld) remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func (w folderWorld) ApplyService(t *testing.T, svc *corev1.Service) {
	w.write(t, w.path("service", svc.Namespace, svc.Name), svc)
}

func (w folderWorld) DeleteService(t *testing.T, namespace, name string) {
	w.remove(t, w.path("service", namespace, name))
}

func (w folderWorld) ApplySlice(t *testing.T, es *discoveryv1.EndpointSlice) {
	w.write(t, w.path("slice", es.Namespace, es.Name), es)
}

func (w folderWorld) DeleteSlice(t *testing.T, namespace, name string) {
	w.remove(t, w.path("slice", namespace, name))
}
