package watcher

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/switchboard-xds/switchboard/model"
)

// sinkRecorder collects batches from a Source.
type sinkRecorder struct {
	t  *testing.T
	ch chan model.Batch
}

func newSinkRecorder(t *testing.T) *sinkRecorder {
	return &sinkRecorder{t: t, ch: make(chan model.Batch, 1000)}
}

func (r *sinkRecorder) sink(b model.Batch) { r.ch <- b }

// next returns the next batch, failing the test after a generous deadline.
func (r *sinkRecorder) next() model.Batch {
	r.t.Helper()
	select {
	case b := <-r.ch:
		return b
	case <-time.After(10 * time.Second):
		r.t.Fatal("timed out waiting for a batch")
		return model.Batch{}
	}
}

// until returns the view of k from the first batch that carries k and
// satisfies cond, skipping batches that do not.
func (r *sinkRecorder) until(k model.ServiceKey, what string, cond func(*model.Service) bool) *model.Service {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case b := <-r.ch:
			if v, ok := b.Services[k]; ok && cond(v) {
				return v
			}
		case <-deadline:
			r.t.Fatalf("timed out waiting for %s", what)
			return nil
		}
	}
}

// runSource runs src until the test ends and checks that Run returns nil.
func runSource(t *testing.T, src Source, sink model.Sink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- src.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func fastOptions() Options {
	return Options{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
}

func TestInformerSource(t *testing.T) {
	ctx := context.Background()
	web := newSvc("ns", "web", svcPortNum("http", 80, 8080))
	web.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	client := fake.NewClientset(
		web,
		newSlice("ns", "web-1", "web", v4, slicePorts("http", 8080), newEp("10.0.0.1")),
	)
	reg := prometheus.NewRegistry()
	opts := fastOptions()
	opts.Metrics = NewMetrics(reg)
	src, err := NewInformerSource(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := newSinkRecorder(t)
	runSource(t, src, rec.sink)

	first := rec.next()
	if !first.Full || len(first.Services) != 1 {
		t.Fatalf("first batch: full=%v services=%d, want full with 1", first.Full, len(first.Services))
	}
	assertView(t, "initial view", first.Services[key("ns", "web")], &model.Service{
		Key: key("ns", "web"), Type: model.TypeClusterIP, SliceCount: 1,
		Ports: []model.Port{tcp("http", 80, 8080, readyEp(8080, "10.0.0.1"))},
	})

	// A second slice, then a change to the first.
	if _, err := client.DiscoveryV1().EndpointSlices("ns").Create(ctx,
		newSlice("ns", "web-2", "web", v4, slicePorts("http", 8080), newEp("10.0.0.2")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.until(key("ns", "web"), "two slices", func(v *model.Service) bool { return v != nil && v.SliceCount == 2 })
	if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(ctx,
		newSlice("ns", "web-1", "web", v4, slicePorts("http", 8080), newEp("10.0.0.1", ready(false))), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	v := rec.until(key("ns", "web"), "web-1 not ready", func(v *model.Service) bool {
		return v != nil && len(v.Ports[0].Endpoints) == 2 && !v.Ports[0].Endpoints[0].Ready
	})
	if !v.Ports[0].Endpoints[1].Ready {
		t.Errorf("10.0.0.2 should still be ready: %s", dump(v))
	}

	// A new Service, then deletes.
	if _, err := client.CoreV1().Services("ns").Create(ctx, newSvc("ns", "api", svcPortNum("grpc", 50051, 50051)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.until(key("ns", "api"), "api created", func(v *model.Service) bool { return v != nil })
	if err := client.DiscoveryV1().EndpointSlices("ns").Delete(ctx, "web-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.until(key("ns", "web"), "web-2 deleted", func(v *model.Service) bool { return v != nil && v.SliceCount == 1 })
	if err := client.CoreV1().Services("ns").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.until(key("ns", "web"), "web deleted", func(v *model.Service) bool { return v == nil })

	for _, c := range []struct {
		kind, event string
		want        float64
	}{
		{kindService, eventAdd, 2},
		{kindService, eventDelete, 1},
		{kindEndpointSlice, eventAdd, 2},
		{kindEndpointSlice, eventUpdate, 1},
		{kindEndpointSlice, eventDelete, 1},
	} {
		if got := testutil.ToFloat64(opts.Metrics.events.WithLabelValues(c.kind, c.event)); got != c.want {
			t.Errorf("events_total{kind=%s,event=%s} = %v, want %v", c.kind, c.event, got, c.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "switchboard_watcher_batches_total"); err != nil || n != 1 {
		t.Errorf("batches_total series: %d, %v", n, err)
	}
}

func TestInformerSourceNamespacesAndSelector(t *testing.T) {
	ctx := context.Background()
	labelled := func(ns, name, expose string) *corev1.Service {
		s := newSvc(ns, name, svcPortNum("http", 80, 8080))
		s.Labels = map[string]string{"expose": expose}
		return s
	}
	client := fake.NewClientset(
		labelled("a", "yes", "yes"),
		labelled("a", "no", "no"),
		labelled("b", "yes", "yes"),
		labelled("c", "yes", "yes"),
		// A slice carries other labels than its Service: it must not be
		// filtered by the Service selector.
		newSlice("a", "yes-1", "yes", v4, slicePorts("http", 8080), newEp("10.0.0.1")),
	)
	opts := fastOptions()
	opts.Namespaces = []string{"a", "b", " "}
	opts.Selector = "expose=yes"
	src, err := NewInformerSource(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := newSinkRecorder(t)
	runSource(t, src, rec.sink)

	first := rec.next()
	var got []string
	for k := range first.Services {
		got = append(got, k.String())
	}
	if !first.Full || len(got) != 2 || first.Services[key("a", "yes")] == nil || first.Services[key("b", "yes")] == nil {
		t.Fatalf("first batch: full=%v services=%v; want a/yes and b/yes", first.Full, strings.Join(got, ","))
	}
	if n := len(first.Services[key("a", "yes")].Ports[0].Endpoints); n != 1 {
		t.Errorf("a/yes has %d endpoints, want 1", n)
	}

	// A Service that stops matching the selector is removed.
	if _, err := client.CoreV1().Services("a").Update(ctx, labelled("a", "yes", "no"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.until(key("a", "yes"), "a/yes removed", func(v *model.Service) bool { return v == nil })
}

func TestInformerSourceNothingBeforeSync(t *testing.T) {
	// A client whose lists fail never syncs (an API server that went away):
	// nothing may be published, and Run must still return when ctx ends.
	client := fake.NewClientset(newSvc("ns", "web", svcPortNum("http", 80, 8080)))
	listed := make(chan struct{})
	var once sync.Once
	client.PrependReactor("list", "*", func(clienttesting.Action) (bool, runtime.Object, error) {
		once.Do(func() { close(listed) })
		return true, nil, errors.New("connection refused")
	})
	src, err := NewInformerSource(client, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	published := make(chan model.Batch, 1)
	go func() { errc <- src.Run(ctx, func(b model.Batch) { published <- b }) }()
	<-listed
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(published) > 0 {
		t.Fatal("a batch was published before the caches synced")
	}
}

func TestInformerSourceSyncTimeout(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("list", "*", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	opts := fastOptions()
	opts.SyncTimeout = 300 * time.Millisecond
	src, err := NewInformerSource(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	err = src.Run(context.Background(), func(b model.Batch) { t.Errorf("unexpected batch %+v", b) })
	if err == nil || !strings.Contains(err.Error(), "not synced") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Run = %v; want a sync timeout naming the list error", err)
	}
}

func TestNewInformerSourceErrors(t *testing.T) {
	if _, err := NewInformerSource(nil, Options{}); err == nil {
		t.Error("nil client: want an error")
	}
	if _, err := NewInformerSource(fake.NewClientset(), Options{Selector: "a in (b"}); err == nil {
		t.Error("bad selector: want an error")
	}
}

func TestStripObject(t *testing.T) {
	svc := newSvc("ns", "web", svcPortNum("http", 80, 8080))
	svc.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	svc.Annotations = map[string]string{"switchboard.io/timeout": "1s", "kubectl.kubernetes.io/last-applied-configuration": "{...}"}
	svc.Labels = map[string]string{"app": "web"}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
	if _, err := stripObject(svc); err != nil {
		t.Fatal(err)
	}
	if svc.ManagedFields != nil || len(svc.Annotations) != 1 || svc.Labels["app"] != "web" || len(svc.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("stripped service: %+v", svc.ObjectMeta)
	}

	es := newSlice("ns", "web-1", "web", v4, nil, newEp("10.0.0.1"))
	es.Labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
	es.Annotations = map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "x", "other": "y"}
	es.OwnerReferences = []metav1.OwnerReference{{Name: "web"}}
	es.Endpoints[0].DeprecatedTopology = map[string]string{"a": "b"}
	if _, err := stripObject(es); err != nil {
		t.Fatal(err)
	}
	// The trigger time stays: the convergence metric starts from it.
	if len(es.Labels) != 1 || es.Labels[discoveryv1.LabelServiceName] != "web" ||
		len(es.Annotations) != 1 || es.Annotations["endpoints.kubernetes.io/last-change-trigger-time"] != "x" ||
		es.OwnerReferences != nil || es.Endpoints[0].DeprecatedTopology != nil {
		t.Errorf("stripped slice: %+v", es)
	}
}
