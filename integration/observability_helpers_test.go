package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/switchboard-xds/switchboard/deploy/observability"
)

// repoRoot is the repository's root directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

// demoSwitchboard runs `switchboard serve --manifests` on a folder world
// that starts with the demo's manifests (deploy/examples).
func demoSwitchboard(t *testing.T, bin string) (folderWorld, *switchboard) {
	t.Helper()
	w := newFolderWorld(t)
	examples, err := filepath.Glob(filepath.Join(repoRoot(), "deploy", "examples", "*.yaml"))
	if err != nil || len(examples) == 0 {
		t.Fatalf("deploy/examples: %v (%d files)", err, len(examples))
	}
	for _, f := range examples {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		w.writeBytes(t, filepath.Join(w.dir, filepath.Base(f)), b)
	}
	return w, startSwitchboard(t, bin, "--manifests", w.dir)
}

// scrapedNames returns the sample names in a scrape of /metrics, as a
// query names them: a counter's or gauge's name; a histogram's _bucket,
// _sum and _count; a summary's name, _sum and _count.
func scrapedNames(t *testing.T, sb *switchboard) map[string]bool {
	t.Helper()
	code, body := sb.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	names := map[string]bool{}
	for name, mf := range families {
		if len(mf.GetMetric()) == 0 {
			continue
		}
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names
}

// prometheusSynthetic are the series Prometheus makes itself for each
// target; rules may read them though no exporter exports them.
var prometheusSynthetic = map[string]bool{"up": true}

// referencedNames maps every metric name the dashboard and the rules read
// to the panels and alerts that read it.
func referencedNames(t *testing.T) map[string][]string {
	t.Helper()
	rules, err := os.ReadFile(filepath.Join(repoRoot(), observability.RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	rq, err := observability.RuleQueries(rules)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, q := range append(observability.DashboardQueries(), rq...) {
		names, err := observability.MetricNames(observability.Expand(q.Expr, observability.Vars{Job: ".+", Instance: ".+", RateInterval: "1m"}))
		if err != nil {
			t.Fatalf("%s: %v", q.Where, err)
		}
		for _, n := range names {
			out[n] = append(out[n], q.Where)
		}
	}
	return out
}

// prometheus is a running Prometheus server (Debian's /usr/bin/prometheus)
// on loopback.
type prometheus struct {
	addr string
	out  *lockedBuffer
}

// startPrometheus runs Prometheus with config (prometheus.yml's content) and
// the files in extra written next to it, and waits until it is ready. It is
// stopped when the test ends.
func startPrometheus(t *testing.T, config string, extra map[string][]byte) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found (make tools installs Debian's prometheus package): %v", err)
	}
	dir := t.TempDir()
	for name, b := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{addr: freeAddr(t), out: &lockedBuffer{}}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.out.String())
		}
	})
	if err := waitHTTPOK("http://"+p.addr+"/-/ready", done, 60*time.Second); err != nil {
		t.Fatalf("prometheus %v:\n%s", err, p.out.String())
	}
	return p
}

// adsMode is how a rawADS client answers responses.
type adsMode int

const (
	nackAll  adsMode = iota // NACK every response
	neverAck                // read responses and answer none
)

// rawADS is an ADS client written against the protocol, not a gRPC
// library: it subscribes to every Listener and Cluster (wildcard) and then
// NACKs or ignores what it gets, which no real client does on purpose.
type rawADS struct {
	responses atomic.Int64
	stop      func()
}

// startRawADS opens one SotW ADS stream to addr as a node with the given
// user agent (which picks its client class) and runs it until the test
// ends or until its stop is called.
func startRawADS(t *testing.T, addr, nodeID, userAgent string, mode adsMode) *rawADS {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	var once sync.Once
	c := &rawADS{stop: func() { once.Do(func() { cancel(); <-done; _ = conn.Close() }) }}
	t.Cleanup(c.stop)
	node := &corev3.Node{Id: nodeID, UserAgentName: userAgent, Locality: &corev3.Locality{Zone: "z1"}}
	for i, typ := range []string{resourcev3.ListenerType, resourcev3.ClusterType} {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: typ}
		if i == 0 {
			req.Node = node
		}
		if err := stream.Send(req); err != nil {
			t.Fatalf("raw ADS %s: subscribe %s: %v", nodeID, typ, err)
		}
	}
	go func() {
		defer close(done)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			c.responses.Add(1)
			if mode != nackAll {
				continue
			}
			nack := &discoveryv3.DiscoveryRequest{
				TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce(),
				ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: "this test client NACKs everything"},
			}
			if err := stream.Send(nack); err != nil {
				return
			}
		}
	}()
	return c
}

// waitResponses waits until the client has received at least n responses.
func (c *rawADS) waitResponses(ctx context.Context, n int64) error {
	for c.responses.Load() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("raw ADS client: %d responses, want %d: %w", c.responses.Load(), n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
