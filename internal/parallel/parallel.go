// Package parallel spreads independent work over the machine's cores.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Min is the smallest batch worth spreading over goroutines: a change to a
// few Services is handled on the caller's goroutine, a full world
// (start-up, resync) on every core.
const Min = 64

// ForEach calls f(i) for every i in [0, n), on up to GOMAXPROCS goroutines
// when n is at least Min. f must be safe to call concurrently for different
// i; callers write results by index, so the outcome does not depend on the
// schedule.
func ForEach(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/Min)
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
