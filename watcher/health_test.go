package watcher

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/switchboard-xds/switchboard/internal/poll"
)

// TestInformerSourceHealth: a failed watch shows as not synced and as a
// counted watch error for its resource; the retried watch brings the gauge
// back to 1.
func TestInformerSourceHealth(t *testing.T) {
	client := fake.NewClientset(newSvc("ns", "web", svcPortNum("http", 80, 8080)))
	var failed atomic.Int32
	client.PrependWatchReactor("endpointslices", func(clienttesting.Action) (bool, watch.Interface, error) {
		if failed.Add(1) == 1 {
			return true, nil, errors.New("watch refused")
		}
		return false, nil, nil
	})
	opts := fastOptions()
	opts.Metrics = NewMetrics(prometheus.NewRegistry())
	if got := testutil.ToFloat64(opts.Metrics.synced); got != 0 {
		t.Fatalf("synced before Run = %v, want 0", got)
	}
	for _, k := range []string{kindService, kindEndpointSlice, kindNode} {
		if got := testutil.ToFloat64(opts.Metrics.watchErrors.WithLabelValues(k)); got != 0 {
			t.Fatalf("watch errors %s before Run = %v, want 0", k, got)
		}
	}
	src, err := NewInformerSource(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := newSinkRecorder(t)
	runSource(t, src, rec.sink)
	rec.next() // the initial sync

	// The first slice watch failed; the reflector retries after its backoff
	// (0.8 s to 1.6 s), and from then on the gauge is 1.
	waitGauge := func(what string, cond func() bool) {
		t.Helper()
		// Polling a gauge: no event to wait on.
		if !poll.Wait(20*time.Second, cond) {
			t.Fatalf("%s: synced=%v, slice watch errors=%v", what,
				testutil.ToFloat64(opts.Metrics.synced), testutil.ToFloat64(opts.Metrics.watchErrors.WithLabelValues(kindEndpointSlice)))
		}
	}
	waitGauge("watch error counted", func() bool {
		return testutil.ToFloat64(opts.Metrics.watchErrors.WithLabelValues(kindEndpointSlice)) == 1
	})
	// Read in this order, a 1 with one watch made so far is a gauge that
	// ignored the failure.
	if synced := testutil.ToFloat64(opts.Metrics.synced); synced == 1 && failed.Load() == 1 {
		t.Fatal("synced = 1 while the only slice watch so far failed")
	}
	waitGauge("synced again after the retried watch", func() bool { return failed.Load() >= 2 && testutil.ToFloat64(opts.Metrics.synced) == 1 })
	if got := testutil.ToFloat64(opts.Metrics.watchErrors.WithLabelValues(kindService)); got != 0 {
		t.Errorf("service watch errors = %v, want 0", got)
	}
}
