package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// certManagerModule is the cert-manager release whose CRDs (deploy/crds in
// its Go module, plain controller-gen output) the overlay is checked
// against; the test fetches it with `go mod download`, as it is not a
// dependency of the build.
const certManagerModule = "github.com/cert-manager/cert-manager@v1.21.2"

// TestDeployCertManagerOverlay renders deploy/kubernetes/overlays/cert-manager
// with kustomize's API, installs cert-manager's real CRDs (Certificate,
// Issuer, ClusterIssuer, with their OpenAPI schemas) into the API server,
// and dry-runs every object with strict field validation, so a misspelt or
// misplaced cert-manager field fails here. It then checks that the pieces
// fit: the Deployment passes the binary's flag parsing with the TLS flags,
// mounts the server certificate's Secret where the flags point, the CA
// issuer signs with the CA certificate's Secret, and the server
// certificate names the Service as clients dial it. No cert-manager
// controller runs: nothing is issued, which integration/tls_test.go covers
// with certificates of the same shape.
func TestDeployCertManagerOverlay(t *testing.T) {
	bin := switchboardBinary(t)
	cp, admin := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	_, file, _, _ := runtime.Caller(0)
	objs := render(t, filepath.Join(filepath.Dir(file), "..", "deploy", "kubernetes", "overlays", "cert-manager"))
	warnings, dyn, mapper := dryRunClients(t, cp)
	installCertManagerCRDs(ctx, t, dyn, mapper)
	for _, ns := range []string{"cert-manager", "switchboard-system"} {
		_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	dryRunAll(ctx, t, "", warnings, dyn, mapper, objs)

	var dep appsv1.Deployment
	decodeOne(t, objs, "Deployment", &dep)
	c := dep.Spec.Template.Spec.Containers[0]
	flags := map[string]string{}
	for _, a := range c.Args {
		if k, v, ok := strings.Cut(a, "="); ok {
			flags[k] = v
		}
	}
	args := append(slices.Clone(c.Args), "-h")
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		t.Errorf("the Deployment's args %q are not accepted by the binary: %v\n%s", c.Args, err, out)
	}
	certs := byName(t, objs, "Certificate")
	server, ca := certs["switchboard-system/switchboard-xds"], certs["cert-manager/switchboard-ca"]
	if server == nil || ca == nil {
		t.Fatalf("want Certificates switchboard-system/switchboard-xds and cert-manager/switchboard-ca, have %v", keysOf(certs))
	}
	secret, _, _ := unstructured.NestedString(server.Object, "spec", "secretName")
	var mountPath string
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == secret {
			for _, m := range c.VolumeMounts {
				if m.Name == v.Name {
					mountPath = m.MountPath
				}
			}
		}
	}
	if mountPath == "" {
		t.Fatalf("the container mounts no volume of the server certificate's Secret %q", secret)
	}
	for flag, file := range map[string]string{"--xds-tls-cert": "tls.crt", "--xds-tls-key": "tls.key", "--xds-client-ca": "ca.crt"} {
		if want := filepath.Join(mountPath, file); flags[flag] != want {
			t.Errorf("%s = %q, want %q (the Secret's %s)", flag, flags[flag], want, file)
		}
	}
	dnsNames, _, _ := unstructured.NestedStringSlice(server.Object, "spec", "dnsNames")
	if !slices.Contains(dnsNames, "switchboard.switchboard-system.svc") {
		t.Errorf("the server certificate's dnsNames %q lack switchboard.switchboard-system.svc, which deploy/proxyless dials", dnsNames)
	}
	issuers := byName(t, objs, "ClusterIssuer")
	caSecret, _, _ := unstructured.NestedString(ca.Object, "spec", "secretName")
	isCA, _, _ := unstructured.NestedBool(ca.Object, "spec", "isCA")
	issuerName, _, _ := unstructured.NestedString(server.Object, "spec", "issuerRef", "name")
	issuer := issuers[issuerName]
	if issuer == nil {
		t.Fatalf("the server certificate's issuer %q is not a ClusterIssuer of the overlay (%v)", issuerName, keysOf(issuers))
	}
	if got, _, _ := unstructured.NestedString(issuer.Object, "spec", "ca", "secretName"); !isCA || got != caSecret {
		t.Errorf("ClusterIssuer %s signs with Secret %q; the CA certificate (isCA %v) is in %q", issuerName, got, isCA, caSecret)
	}
}

// installCertManagerCRDs creates cert-manager's Certificate, Issuer and
// ClusterIssuer CRDs from its module and waits until they are served.
func installCertManagerCRDs(ctx context.Context, t *testing.T, dyn dynamic.Interface, mapper *restmapper.DeferredDiscoveryRESTMapper) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", certManagerModule).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", certManagerModule, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: %v %s", certManagerModule, err, mod.Error)
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	kinds := []string{"Certificate", "Issuer", "ClusterIssuer"}
	for _, f := range []string{"cert-manager.io_certificates.yaml", "cert-manager.io_issuers.yaml", "cert-manager.io_clusterissuers.yaml"} {
		b, err := os.ReadFile(filepath.Join(mod.Dir, "deploy", "crds", f))
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var crd unstructured.Unstructured
			if err := dec.Decode(&crd.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if crd.Object == nil {
				continue
			}
			if _, err := dyn.Resource(crdGVR).Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("create CRD %s: %v", crd.GetName(), err)
			}
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, kind := range kinds {
		gk := schema.GroupKind{Group: "cert-manager.io", Kind: kind}
		for {
			mapper.Reset()
			if _, err := mapper.RESTMapping(gk, "v1"); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("CRD for %s not served: %v", gk, ctx.Err())
			case <-tick.C:
			}
		}
	}
}

// byName returns the objects of kind by namespace/name (name alone for
// cluster-scoped ones).
func byName(t *testing.T, objs []*unstructured.Unstructured, kind string) map[string]*unstructured.Unstructured {
	t.Helper()
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if o.GetKind() != kind {
			continue
		}
		name := o.GetName()
		if ns := o.GetNamespace(); ns != "" {
			name = ns + "/" + name
		}
		out[name] = o
	}
	return out
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
