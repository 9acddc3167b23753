package xdsauth

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchboard-xds/switchboard/internal/poll"
	"github.com/switchboard-xds/switchboard/internal/testpki"
	"github.com/switchboard-xds/switchboard/pipeline"
	"github.com/switchboard-xds/switchboard/xds"
)

// pki is a server certificate and a client CA bundle in files, as
// switchboard serve reads them.
type pki struct {
	dir                 string
	ca                  *testpki.CA
	cert, key, clientCA string
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), ca: testpki.NewCA(t, "ca-1")}
	p.cert, p.key = p.ca.Issue(t, p.dir, "server", testpki.Leaf{CommonName: "switchboard", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	p.clientCA = filepath.Join(p.dir, "client-ca.pem")
	testpki.Write(t, p.clientCA, p.ca.PEM)
	return p
}

// server runs an ADS server with creds on a loopback port; its cache holds
// an empty world, so a listener request is answered at once.
func server(t *testing.T, creds *Credentials, authorize bool) string {
	t.Helper()
	cache := pipeline.NewCache(nil)
	if _, err := cache.Apply(xds.Update{Full: true}); err != nil {
		t.Fatal(err)
	}
	opts := xds.ServerOptions{}
	if authorize {
		opts.Authorize = creds.Authorize
	}
	gs := grpc.NewServer(creds.ServerOption())
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xds.NewServer(cache, opts))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// adsStream is a raw ADS client stream over TLS.
type adsStream struct {
	t    *testing.T
	s    discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	last *discoveryv3.DiscoveryResponse
	// openErr is why the stream did not start.
	openErr error
}

// dial opens an ADS stream to addr, trusting roots and presenting the
// certificate in certFile/keyFile (none when certFile is empty).
func dial(t *testing.T, addr string, roots []byte, certFile, keyFile string) *adsStream {
	t.Helper()
	cfg := testpki.ClientConfig(t, roots, certFile, keyFile)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	// A refused handshake may fail the stream's start already; ask
	// reports it.
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	return &adsStream{t: t, s: s, openErr: err}
}

// ask sends a listener request for name (with node on the first, ACKing
// the last response on later ones) and returns the response or the error
// that ended the stream.
func (a *adsStream) ask(node *corev3.Node, name string) (*discoveryv3.DiscoveryResponse, error) {
	if a.openErr != nil {
		return nil, a.openErr
	}
	req := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ListenerType, ResourceNames: []string{name}}
	if a.last != nil {
		req.ResponseNonce, req.VersionInfo = a.last.GetNonce(), a.last.GetVersionInfo()
	}
	if err := a.s.Send(req); err != nil {
		_, rerr := a.s.Recv() // Send fails with io.EOF; Recv has the status
		return nil, rerr
	}
	r, err := a.s.Recv()
	a.last = r
	return r, err
}

func nodeIn(id, namespace string) *corev3.Node {
	n := &corev3.Node{Id: id}
	if namespace != "" {
		n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{"NAMESPACE": structpb.NewStringValue(namespace)}}
	}
	return n
}

// TestReloadKeepsStreams: new files are served to new connections within a
// poll, while a stream opened before the change keeps working.
func TestReloadKeepsStreams(t *testing.T) {
	p := newPKI(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	creds, err := New(Options{CertFile: p.cert, KeyFile: p.key, ClientCAFile: p.clientCA, PollInterval: 10 * time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = creds.Run(ctx) }()
	addr := server(t, creds, true)
	id := "spiffe://cluster.local/ns/team/sa/app"
	c1, k1 := p.ca.Issue(t, p.dir, "client-1", testpki.Leaf{URIs: []string{id}})

	old := dial(t, addr, p.ca.PEM, c1, k1)
	if _, err := old.ask(nodeIn("n1", "team"), "a"); err != nil {
		t.Fatalf("before the change: %v", err)
	}

	// Rotate to a new CA: a new serving certificate and client CA bundle.
	ca2 := testpki.NewCA(t, "ca-2")
	cert2, key2 := ca2.Issue(t, t.TempDir(), "server", testpki.Leaf{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	c2, k2 := ca2.Issue(t, p.dir, "client-2", testpki.Leaf{URIs: []string{id}})
	// The client CA bundle, then the key, then the certificate: in
	// between, the pair does not match, which must keep the old pair, not
	// break the server.
	testpki.Write(t, p.clientCA, ca2.PEM)
	copyFile(t, key2, p.key)
	copyFile(t, cert2, p.cert)
	waitFor(t, "the new CA to be served", func() bool {
		cs, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err != nil {
			return false
		}
		defer cs.Close()
		return cs.ConnectionState().PeerCertificates[0].Issuer.CommonName == "ca-2"
	})

	if _, err := old.ask(nil, "b"); err != nil {
		t.Errorf("the stream opened before the change ended: %v", err)
	}
	if _, err := dial(t, addr, ca2.PEM, c2, k2).ask(nodeIn("n2", "team"), "a"); err != nil {
		t.Errorf("a client of the new CA: %v", err)
	}
	if _, err := dial(t, addr, ca2.PEM, c1, k1).ask(nodeIn("n3", "team"), "a"); err == nil {
		t.Error("a new connection with a client certificate of the old CA was accepted")
	}
	if n := testutil.ToFloat64(m.reloads.WithLabelValues("success")); n < 1 {
		t.Errorf("reloads{result=success} = %v, want >= 1", n)
	}
	if got, want := testutil.ToFloat64(m.expiry), float64(creds.cur.Load().notAfter.Unix()); got != want {
		t.Errorf("expiry gauge = %v, want %v", got, want)
	}
}

// TestBrokenFilesKeepPrevious: files that do not load are reported once and
// the previous material kept until the files are good again.
func TestBrokenFilesKeepPrevious(t *testing.T) {
	p := newPKI(t)
	m := NewMetrics(prometheus.NewRegistry())
	creds, err := New(Options{CertFile: p.cert, KeyFile: p.key, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	before := creds.cur.Load()
	testpki.Write(t, p.key, []byte("not a key"))
	creds.poll()
	creds.poll() // the same broken content is not counted twice
	if creds.cur.Load() != before {
		t.Error("a broken key replaced the material in use")
	}
	if n := testutil.ToFloat64(m.reloads.WithLabelValues("failure")); n != 1 {
		t.Errorf("reloads{result=failure} = %v, want 1", n)
	}
	if err := os.Remove(p.cert); err != nil {
		t.Fatal(err)
	}
	creds.poll()
	if creds.cur.Load() != before {
		t.Error("a missing certificate replaced the material in use")
	}
	cert, key := p.ca.Issue(t, t.TempDir(), "again", testpki.Leaf{})
	copyFile(t, cert, p.cert)
	copyFile(t, key, p.key)
	creds.poll()
	if creds.cur.Load() == before {
		t.Error("good files again were not loaded")
	}
	if n := testutil.ToFloat64(m.reloads.WithLabelValues("success")); n != 1 {
		t.Errorf("reloads{result=success} = %v, want 1", n)
	}
}

func TestNewRefusesBadFiles(t *testing.T) {
	p := newPKI(t)
	other, otherKey := p.ca.Issue(t, p.dir, "other", testpki.Leaf{})
	notPEM := filepath.Join(p.dir, "junk")
	testpki.Write(t, notPEM, []byte("junk"))
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no key", Options{CertFile: p.cert}, "both required"},
		{"missing file", Options{CertFile: p.cert, KeyFile: filepath.Join(p.dir, "nope")}, "nope"},
		{"key of another certificate", Options{CertFile: p.cert, KeyFile: otherKey}, "does not match"},
		{"CA bundle without a certificate", Options{CertFile: other, KeyFile: otherKey, ClientCAFile: notPEM}, "no PEM certificate"},
	} {
		if _, err := New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	testpki.Write(t, to, b)
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 10*time.Second, what, cond)
}

// BenchmarkPollUnchanged is the cost of one poll when nothing changed: what
// Run spends every PollInterval.
func BenchmarkPollUnchanged(b *testing.B) {
	p := newPKI(b)
	creds, err := New(Options{CertFile: p.cert, KeyFile: p.key, ClientCAFile: p.clientCA})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		creds.poll()
	}
}
