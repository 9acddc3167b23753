package pipeline

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// Every index is visited exactly once, below and above the threshold.
func TestForEachVisitsEveryIndexOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for _, n := range []int{0, 1, parallelMin - 1, parallelMin, 4*parallelMin + 3} {
		seen := make([]atomic.Int32, n)
		forEach(n, func(i int) { seen[i].Add(1) })
		for i := range seen {
			if got := seen[i].Load(); got != 1 {
				t.Fatalf("n=%d: index %d visited %d times", n, i, got)
			}
		}
	}
}
