package integration

import (
	"math"
	"testing"
)

// histogram is a scrape of switchboard_convergence_seconds{type=...},
// summed over client classes: cumulative counts per upper bound.
type histogram struct {
	bounds []float64
	cum    []uint64
	count  uint64
}

// scrapeHistogram reads switchboard_convergence_seconds{type=typ} from sb.
func scrapeHistogram(t *testing.T, sb *switchboard, typ string) histogram {
	t.Helper()
	families, err := scrapeFamilies(sb)
	if err != nil {
		t.Fatal(err)
	}
	f := families["switchboard_convergence_seconds"]
	if f == nil {
		t.Fatal("/metrics has no switchboard_convergence_seconds")
	}
	var h histogram
	for _, m := range f.GetMetric() {
		match := false
		for _, l := range m.GetLabel() {
			match = match || (l.GetName() == "type" && l.GetValue() == typ)
		}
		if !match {
			continue
		}
		mh := m.GetHistogram()
		h.count += mh.GetSampleCount()
		for i, b := range mh.GetBucket() {
			if len(h.bounds) <= i {
				h.bounds = append(h.bounds, b.GetUpperBound())
				h.cum = append(h.cum, 0)
			}
			h.cum[i] += b.GetCumulativeCount()
		}
	}
	return h
}

// minus returns the observations made after prev, an earlier scrape of the
// same histogram.
func (h histogram) minus(prev histogram) histogram {
	d := histogram{bounds: h.bounds, cum: make([]uint64, len(h.cum)), count: h.count - prev.count}
	for i := range h.cum {
		d.cum[i] = h.cum[i]
		if i < len(prev.cum) {
			d.cum[i] -= prev.cum[i]
		}
	}
	return d
}

// quantile is Prometheus's histogram_quantile: linear within the bucket
// that holds the rank; 0 for an empty histogram.
func (h histogram) quantile(phi float64) float64 {
	if h.count == 0 {
		return 0
	}
	rank := phi * float64(h.count)
	lower, prev := 0.0, uint64(0)
	for i, c := range h.cum {
		if float64(c) >= rank {
			if c == prev {
				return h.bounds[i]
			}
			return lower + (h.bounds[i]-lower)*(rank-float64(prev))/float64(c-prev)
		}
		lower, prev = h.bounds[i], c
	}
	return math.Inf(1)
}

// convergenceQuantiles reads switchboard_convergence_seconds{type=typ},
// summed over client classes, from sb, and returns how many observations
// it holds and its p50 and p99 as Prometheus's histogram_quantile computes
// them (linear within the bucket that holds the rank).
func convergenceQuantiles(t *testing.T, sb *switchboard, typ string) (count uint64, p50, p99 float64) {
	t.Helper()
	h := scrapeHistogram(t, sb, typ)
	return h.count, h.quantile(0.5), h.quantile(0.99)
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
