package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestDeploySidecarManifests renders deploy/sidecar (the Envoy sidecar
// example) with kustomize's API, creates its Namespace for real (namespaced
// objects cannot be dry-run into a namespace that does not exist) and
// applies every object with server-side dry run and strict field
// validation, failing on a rejection or an API server warning, as
// TestDeployManifests does for deploy/kubernetes. It then checks that the
// generated envoy-bootstrap ConfigMap holds exactly what `switchboard
// bootstrap envoy` writes today for the command named in its first line.
func TestDeploySidecarManifests(t *testing.T) {
	bin := switchboardBinary(t)
	cp, _ := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, file, _, _ := runtime.Caller(0)
	objs := render(t, filepath.Join(filepath.Dir(file), "..", "deploy", "sidecar"))

	warnings, dyn, mapper := dryRunClients(t, cp)

	nsGVR := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	for _, o := range objs {
		if o.GetKind() != "Namespace" {
			continue
		}
		if _, err := dyn.Resource(nsGVR).Create(ctx, o, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}); err != nil {
			t.Fatalf("create %s: %v", objectID(o), err)
		}
		t.Cleanup(func() { _ = dyn.Resource(nsGVR).Delete(context.Background(), o.GetName(), metav1.DeleteOptions{}) })
	}
	dryRunAll(ctx, t, "", warnings, dyn, mapper, objs)

	var bootstrap string
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && strings.HasPrefix(o.GetName(), "envoy-bootstrap") {
			bootstrap, _, _ = unstructured.NestedString(o.Object, "data", "bootstrap.yaml")
		}
	}
	first, rest, _ := strings.Cut(bootstrap, "\n")
	const prefix = "# Written by: switchboard "
	if !strings.HasPrefix(first, prefix) {
		t.Fatalf("the envoy-bootstrap ConfigMap's first line is %q, want %q and the command", first, prefix)
	}
	out, err := exec.CommandContext(ctx, bin, strings.Fields(strings.TrimPrefix(first, prefix))...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", first, err, out)
	}
	// The comment lines after the first say what the bootstrap is for.
	for strings.HasPrefix(rest, "#") {
		_, rest, _ = strings.Cut(rest, "\n")
	}
	if rest != string(out) {
		t.Errorf("deploy/sidecar/envoy-bootstrap.yaml is not what %q writes now: regenerate it\n--- file\n%s\n--- binary\n%s", strings.TrimPrefix(first, "# Written by: "), rest, out)
	}
}
