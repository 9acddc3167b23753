package harness_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"

	"github.com/switchboard-xds/switchboard/integration/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.RunInNetns(m)) }

// TestControlPlane starts one control plane and proves, against it, what the
// integration tests rely on.
func TestControlPlane(t *testing.T) {
	start := time.Now()
	cp, err := harness.Start(t.Context(), harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd and kube-apiserver ready, RBAC applied, in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		start := time.Now()
		if err := cp.Stop(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(cp.Dir()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("temporary folder %s not removed: %v", cp.Dir(), err)
		}
		t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
	})
	admin := newClient(t, cp.AdminConfig())

	t.Run("DefaultKubernetesService", func(t *testing.T) {
		// The API server makes default/kubernetes itself; with the endpoint
		// reconciler off it has no EndpointSlice.
		ctx := t.Context()
		if _, err := admin.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		slices, err := admin.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(slices.Items) != 0 {
			t.Errorf("default has %d EndpointSlices, want none", len(slices.Items))
		}
	})

	t.Run("EndpointSliceAddresses", func(t *testing.T) {
		testEndpointSliceAddresses(t, admin)
	})
	t.Run("EndpointSliceLifecycle", func(t *testing.T) {
		testEndpointSliceLifecycle(t, admin)
	})
	t.Run("SwitchboardIdentity", func(t *testing.T) {
		cfg, err := cp.UserConfig(harness.SwitchboardUser)
		if err != nil {
			t.Fatal(err)
		}
		testSwitchboardIdentity(t, admin, newClient(t, cfg))
	})
	t.Run("Kubeconfig", func(t *testing.T) {
		testKubeconfig(t, cp)
	})
	t.Run("UniqueNamespaces", func(t *testing.T) {
		a, b := harness.TestNamespace(t, admin), harness.TestNamespace(t, admin)
		if a == b || !strings.HasPrefix(a, "t-testcontrolplane-uniquenamespaces-") {
			t.Errorf("namespaces %q and %q, want distinct, prefixed by the test name", a, b)
		}
	})
}

// testEndpointSliceAddresses shows that the API server accepts a slice on a
// BackendCIDR address, which a backend can really listen on here, and
// rejects a loopback one.
func testEndpointSliceAddresses(t *testing.T, admin kubernetes.Interface) {
	ctx := t.Context()
	ns := harness.TestNamespace(t, admin)
	ports := []harness.Port{{Name: "grpc", Port: 50051, AppProtocol: "grpc"}}
	svc, err := harness.CreateService(ctx, admin, ns, "echo", ports)
	if err != nil {
		t.Fatal(err)
	}
	es, err := harness.CreateEndpointSlice(ctx, admin, harness.Slice{
		Namespace: ns, Service: "echo", Ports: ports,
		Endpoints: []harness.Endpoint{{Address: "10.244.1.1", Zone: "zone-a", NodeName: "node-a"}},
	})
	if err != nil {
		t.Fatalf("slice on 10.244.1.1: %v", err)
	}
	if got := es.Labels[discoveryv1.LabelServiceName]; got != "echo" {
		t.Errorf("label %s = %q, want echo", discoveryv1.LabelServiceName, got)
	}
	if got := es.Labels[discoveryv1.LabelManagedBy]; got != harness.ManagedByController {
		t.Errorf("label %s = %q, want %s", discoveryv1.LabelManagedBy, got, harness.ManagedByController)
	}
	if !strings.HasPrefix(es.Name, "echo-") || len(es.OwnerReferences) != 1 || es.OwnerReferences[0].UID != svc.UID {
		t.Errorf("slice %s owners %+v, want a generated name owned by Service UID %s", es.Name, es.OwnerReferences, svc.UID)
	}
	ep := es.Endpoints[0]
	if !*ep.Conditions.Ready || !*ep.Conditions.Serving || *ep.Conditions.Terminating || *ep.Zone != "zone-a" {
		t.Errorf("endpoint %+v, want ready, serving, not terminating, in zone-a", ep)
	}

	// The address is local inside the test's network namespace.
	l, err := net.Listen("tcp", "10.244.1.1:0")
	if err != nil {
		t.Fatalf("listen on a BackendCIDR address: %v", err)
	}
	defer l.Close()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial %s: %v", l.Addr(), err)
	}
	_ = conn.Close()

	_, err = harness.CreateEndpointSlice(ctx, admin, harness.Slice{
		Namespace: ns, Service: "echo", Ports: ports,
		Endpoints: []harness.Endpoint{{Address: "127.0.0.1"}},
	})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("slice on 127.0.0.1: got %v, want Invalid: may not be in the loopback range", err)
	}
}

// testEndpointSliceLifecycle updates a slice's conditions and endpoints and
// deletes it.
func testEndpointSliceLifecycle(t *testing.T, admin kubernetes.Interface) {
	ctx := t.Context()
	ns := harness.TestNamespace(t, admin)
	ports := []harness.Port{{Name: "http", Port: 8080}}
	if _, err := harness.CreateService(ctx, admin, ns, "web", ports); err != nil {
		t.Fatal(err)
	}
	s := harness.Slice{Namespace: ns, Service: "web", Ports: ports, Endpoints: []harness.Endpoint{
		{Address: "10.244.2.1"}, {Address: "10.244.2.2"},
	}}
	es, err := harness.CreateEndpointSlice(ctx, admin, s)
	if err != nil {
		t.Fatal(err)
	}
	s.Name = es.Name
	s.Endpoints = []harness.Endpoint{
		{Address: "10.244.2.1", State: harness.Terminating},
		{Address: "10.244.2.2", State: harness.NotReady},
		{Address: "10.244.2.3"},
	}
	es, err = harness.UpdateEndpointSlice(ctx, admin, s)
	if err != nil {
		t.Fatal(err)
	}
	type cond struct{ ready, serving, terminating bool }
	want := []cond{{false, true, true}, {false, false, false}, {true, true, false}}
	if len(es.Endpoints) != len(want) {
		t.Fatalf("%d endpoints after update, want %d", len(es.Endpoints), len(want))
	}
	for i, ep := range es.Endpoints {
		got := cond{*ep.Conditions.Ready, *ep.Conditions.Serving, *ep.Conditions.Terminating}
		if got != want[i] {
			t.Errorf("endpoint %s conditions %+v, want %+v", ep.Addresses[0], got, want[i])
		}
	}
	if err := harness.DeleteEndpointSlice(ctx, admin, ns, es.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DiscoveryV1().EndpointSlices(ns).Get(ctx, es.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get deleted slice: %v, want NotFound", err)
	}
}

// testSwitchboardIdentity proves that deploy/kubernetes/base/rbac.yaml grants the
// switchboard ServiceAccount what Switchboard needs, cluster-wide, and
// nothing else.
func testSwitchboardIdentity(t *testing.T, admin, sb kubernetes.Interface) {
	ctx := t.Context()
	ns := harness.TestNamespace(t, admin)

	if _, err := sb.CoreV1().Services("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list services in all namespaces: %v", err)
	}
	if _, err := sb.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{}); err != nil {
		t.Errorf("get default/kubernetes: %v", err)
	}
	if _, err := sb.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list endpointslices in all namespaces: %v", err)
	}

	// Watches see what the admin creates.
	svcWatch, err := sb.CoreV1().Services("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch services: %v", err)
	}
	defer svcWatch.Stop()
	esWatch, err := sb.DiscoveryV1().EndpointSlices("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch endpointslices: %v", err)
	}
	defer esWatch.Stop()
	ports := []harness.Port{{Name: "grpc", Port: 50051}}
	if _, err := harness.CreateService(ctx, admin, ns, "watched", ports); err != nil {
		t.Fatal(err)
	}
	if _, err := harness.CreateEndpointSlice(ctx, admin, harness.Slice{
		Namespace: ns, Service: "watched", Ports: ports, Endpoints: []harness.Endpoint{{Address: "10.244.3.1"}},
	}); err != nil {
		t.Fatal(err)
	}
	waitAdded(t, svcWatch, ns)
	waitAdded(t, esWatch, ns)

	// Everything else is forbidden.
	forbidden := map[string]error{}
	_, forbidden["list pods"] = sb.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	_, forbidden["list secrets"] = sb.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	_, forbidden["list configmaps"] = sb.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	_, forbidden["list endpoints"] = sb.CoreV1().Endpoints(ns).List(ctx, metav1.ListOptions{})
	_, forbidden["list nodes"] = sb.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	_, forbidden["create service"] = sb.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "nope"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	forbidden["delete endpointslices"] = sb.DiscoveryV1().EndpointSlices(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	// The route status Lease lives in switchboard-system only.
	_, forbidden["create a lease elsewhere"] = sb.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "switchboard-route-status"},
	}, metav1.CreateOptions{})
	for what, err := range forbidden {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s as %s: %v, want Forbidden", what, harness.SwitchboardUser, err)
		}
	}
}

// waitAdded waits for an Added event of an object in namespace ns.
func waitAdded(t *testing.T, w watch.Interface, ns string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed")
			}
			if m, ok := ev.Object.(metav1.Object); ok && ev.Type == watch.Added && m.GetNamespace() == ns {
				return
			}
		case <-timeout:
			t.Fatalf("no Added event in %s within 10 s", ns)
		}
	}
}

// testKubeconfig writes the switchboard user's kubeconfig, reads it back as a
// client would, and uses it.
func testKubeconfig(t *testing.T, cp *harness.ControlPlane) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cp.WriteKubeconfig(path, harness.SwitchboardUser); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kc clientcmdv1.Config
	if err := yaml.UnmarshalStrict(data, &kc); err != nil {
		t.Fatalf("parse kubeconfig: %v\n%s", err, data)
	}
	if len(kc.Clusters) != 1 || len(kc.AuthInfos) != 1 || len(kc.Contexts) != 1 || kc.CurrentContext != kc.Contexts[0].Name {
		t.Fatalf("kubeconfig %+v, want one cluster, user and current context", kc)
	}
	cluster := kc.Clusters[0].Cluster
	if cluster.InsecureSkipTLSVerify || len(cluster.CertificateAuthorityData) == 0 {
		t.Errorf("kubeconfig cluster %+v, want certificate-authority-data and verification on", cluster)
	}
	sb := newClient(t, &rest.Config{
		Host:            cluster.Server,
		BearerToken:     kc.AuthInfos[0].AuthInfo.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: cluster.CertificateAuthorityData},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := sb.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list endpointslices with the kubeconfig: %v", err)
	}
	if _, err := sb.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list secrets with the switchboard kubeconfig: %v, want Forbidden", err)
	}
	if err := cp.WriteKubeconfig(path, "nobody"); err == nil {
		t.Error("kubeconfig for an unknown user: no error")
	}
}

// TestStartWithoutTools shows that missing binaries fail with a pointer to
// `make tools` instead of a skip.
func TestStartWithoutTools(t *testing.T) {
	_, err := harness.Start(t.Context(), harness.Options{ToolsDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make tools") {
		t.Fatalf("Start without binaries: %v, want an error that says to run make tools", err)
	}
}

func newClient(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
