package integration

import (
	"math"
	"testing"
)

// convergenceQuantiles reads switchboard_convergence_seconds{type=typ},
// summed over client classes, from sb, and returns how many observations
// it holds and its p50 and p99 as Prometheus's histogram_quantile computes
// them (linear within the bucket that holds the rank).
func convergenceQuantiles(t *testing.T, sb *switchboard, typ string) (count uint64, p50, p99 float64) {
	t.Helper()
	families, err := scrapeFamilies(sb)
	if err != nil {
		t.Fatal(err)
	}
	f := families["switchboard_convergence_seconds"]
	if f == nil {
		t.Fatal("/metrics has no switchboard_convergence_seconds")
	}
	var bounds []float64
	var cum []uint64
	for _, m := range f.GetMetric() {
		match := false
		for _, l := range m.GetLabel() {
			match = match || (l.GetName() == "type" && l.GetValue() == typ)
		}
		if !match {
			continue
		}
		h := m.GetHistogram()
		count += h.GetSampleCount()
		for i, b := range h.GetBucket() {
			if len(bounds) <= i {
				bounds = append(bounds, b.GetUpperBound())
				cum = append(cum, 0)
			}
			cum[i] += b.GetCumulativeCount()
		}
	}
	q := func(phi float64) float64 {
		rank := phi * float64(count)
		lower, prev := 0.0, uint64(0)
		for i, c := range cum {
			if float64(c) >= rank {
				if c == prev {
					return bounds[i]
				}
				return lower + (bounds[i]-lower)*(rank-float64(prev))/float64(c-prev)
			}
			lower, prev = bounds[i], c
		}
		return math.Inf(1)
	}
	if count == 0 {
		return 0, 0, 0
	}
	return count, q(0.5), q(0.99)
}

// reportConvergence fails t unless sb observed the convergence of endpoint
// changes (EDS), and logs the figures: the README quotes them.
func reportConvergence(t *testing.T, sb *switchboard, what string) {
	t.Helper()
	n, p50, p99 := convergenceQuantiles(t, sb, "eds")
	if n == 0 {
		t.Errorf("%s: switchboard_convergence_seconds{type=\"eds\"} observed nothing after endpoint changes", what)
		return
	}
	t.Logf("%s: switchboard_convergence_seconds{type=\"eds\"}: %d observations, p50 %.1f ms, p99 %.1f ms", what, n, p50*1e3, p99*1e3)
}
