package pipeline

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/translator"
	"github.com/switchboard-xds/switchboard/xds"
)

// TestTranslateCarriesChangeTimes checks that each Service's change time
// reaches the cache Update under the Service's key.
func TestTranslateCarriesChangeTimes(t *testing.T) {
	svc := view(1, "10.0.0.1")
	at := time.Unix(1000, 0)
	u, _ := translateBatch(translator.Options{}, model.Batch{
		Services: map[model.ServiceKey]*model.Service{svc.Key: svc},
		Changed:  map[model.ServiceKey]time.Time{svc.Key: at},
	})
	if got := u.Changed[svc.Key.String()]; !got.Equal(at) {
		t.Fatalf("Update.Changed[%s] = %v, want %v", svc.Key, got, at)
	}
}

// TestSinkObservesStages checks that a batch observes the coalescing wait
// (from its first event, on the Syncer's clock) and the translate stage; a
// full batch, which has no first event, only the latter.
func TestSinkObservesStages(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := xds.NewMetrics(reg)
	now := time.Unix(2000, 0)
	s := NewSyncer(NewCache(m), Options{Now: func() time.Time { return now }})
	svc := view(1, "10.0.0.1")
	s.Sink(model.Batch{Full: true, Services: map[model.ServiceKey]*model.Service{svc.Key: svc}})
	s.Sink(model.Batch{Services: map[model.ServiceKey]*model.Service{svc.Key: view(1, "10.0.0.2")}, FirstEvent: now.Add(-40 * time.Millisecond)})
	stage := func(stage string) (uint64, float64) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "switchboard_convergence_stage_seconds" {
				continue
			}
			for _, s := range mf.GetMetric() {
				if s.GetLabel()[0].GetValue() == stage {
					return s.GetHistogram().GetSampleCount(), s.GetHistogram().GetSampleSum()
				}
			}
		}
		return 0, 0
	}
	if n, sum := stage("coalesce"); n != 1 || sum != 0.04 {
		t.Errorf("coalesce: %d observations summing to %vs, want 1 of 0.04s (the full batch has no first event)", n, sum)
	}
	if n, _ := stage("translate"); n != 2 {
		t.Errorf("translate observations = %d, want 2", n)
	}
}
