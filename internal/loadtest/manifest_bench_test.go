package loadtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"

	"github.com/switchboard-xds/switchboard/model"
	"github.com/switchboard-xds/switchboard/pipeline"
	"github.com/switchboard-xds/switchboard/translator"
	"github.com/switchboard-xds/switchboard/watcher"
	"github.com/switchboard-xds/switchboard/xds"
)

// manifestVersion is version v of the one Service of the benchmark's folder:
// Service 0 of a World, with one endpoint whose address encodes v.
func manifestVersion(v int) string {
	key := ServiceKey(0)
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  ports: [{name: grpc, port: %[3]d}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[1]s-1
  namespace: %[2]s
  labels: {kubernetes.io/service-name: %[1]s}
addressType: IPv4
ports: [{name: grpc, port: %[3]d}]
endpoints:
- addresses: ["10.200.%[4]d.%[5]d"]
`, key.Name, key.Namespace, servicePort, (v/250)%250, v%250+1)
}

// BenchmarkManifestRenameToACK measures how long a new version of a
// manifest file, renamed into place, takes to reach 100 SotW ADS clients: the
// real ManifestSource feeds the real Syncer, Cache and ADS server on
// loopback, and an op ends when every client has ACKed the new assignment.
// ns/op is the mean of those latencies; p50-ns and p99-ns their quantiles.
// Ops are spaced by a random pause (off the clock) of up to 250 ms.
// It uses watcher.Options' defaults, so it measures what `switchboard serve
// --manifests` does out of the box. Two ways in: from=folder writes the new
// version beside the file and renames it over the file (an editor, kubectl
// cp to a temporary name); from=staging writes it in another folder of the
// same filesystem and moves it in (mv, as scripts and sync tools do). Both
// are complete when they arrive and are read at once.
func BenchmarkManifestRenameToACK(b *testing.B) {
	b.Run("from=folder", func(b *testing.B) { benchManifestRename(b, "") })
	b.Run("from=staging", func(b *testing.B) { benchManifestRename(b, b.TempDir()) })
}

// benchManifestRename is BenchmarkManifestRenameToACK with the new version
// written in staging ("" for the manifest folder itself).
func benchManifestRename(b *testing.B, staging string) {
	const clients = 100
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := b.TempDir()
	target := filepath.Join(dir, "svc.yaml")
	if err := os.WriteFile(target, []byte(manifestVersion(0)), 0o644); err != nil {
		b.Fatal(err)
	}

	cache := pipeline.NewCache(nil)
	syncer := pipeline.NewSyncer(cache, pipeline.Options{})
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xds.NewServer(cache, xds.ServerOptions{}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	// The sink learns the digest of the assignment a batch carries before
	// the Syncer stores it, so no client can ACK it unnoticed.
	h := newHasher()
	var current atomic.Pointer[change]
	var churn atomic.Pointer[churnTracker]
	var seq int
	changes := make(chan *change, 16)
	sink := func(batch model.Batch) {
		if svc := batch.Services[ServiceKey(0)]; svc != nil && !batch.Full {
			res, diags := translator.Service(translator.Options{}, svc)
			if len(diags) > 0 || len(res.Assignments) != 1 {
				b.Errorf("translate: %v", diags)
			} else {
				seq++
				ch := &change{seq: seq, name: ResourceName(0), digest: h.bytes(res.Assignments[0].Wire), done: make(chan struct{})}
				ch.remaining.Store(clients)
				current.Store(ch)
				changes <- ch
			}
		}
		syncer.Sink(batch)
	}
	src, err := watcher.NewManifestSource(dir, watcher.Options{})
	if err != nil {
		b.Fatal(err)
	}
	srcDone := make(chan error, 1)
	go func() { srcDone <- src.Run(ctx, sink) }()
	defer func() {
		cancel()
		if err := <-srcDone; err != nil {
			b.Error(err)
		}
	}()

	cs := make([]*client, clients)
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.close()
			}
		}
	}()
	for i := range cs {
		cs[i] = newClient(i, ResourceName, []int{0}, []int{i}, h, &current, &churn)
		if err := cs[i].start(ctx, lis.Addr().String()); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range cs {
		select {
		case <-c.synced:
		case <-c.done:
			b.Fatalf("client %d ended before its initial sync: %v", c.id, c.err)
		case <-time.After(30 * time.Second):
			b.Fatalf("client %d not synced after 30s", c.id)
		}
	}

	lat := make([]time.Duration, 0, b.N)
	tmp := filepath.Join(dir, ".svc.yaml.tmp")
	if staging != "" {
		tmp = filepath.Join(staging, "svc.yaml")
	}
	b.ResetTimer()
	for k := 1; k <= b.N; k++ {
		b.StopTimer()
		// A random pause decorrelates the rename from any polling phase,
		// as a user's edit is: without it each op would start just after
		// the poll that ended the previous one.
		time.Sleep(rand.N(250 * time.Millisecond))
		if err := os.WriteFile(tmp, []byte(manifestVersion(k)), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := os.Rename(tmp, target); err != nil {
			b.Fatal(err)
		}
		var ch *change
		select {
		case ch = <-changes:
		case <-time.After(30 * time.Second):
			b.Fatalf("version %d: no batch after 30s", k)
		}
		select {
		case <-ch.done:
		case <-time.After(30 * time.Second):
			b.Fatalf("version %d: %d clients have not ACKed after 30s", k, ch.remaining.Load())
		}
		lat = append(lat, time.Unix(0, ch.end.Load()).Sub(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(lat)), "ns/op")
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Nanoseconds()), "p99-ns")
}
