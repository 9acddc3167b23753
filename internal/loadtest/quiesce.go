package loadtest

import (
	"time"
)

// quiet is how long the server's CPU time and the clients' traffic must
// stay unchanged for quiesce to call the run settled: more than two of the
// kernel's 10 ms CPU ticks, and several of its sampling steps.
const quiet = 50 * time.Millisecond

// quiesce waits until the run is at rest: the peer process pid uses no
// more CPU and traffic (the clients' byte and response counters, summed)
// no longer moves, both for quiet, or until limit passes (Options.Settle),
// and reports whether it came to rest. It replaces a fixed wait after the
// last change, so that work after the last ACK (ACK processing, deferred
// sends) is counted when it happens and not waited for when it does not.
func quiesce(pid int, traffic func() int64, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	cpu, _ := processCPU(pid)
	moved, since := traffic(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // sampling a process and counters: no event to wait on
		c, _ := processCPU(pid)
		m := traffic()
		if c != cpu || m != moved {
			cpu, moved, since = c, m, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return true
		}
	}
	return false
}

// grpcTraffic sums the gRPC clients' byte and response counters.
func grpcTraffic(clients []*client) int64 {
	var n int64
	for _, c := range clients {
		n += c.bytesDown.Load() + c.bytesUp.Load() + c.responses.Load()
	}
	return n
}
