package xds

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/model"
)

// BenchmarkDisconnect isolates what the end of a stream costs the cache
// (Cache.unregister) when clients streams each watch names clusters and
// names assignments by name. churn keeps the population at clients: each
// op disconnects one stream at random and connects a new one in its place.
// all connects every client and then disconnects them all in random order,
// as after a network blip. Besides ns/op (which counts the connects too)
// it reports the mean and the longest unregister, the longest that a
// writer (an Apply) waited for the cache's lock meanwhile (sampled every
// 50µs by a second goroutine), and for churn the live heap per client
// once it is done (index entries of ended streams included).
func BenchmarkDisconnect(b *testing.B) {
	clients, names := 1000, 1000
	if testing.Short() {
		clients, names = 10, 10
	}
	c := benchCache(b, benchWorld(b, names, 1, 0))
	var watched [numTypes][]string
	for _, t := range []typeIndex{clusterType, endpointType} {
		for _, r := range c.all(t, model.Client{}) {
			watched[t] = append(watched[t], r.Name)
		}
	}
	connect := func() *subscriber {
		w := newSubscriber()
		c.register(w)
		for _, t := range []typeIndex{clusterType, endpointType} {
			c.watch(w, t, false, watched[t], nil)
		}
		return w
	}
	var total, longest time.Duration
	var n int
	disconnect := func(w *subscriber) {
		start := time.Now()
		c.unregister(w)
		d := time.Since(start)
		total += d
		longest = max(longest, d)
		n++
	}
	report := func(b *testing.B, wait time.Duration) {
		b.ReportMetric(float64(total.Nanoseconds())/float64(n), "ns/disconnect")
		b.ReportMetric(float64(longest.Nanoseconds()), "max-ns/disconnect")
		b.ReportMetric(float64(wait.Nanoseconds()), "max-wait-ns")
		total, longest, n = 0, 0, 0
	}
	r := rand.New(rand.NewPCG(1, 2))
	b.Run(fmt.Sprintf("churn/clients=%d/names=%d", clients, names), func(b *testing.B) {
		before := liveHeap()
		ws := make([]*subscriber, clients)
		for i := range ws {
			ws[i] = connect()
		}
		stop := probeLock(c)
		for b.Loop() {
			i := r.IntN(len(ws))
			disconnect(ws[i])
			ws[i] = connect()
		}
		report(b, stop())
		b.ReportMetric(float64(int64(liveHeap())-int64(before))/float64(clients), "heap-B/client")
		for _, w := range ws {
			c.unregister(w)
		}
	})
	b.Run(fmt.Sprintf("all/clients=%d/names=%d", clients, names), func(b *testing.B) {
		ws := make([]*subscriber, clients)
		var wait time.Duration
		for b.Loop() {
			for i := range ws {
				ws[i] = connect()
			}
			r.Shuffle(len(ws), func(i, j int) { ws[i], ws[j] = ws[j], ws[i] })
			stop := probeLock(c)
			for _, w := range ws {
				disconnect(w)
			}
			wait = max(wait, stop())
		}
		report(b, wait)
	})
}

// probeLock takes and releases c's write lock every 50µs until stop is
// called, and stop returns the longest it waited for it.
func probeLock(c *Cache) (stop func() time.Duration) {
	done, longest := make(chan struct{}), make(chan time.Duration)
	go func() {
		var most time.Duration
		for {
			select {
			case <-done:
				longest <- most
				return
			default:
			}
			start := time.Now()
			c.mu.Lock()
			most = max(most, time.Since(start))
			c.mu.Unlock()
			time.Sleep(50 * time.Microsecond)
		}
	}()
	return func() time.Duration {
		close(done)
		return <-longest
	}
}

// BenchmarkConnect connects clients streams that each watch the same names
// clusters and names assignments, as in BenchmarkDisconnect, and reports
// the mean and longest connect and the longest that a writer (an Apply)
// waited for the cache's lock meanwhile. With identical subscriptions
// every list of watchers reaches a capacity step at the same client, whose
// connect grows them all (see watchChunk).
func BenchmarkConnect(b *testing.B) {
	clients, names := 1000, 1000
	if testing.Short() {
		clients, names = 10, 10
	}
	world := benchWorld(b, names, 1, 0)
	var longest, wait time.Duration
	for b.Loop() {
		b.StopTimer()
		c := benchCache(b, world)
		var watched [numTypes][]string
		for _, t := range []typeIndex{clusterType, endpointType} {
			for _, r := range c.all(t, model.Client{}) {
				watched[t] = append(watched[t], r.Name)
			}
		}
		stop := probeLock(c)
		b.StartTimer()
		for range clients {
			w := newSubscriber()
			c.register(w)
			start := time.Now()
			for _, t := range []typeIndex{clusterType, endpointType} {
				c.watch(w, t, false, watched[t], nil)
			}
			longest = max(longest, time.Since(start))
		}
		b.StopTimer()
		wait = max(wait, stop())
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*clients), "ns/connect")
	b.ReportMetric(float64(longest.Nanoseconds()), "max-ns/connect")
	b.ReportMetric(float64(wait.Nanoseconds()), "max-wait-ns")
}
