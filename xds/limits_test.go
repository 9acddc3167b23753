package xds

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-xds/switchboard/internal/poll"
	"github.com/switchboard-xds/switchboard/model"
)

// logBuffer is a log destination that tests may read while streams write.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func limitHits(h *harness, l limit) float64 { return testutil.ToFloat64(h.metrics.byLimit[l]) }

// refusedWith waits for the stream to end and checks that it ended with
// code and a message naming flag.
func refusedWith[R any](t *testing.T, resps <-chan R, errc <-chan error, code codes.Code, flag string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-resps:
		case err := <-errc:
			if s := status.Convert(err); s.Code() != code || !strings.Contains(s.Message(), flag) {
				t.Fatalf("stream ended with %v, want %v naming %s", err, code, flag)
			}
			return
		case <-deadline:
			t.Fatalf("stream not ended within 10s, want %v naming %s", code, flag)
		}
	}
}

// wellBehaved is a client of EDS "a" on its own connection: after each
// check, a change to a reaches it.
type wellBehaved struct {
	h *harness
	c *client
	w uint32
}

func newWellBehaved(t *testing.T, h *harness) *wellBehaved {
	t.Helper()
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c, _ := clientOn(t, conn)
	g := &wellBehaved{h: h, c: c, w: 1}
	g.c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	g.c.request(resourcev3.EndpointType, []string{"a"}, g.c.next(), "")
	return g
}

// check changes a and waits for the well-behaved client to get it.
func (g *wellBehaved) check(t *testing.T) {
	t.Helper()
	g.w++
	apply(t, g.h.cache, false, map[string]*model.Resources{"ns/a": svc("a", g.w)})
	r := g.c.next()
	if got := weight(t, r, 0); got != g.w {
		t.Fatalf("well-behaved client got weight %d, want %d", got, g.w)
	}
	g.c.request(resourcev3.EndpointType, []string{"a"}, r, "")
}

// The hostile case: 2000 NACKs of one response, each with a long message.
// They count as one NACK, make one log line of bounded length, keep the
// message cut short with its length, and another client goes on getting
// updates meanwhile.
func TestNackFloodCountedOnceAndLoggedOnce(t *testing.T) {
	var logs logBuffer
	h := newHarnessWith(t, ServerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	good := newWellBehaved(t, h)
	c := h.client(t)
	c.request(resourcev3.ClusterType, nil, nil, "")
	r := c.next()
	msg := strings.Repeat("x", 16<<10)
	flood := make(chan error, 1)
	go func() {
		for range 2000 {
			if err := c.stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: r.GetNonce(), ErrorDetail: &statuspb.Status{Code: int32(codes.InvalidArgument), Message: msg}}); err != nil {
				flood <- err
				return
			}
		}
		flood <- nil
	}()
	good.check(t)
	if err := <-flood; err != nil {
		t.Fatal(err)
	}
	// A request after the flood: its answer means the flood was read.
	c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	c.next()
	good.check(t)

	if got := testutil.ToFloat64(h.metrics.nacks.WithLabelValues("cds", "other")); got != 1 {
		t.Errorf("nacks{cds} = %v after 2000 NACKs of one response, want 1", got)
	}
	if got := limitHits(h, limitNackLog); got != 1999 {
		t.Errorf("limit_exceeded{nack_log} = %v, want the 1999 repeats", got)
	}
	if got := limitHits(h, limitNackDetail); got != 1 {
		t.Errorf("limit_exceeded{nack_detail_bytes} = %v, want 1", got)
	}
	if n := strings.Count(logs.String(), "client rejected xDS response"); n != 1 {
		t.Errorf("%d NACK log lines, want 1", n)
	}
	if n := len(logs.String()); n > 8<<10 {
		t.Errorf("%d bytes of log for the flood, want at most 8 KiB", n)
	}
	var cs ClientStatus
	for _, s := range h.srv.Clients() {
		if s.Types[clusterType].Nacks > 0 {
			cs = s
		}
	}
	ts := cs.Types[clusterType]
	if ts.Nacks != 1 || ts.LastNackBytes != len(msg) || len(ts.LastNack) > DefaultLimits().MaxNackDetailBytes+64 || !strings.Contains(ts.LastNack, fmt.Sprintf("[cut: %d bytes]", len(msg))) {
		t.Errorf("status: %d NACKs, last of %d bytes (%d kept, ending %q)", ts.Nacks, ts.LastNackBytes, len(ts.LastNack), ts.LastNack[max(0, len(ts.LastNack)-40):])
	}
}

// NACKs of new responses are logged one per type at once, then one per
// NackLogInterval; the line after a pause says how many were held back.
func TestNackLogsSpaced(t *testing.T) {
	var logs logBuffer
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	h := newHarnessWith(t, ServerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: clock.Now})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	c := h.client(t)
	c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	r := c.next()
	nack := func(i int) {
		t.Helper()
		c.request(resourcev3.EndpointType, []string{"a"}, r, fmt.Sprintf("bad %d", i))
		waitFor(t, func() bool {
			cs := h.srv.Clients()
			return len(cs) == 1 && cs[0].Types[endpointType].Nacks == i
		})
		apply(t, h.cache, false, map[string]*model.Resources{"ns/a": svc("a", uint32(i+1))})
		r = c.next()
	}
	for i := 1; i <= 6; i++ {
		nack(i)
	}
	if n := strings.Count(logs.String(), "client rejected xDS response"); n != int(numTypes) {
		t.Fatalf("%d NACK lines for 6 NACKs at once, want %d:\n%s", n, numTypes, logs.String())
	}
	clock.advance(DefaultLimits().NackLogInterval)
	nack(7)
	if n := strings.Count(logs.String(), "client rejected xDS response"); n != int(numTypes)+1 {
		t.Fatalf("%d NACK lines after one interval, want %d", n, numTypes+1)
	}
	if !strings.Contains(logs.String(), `error="bad 7"`) || !strings.Contains(logs.String(), "nack_lines_suppressed=2") {
		t.Fatalf("the line after the pause does not carry NACK 7 and the 2 held back:\n%s", logs.String())
	}
	if got := testutil.ToFloat64(h.metrics.nacks.WithLabelValues("eds", "other")); got != 7 {
		t.Fatalf("nacks{eds} = %v, want 7", got)
	}
}

// A 4 MB node id is kept, shown and logged cut short, with its length.
func TestLongNodeIDCut(t *testing.T) {
	var logs logBuffer
	h := newHarnessWith(t, ServerOptions{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	c := h.client(t)
	c.node = &corev3.Node{Id: strings.Repeat("n", 4_000_000), UserAgentName: strings.Repeat("u", 1000)}
	c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
	r := c.next()
	c.request(resourcev3.EndpointType, []string{"a"}, r, "rejected") // a log line naming the node
	waitFor(t, func() bool { return strings.Contains(logs.String(), "rejected") })
	cs := h.srv.Clients()
	max := DefaultLimits().MaxNodeIDBytes
	if len(cs) != 1 || cs[0].NodeIDBytes != 4_000_000 || len(cs[0].NodeID) > max+64 || !strings.HasSuffix(cs[0].NodeID, "[cut: 4000000 bytes]") || len(cs[0].UserAgent) > max+64 {
		t.Fatalf("status keeps a node id of %d bytes (said %d), user agent of %d", len(cs[0].NodeID), cs[0].NodeIDBytes, len(cs[0].UserAgent))
	}
	if n := len(logs.String()); n > 4<<10 {
		t.Fatalf("%d bytes of log for one NACK", n)
	}
	if got := limitHits(h, limitNodeID); got != 2 {
		t.Fatalf("limit_exceeded{node_id_bytes} = %v, want 2 (id and user agent)", got)
	}
}

func unknownNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("unknown-%d", i)
	}
	return out
}

// The hostile case: SotW and delta subscriptions of 100k names, and a
// delta request holding 100k names, are refused under the default limit,
// naming the flag; a well-behaved client sees nothing of it.
func TestTooManyNamesRefused(t *testing.T) {
	h := newHarness(t)
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	good := newWellBehaved(t, h)
	many := unknownNames(100_000)

	c := h.client(t)
	c.request(resourcev3.ListenerType, many, nil, "")
	refusedWith(t, c.resps, c.errc, codes.ResourceExhausted, "--xds-max-names")
	good.check(t)

	d := h.deltaClient(t)
	d.subscribe(resourcev3.ClusterType, many...)
	refusedWith(t, d.resps, d.errc, codes.ResourceExhausted, "--xds-max-names")

	iv := map[string]string{}
	for _, n := range many {
		iv[n] = "1"
	}
	d = h.deltaClient(t)
	d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, InitialResourceVersions: iv})
	refusedWith(t, d.resps, d.errc, codes.ResourceExhausted, "--xds-max-names")

	// Delta subscriptions add up: two halves over the limit are refused.
	d = h.deltaClient(t)
	limit := DefaultLimits().MaxNames
	d.subscribe(resourcev3.EndpointType, many[:limit/2+1]...)
	d.next()
	d.subscribe(resourcev3.EndpointType, many[limit/2+1:limit+2]...)
	refusedWith(t, d.resps, d.errc, codes.ResourceExhausted, "--xds-max-names")
	good.check(t)
	if got := limitHits(h, limitNames); got != 4 {
		t.Fatalf("limit_exceeded{names} = %v, want 4", got)
	}
}

// The hostile case: an LDS request naming 100k listeners that name no
// Service (with the name limit raised to allow it) gets MaxUnknownListeners
// placeholders, not 100k, next to the real listener it asked for.
func TestUnknownListenersBounded(t *testing.T) {
	h := newHarnessWith(t, ServerOptions{Limits: Limits{MaxNames: 200_000}})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	c := h.client(t)
	c.request(resourcev3.ListenerType, append(unknownNames(100_000), "a"), nil, "")
	r := c.next()
	got := names(t, r)
	if want := DefaultLimits().MaxUnknownListeners + 1; len(got) != want || !strings.Contains(strings.Join(got, " "), " a ") && got[0] != "a" {
		t.Fatalf("LDS for 100k unknown names and a: %d listeners, want %d including a", len(got), want)
	}
	if n := proto.Size(r); n > 1<<20 {
		t.Fatalf("LDS response of %d bytes", n)
	}
	if got := limitHits(h, limitUnknownListeners); got != 1 {
		t.Fatalf("limit_exceeded{unknown_listeners} = %v, want 1 (once per stream)", got)
	}
}

// A request over MaxRequestBytes ends its stream with grpc's
// RESOURCE_EXHAUSTED, naming the limit (grpc writes the message; the
// server's log names the flag).
func TestRequestTooLargeRefused(t *testing.T) {
	var logs logBuffer
	h := newHarnessWith(t, ServerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Limits: Limits{MaxRequestBytes: 64 << 10}})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	good := newWellBehaved(t, h)
	c := h.client(t)
	c.request(resourcev3.ListenerType, unknownNames(10_000), nil, "")
	refusedWith(t, c.resps, c.errc, codes.ResourceExhausted, "vs. 65536")
	good.check(t)
	if got := limitHits(h, limitRequestBytes); got != 1 {
		t.Fatalf("limit_exceeded{request_bytes} = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "flag=--xds-max-request-bytes") {
		t.Fatalf("no log line names the flag:\n%s", logs.String())
	}
}

// One stream more than MaxStreamsPerConnection on a connection is refused,
// naming the flag; streams on other connections, and on the same one once
// a stream ended, are served.
func TestStreamsPerConnectionBounded(t *testing.T) {
	h := newHarnessWith(t, ServerOptions{Limits: Limits{MaxStreamsPerConnection: 3}})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	open := func() (*client, context.CancelFunc) {
		c, cancel := clientOn(t, h.conn)
		c.request(resourcev3.EndpointType, []string{"a"}, nil, "")
		return c, cancel
	}
	var cancels []context.CancelFunc
	for range 3 {
		c, cancel := open()
		c.next()
		cancels = append(cancels, cancel)
	}
	extra, _ := open()
	refusedWith(t, extra.resps, extra.errc, codes.ResourceExhausted, "--xds-max-streams-per-connection")
	newWellBehaved(t, h).check(t)
	cancels[0]()
	waitFor(t, func() bool { return len(h.srv.Clients()) == 3 })
	c, _ := open()
	c.next()
	if got := limitHits(h, limitStreams); got != 1 {
		t.Fatalf("limit_exceeded{streams_per_connection} = %v, want 1", got)
	}
}

// Connections over MaxConnections are closed at once; once one ends, a
// new one is served.
func TestConnectionsBounded(t *testing.T) {
	h := newHarnessWith(t, ServerOptions{Limits: Limits{MaxConnections: 2}})
	apply(t, h.cache, true, map[string]*model.Resources{"ns/a": svc("a", 1)})
	good := newWellBehaved(t, h) // connection 1
	served := func(c net.Conn) bool {
		// A served connection gets the server's HTTP/2 SETTINGS; a
		// refused one is closed.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 64))
		return err == nil
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	second := dial()
	if !served(second) {
		t.Fatal("the second connection was refused")
	}
	for range 20 {
		if served(dial()) {
			t.Fatal("a connection over the limit was served")
		}
	}
	// The server closes a refused connection before it counts it, so the
	// client may see the close first.
	poll.Wait(10*time.Second, func() bool { return limitHits(h, limitConnections) >= 20 })
	if got := limitHits(h, limitConnections); got != 20 {
		t.Fatalf("limit_exceeded{connections} = %v, want 20", got)
	}
	good.check(t)
	_ = second.Close()
	// The server sees the close when it reads it: until then a new
	// connection is still refused.
	poll.Until(t, 10*time.Second, "a connection served after one closed", func() bool { return served(dial()) })
}
