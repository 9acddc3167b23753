package pipeline

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
	"github.com/switchboard-xds/switchboard/xds"
)

func view(i int, addr string) *model.Service {
	return &model.Service{
		Key:        model.ServiceKey{Namespace: "p", Name: fmt.Sprintf("s%d", i)},
		Ports:      []model.Port{{Name: "grpc", Port: 8080, Protocol: "TCP", Endpoints: []model.Endpoint{{Addresses: []string{addr}, Port: 8080, Ready: true, Serving: true}}}},
		SliceCount: 1,
	}
}

// A full batch is translated on several goroutines; every Service must get
// exactly the bytes that translating it alone gives.
func TestTranslateInParallelEqualsOneByOne(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	b := model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{}}
	for i := range 4 * parallelMin {
		svc := view(i, fmt.Sprintf("10.0.%d.%d", i/250, 1+i%250))
		b.Services[svc.Key] = svc
	}
	u, _ := translateBatch(translator.Options{}, b)
	if !u.Full || len(u.Services) != len(b.Services) {
		t.Fatalf("update: full=%v, %d services, want %d", u.Full, len(u.Services), len(b.Services))
	}
	for key, svc := range b.Services {
		want, _ := translator.Service(translator.Options{}, svc)
		got := u.Services[key.String()]
		if got == nil || len(got.Assignments) != 1 || !bytes.Equal(got.Assignments[0].Wire, want.Assignments[0].Wire) ||
			!bytes.Equal(got.Listeners[0].Wire, want.Listeners[0].Wire) {
			t.Fatalf("%s: parallel translation differs from one by one", key)
		}
	}
}

// Diagnostics follow the batches: a Service's problem appears with it, goes
// when it is fixed or deleted, and a full batch drops Services it lacks.
func TestSyncerDiagnosticsAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	cache := NewCache(nil)
	s := NewSyncer(cache, Options{Metrics: m})
	bad := view(1, "not-an-ip")
	good := view(2, "10.0.0.2")
	s.Sink(model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{bad.Key: bad, good.Key: good}})
	if !cache.Ready() || testutil.ToFloat64(m.cacheReady) != 1 {
		t.Fatal("a full batch did not make the cache ready")
	}
	if d := s.Diagnostics(); len(d) != 1 || d[0].Service != bad.Key {
		t.Fatalf("diagnostics %v, want one for %s", d, bad.Key)
	}
	if got := testutil.ToFloat64(m.diagnosed); got != 1 {
		t.Fatalf("diagnostics gauge %v, want 1", got)
	}
	if testutil.ToFloat64(m.applied) == 0 {
		t.Fatal("no resource changes counted")
	}
	s.Sink(model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{good.Key: good}})
	if d := s.Diagnostics(); len(d) != 0 {
		t.Fatalf("after a full batch without %s: diagnostics %v", bad.Key, d)
	}
	if got := testutil.ToFloat64(m.diagnosed); got != 0 {
		t.Fatalf("diagnostics gauge %v, want 0", got)
	}
	if n := testutil.CollectAndCount(m.translate); n != 1 {
		t.Fatalf("translate histogram: %d series", n)
	}
}

// translateBatch is translate of one batch on a new world.
func translateBatch(opts translator.Options, b model.Batch) (xds.Update, map[model.ServiceKey][]translator.Diagnostic) {
	x := newMeshIndex()
	return translate(opts, b, x.apply(b), x)
}
