package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestDeployManifests renders deploy/kubernetes and its monitoring overlay
// with kustomize's own API and applies every object to the real API server
// with server-side dry run (strict field validation), so a field the API
// does not have, an invalid value, or a pod the namespace's "restricted"
// Pod Security Standard would refuse (a warning on a Deployment) fails the
// test naming the object. The Prometheus Operator's CRDs do not exist in a
// bare API server: the test creates minimal ones first (their schema keeps
// unknown fields, so only the objects' shape and names are checked there).
// It then reads the rendered Deployment for the settings that make it a
// safe install, so removing one fails here.
func TestDeployManifests(t *testing.T) {
	bin := switchboardBinary(t) // no client programs: only the binary is run
	cp, _ := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, file, _, _ := runtime.Caller(0)
	base := filepath.Join(filepath.Dir(file), "..", "deploy", "kubernetes")
	overlay := filepath.Join(base, "overlays", "monitoring")
	baseObjs := render(t, base)
	overlayObjs := render(t, overlay)

	warnings, dyn, mapper := dryRunClients(t, cp)
	createCRDs(ctx, t, dyn, mapper, "servicemonitors", "ServiceMonitor", "prometheusrules", "PrometheusRule")

	for _, set := range []struct {
		name string
		objs []*unstructured.Unstructured
	}{{"base", baseObjs}, {"overlay monitoring", overlayObjs}} {
		dryRunAll(ctx, t, set.name, warnings, dyn, mapper, set.objs)
	}

	// The overlay is the base plus exactly the two monitoring objects.
	var extra []string
	for _, o := range overlayObjs {
		if !slices.ContainsFunc(baseObjs, func(b *unstructured.Unstructured) bool { return objectID(b) == objectID(o) }) {
			extra = append(extra, objectID(o))
		}
	}
	slices.Sort(extra)
	want := []string{"monitoring.coreos.com/v1, Kind=PrometheusRule switchboard-system/switchboard", "monitoring.coreos.com/v1, Kind=ServiceMonitor switchboard-system/switchboard"}
	if !slices.Equal(extra, want) {
		t.Errorf("the overlay adds %q to the base, want %q", extra, want)
	}

	var dep appsv1.Deployment
	var svc corev1.Service
	decodeOne(t, baseObjs, "Deployment", &dep)
	decodeOne(t, baseObjs, "Service", &svc)
	checkDeployment(t, &dep)
	checkGoMemLimit(ctx, t, bin, &dep)
	checkService(t, &svc)
	checkServiceMonitorPort(t, overlayObjs, &svc)

	// The container's arguments are flags the binary has: parsing stops
	// at the first unknown one, so -h after them succeeds only if all are.
	args := append(slices.Clone(dep.Spec.Template.Spec.Containers[0].Args), "-h")
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		t.Errorf("the Deployment's args %q are not accepted by the binary: %v\n%s", args[:len(args)-1], err, out)
	}
}

// dryRunClients returns a dynamic client of cp's admin, a REST mapper from
// its discovery, and the recorder of the API server's warnings to them.
func dryRunClients(t *testing.T, cp *harness.ControlPlane) (*warningRecorder, dynamic.Interface, *restmapper.DeferredDiscoveryRESTMapper) {
	t.Helper()
	warnings := &warningRecorder{}
	cfg := cp.AdminConfig()
	cfg.WarningHandler = warnings
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	return warnings, dyn, mapper
}

// render runs kustomize (the library kubectl -k uses) on dir.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range resMap.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	if len(objs) == 0 {
		t.Fatalf("kustomize build %s: no objects", dir)
	}
	return objs
}

func objectID(o *unstructured.Unstructured) string {
	name := o.GetName()
	if ns := o.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return o.GroupVersionKind().String() + " " + name
}

// dryRunApply server-side applies obj with dryRun=All and strict field
// validation: the API server runs defaulting, validation and admission and
// stores nothing.
// dryRunAll dry-runs every object of objs (dryRunApply), failing t,
// prefixed by what ("" for nothing), for each rejection and each API server
// warning.
func dryRunAll(ctx context.Context, t *testing.T, what string, warnings *warningRecorder, dyn dynamic.Interface, mapper apimeta.RESTMapper, objs []*unstructured.Unstructured) {
	t.Helper()
	if what != "" {
		what += ": "
	}
	for _, o := range objs {
		warnings.take()
		if err := dryRunApply(ctx, dyn, mapper, o); err != nil {
			t.Errorf("%s%s rejected by the API server: %v", what, objectID(o), err)
		}
		if w := warnings.take(); len(w) > 0 {
			t.Errorf("%s%s: API server warnings: %s", what, objectID(o), strings.Join(w, "; "))
		}
	}
}

func dryRunApply(ctx context.Context, dyn dynamic.Interface, mapper apimeta.RESTMapper, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("map %s: %w", gvk, err)
	}
	var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == apimeta.RESTScopeNameNamespace {
		ri = dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	force := true
	_, err = ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
		FieldManager:    "switchboard-deploy-test",
		Force:           &force,
		DryRun:          []string{metav1.DryRunAll},
		FieldValidation: metav1.FieldValidationStrict,
	})
	return err
}

// createCRDs creates, for real, minimal monitoring.coreos.com/v1 CRDs
// (plural, kind pairs) that keep every field, and waits until the API
// server serves them.
func createCRDs(ctx context.Context, t *testing.T, dyn dynamic.Interface, mapper *restmapper.DeferredDiscoveryRESTMapper, pluralKind ...string) {
	t.Helper()
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	const group = "monitoring.coreos.com"
	for i := 0; i < len(pluralKind); i += 2 {
		plural, kind := pluralKind[i], pluralKind[i+1]
		crd := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1",
			"kind":       "CustomResourceDefinition",
			"metadata":   map[string]any{"name": plural + "." + group},
			"spec": map[string]any{
				"group": group,
				"scope": "Namespaced",
				"names": map[string]any{"plural": plural, "singular": strings.ToLower(kind), "kind": kind, "listKind": kind + "List"},
				"versions": []any{map[string]any{
					"name": "v1", "served": true, "storage": true,
					"schema": map[string]any{"openAPIV3Schema": map[string]any{
						"type": "object", "x-kubernetes-preserve-unknown-fields": true,
					}},
				}},
			},
		}}
		if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create CRD %s: %v", crd.GetName(), err)
		}
	}
	// Established and in discovery: until then the mapper does not know
	// the kinds. The mapper's cache is dropped before each look.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 1; i < len(pluralKind); i += 2 {
		gk := schema.GroupKind{Group: group, Kind: pluralKind[i]}
		for {
			mapper.Reset()
			_, err := mapper.RESTMapping(gk, "v1")
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("CRD for %s not served: %v", gk, errors.Join(err, ctx.Err()))
			case <-tick.C:
			}
		}
	}
}

// warningRecorder collects the API server's warnings (rest.WarningHandler).
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

var _ rest.WarningHandler = (*warningRecorder)(nil)

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

// take returns the warnings so far and forgets them.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// decodeOne decodes the one object of kind in objs into out.
func decodeOne(t *testing.T, objs []*unstructured.Unstructured, kind string, out any) {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s in the base, want 1", len(found), kind)
	}
	if err := kruntime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(found[0].Object, out, true); err != nil {
		t.Fatalf("decode %s: %v", kind, err)
	}
}
