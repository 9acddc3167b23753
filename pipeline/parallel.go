package pipeline

// This file spreads independent work over the machine's cores: a full
// world is translated on every core.

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelMin is the smallest batch worth spreading over goroutines: a change to a
// few Services is handled on the caller's goroutine, a full world
// (start-up, resync) on every core.
const parallelMin = 64

// forEach calls f(i) for every i in [0, n), on up to GOMAXPROCS goroutines
// when n is at least parallelMin. f must be safe to call concurrently for different
// i; callers write results by index, so the outcome does not depend on the
// schedule.
func forEach(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/parallelMin)
	if workers < 2 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}
