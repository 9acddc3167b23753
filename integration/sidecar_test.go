package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-xds/switchboard/integration/harness"
	"github.com/switchboard-xds/switchboard/internal/envoysim"
)

// TestSidecar is the routing proof of the Envoy sidecar resources (issue
// #11) through the built binary, from a manifest folder and from a real
// API server: three Envoy-shaped ADS clients (envoysim: delta and SotW in
// the Services' namespace, delta in another) receive the listeners,
// routes, clusters, assignments and DNS table, envoysim.Check finds
// nothing Envoy would reject, and walking connections through what each
// client holds (original destination -> listener -> chain -> HCM/RDS ->
// virtual host -> cluster -> endpoints) lands where kube-proxy would send
// them: every Host form of an HTTP Service, TCP and UDP ClusterIPs,
// headless pods and unknown destinations (passthrough), and DNS answers.
// Then an endpoint change, a deleted Service and a new one arrive.
func TestSidecar(t *testing.T) {
	bin := switchboardBinary(t)
	t.Run("manifests", func(t *testing.T) {
		t.Parallel()
		w := newFolderWorld(t)
		runSidecar(t, w, startSwitchboard(t, bin, "--manifests", w.dir))
	})
	t.Run("apiserver", func(t *testing.T) {
		t.Parallel()
		kubeconfig, admin := switchboardKubeconfig(t)
		runSidecar(t, apiWorld{admin}, startSwitchboard(t, bin, "--kubeconfig", kubeconfig))
	})
}

func runSidecar(t *testing.T, w world, sb *switchboard) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := &sidecarScene{t: t, w: w, ns: w.Namespace(t), other: w.Namespace(t), svcs: map[string]*sidecarSvc{}}
	t0 := time.Now()
	s.add("web", harness.Port{Name: "http", Port: 80}, false, "10.244.1.1", "10.244.1.2")
	s.add("api", harness.Port{Name: "http", Port: 80}, false, "10.244.2.1")
	s.add("db", harness.Port{Name: "pg", Port: 5432}, false, "10.244.3.1", "10.244.3.2")
	s.add("replica", harness.Port{Name: "pg", Port: 5432}, false, "10.244.4.1")
	s.add("resolver", harness.Port{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, false, "10.244.5.1", "10.244.5.2")
	s.add("kafka", harness.Port{Name: "broker", Port: 9092}, true, "10.244.6.1", "10.244.6.2")
	// UDP limited to the Services' own namespace (and one with no
	// clients): its listener reaches only the sidecars that may see it.
	s.limited = "stats"
	s.add("stats", harness.Port{Name: "statsd", Port: 8125, Protocol: corev1.ProtocolUDP}, false, "10.244.8.1")
	if s.svcs["db"].ip == s.svcs["replica"].ip {
		t.Fatalf("db and replica share ClusterIP %s", s.svcs["db"].ip)
	}

	clients := []sidecarClient{
		s.dial(ctx, sb, "delta", s.ns, true),
		s.dial(ctx, sb, "sotw", s.ns, false),
		s.dial(ctx, sb, "other-namespace", s.other, true),
	}
	s.converge(ctx, "initial state", t0, clients)

	// One endpoint of web is replaced by another; so is one pod of the
	// headless kafka, whose pod IPs are its DNS answer.
	t0 = time.Now()
	s.setPods("web", "10.244.1.1", "10.244.1.3")
	s.setPods("kafka", "10.244.6.1", "10.244.6.3")
	s.converge(ctx, "web and kafka endpoints replaced", t0, clients)

	// db goes: its ClusterIP passes through, its cluster is gone.
	t0 = time.Now()
	w.DeleteService(t, s.ns, "db")
	s.svcs["db"].gone = true
	s.converge(ctx, "db deleted", t0, clients)

	// A Service on a port no listener had yet.
	t0 = time.Now()
	s.add("cache", harness.Port{Name: "redis", Port: 6379}, false, "10.244.7.1")
	s.converge(ctx, "cache added", t0, clients)

	// The last Services on their ports go, and their listeners with them.
	t0 = time.Now()
	for _, name := range []string{"cache", "resolver"} {
		w.DeleteService(t, s.ns, name)
		s.svcs[name].gone = true
	}
	s.converge(ctx, "cache and resolver deleted", t0, clients)

	// Sidecars that connect now get the same, built incrementally.
	t0 = time.Now()
	late := []sidecarClient{s.dial(ctx, sb, "late-sotw", s.ns, false), s.dial(ctx, sb, "late-other", s.other, true)}
	s.converge(ctx, "late clients", t0, late)
}

// sidecarSvc is one single-port Service of the story as written: its
// ClusterIP (as allocated; "None" when headless) and its endpoint
// addresses, one ready endpoint each.
type sidecarSvc struct {
	port    harness.Port
	ip      string
	pods    []string
	gone    bool // deleted
	limited bool // visible to its own namespace only (and one without clients)
}

// sidecarScene is the story's Services in namespace ns; other is a
// namespace with none of its own.
type sidecarScene struct {
	t         *testing.T
	w         world
	ns, other string
	svcs      map[string]*sidecarSvc
	order     []string // Service names, as added
	// limited names the next Service add gives the visible-to annotation.
	limited string
}

// sidecarClient is one envoysim client; ns is its node's NAMESPACE.
type sidecarClient struct {
	name string
	ns   string
	c    *envoysim.Client
}

func (s *sidecarScene) add(name string, p harness.Port, headless bool, pods ...string) {
	s.t.Helper()
	svc := newService(s.ns, name, p)
	limited := s.limited == name
	if limited {
		svc.Annotations = map[string]string{"switchboard.io/visible-to": "nobody-here"}
	}
	svc.Spec.ClusterIP = s.w.NewClusterIP()
	if headless {
		svc.Spec.ClusterIP = corev1.ClusterIPNone
	}
	s.w.ApplyService(s.t, svc)
	if svc.Spec.ClusterIP == "" {
		s.t.Fatalf("service %s/%s has no ClusterIP after apply", s.ns, name)
	}
	s.svcs[name] = &sidecarSvc{port: p, ip: svc.Spec.ClusterIP, limited: limited}
	s.order = append(s.order, name)
	s.setPods(name, pods...)
}

// setPods writes the Service's one EndpointSlice with pods, all ready.
func (s *sidecarScene) setPods(name string, pods ...string) {
	s.t.Helper()
	svc := s.svcs[name]
	svc.pods = slices.Sorted(slices.Values(pods))
	eps := make([]harness.Endpoint, len(pods))
	for i, ip := range pods {
		eps[i] = harness.Endpoint{Address: ip, State: harness.Ready, Zone: "z1"}
	}
	s.w.ApplySlice(s.t, newSlice(s.ns, name, name+"-1", []harness.Port{svc.port}, eps...))
}

func (s *sidecarScene) dial(ctx context.Context, sb *switchboard, name, ns string, delta bool) sidecarClient {
	s.t.Helper()
	md, err := structpb.NewStruct(map[string]any{"NAMESPACE": ns})
	if err != nil {
		s.t.Fatal(err)
	}
	node := &corev3.Node{Id: "sidecar-" + name + "." + ns, Cluster: "app", UserAgentName: "envoy", Metadata: md}
	c, err := envoysim.Dial(ctx, sb.xds, node, delta)
	if err != nil {
		s.t.Fatalf("%s: %v", name, err)
	}
	s.t.Cleanup(func() { _ = c.Close() })
	return sidecarClient{name: name, ns: ns, c: c}
}

// converge waits until every client's resources route as the scene says,
// then checks each holds nothing Envoy would reject, has sent no NACK and
// holds no listener without an address (no gRPC api_listener).
func (s *sidecarScene) converge(ctx context.Context, what string, t0 time.Time, clients []sidecarClient) {
	s.t.Helper()
	for _, c := range clients {
		err := c.c.WaitFor(ctx, func(cfg *envoysim.Config) bool { return len(s.problems(cfg, c.ns)) == 0 })
		if err != nil {
			s.t.Fatalf("%s: client %s (namespace %s): %v; still wrong:\n  %s", what, c.name, c.ns, err,
				strings.Join(s.problems(c.c.Snapshot(), c.ns), "\n  "))
		}
	}
	s.t.Logf("%s: all %d clients route as expected %v after the first write", what, len(clients), time.Since(t0).Round(time.Millisecond))
	for _, c := range clients {
		cfg := c.c.Snapshot()
		for _, err := range envoysim.Check(cfg) {
			s.t.Errorf("%s: client %s: Envoy would reject: %v", what, c.name, err)
		}
		for _, n := range c.c.Nacks() {
			s.t.Errorf("%s: client %s NACKed %s nonce %s: %s", what, c.name, n.TypeURL, n.Nonce, n.Detail)
		}
		for name, l := range cfg.Listeners {
			if l.GetAddress().GetSocketAddress() == nil {
				s.t.Errorf("%s: client %s holds listener %q without a socket address (api_listener: %t)", what, c.name, name, l.GetApiListener() != nil)
			}
		}
	}
	if s.t.Failed() {
		s.t.FailNow()
	}
}

func (s *sidecarScene) canonical(name string) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local:%d", name, s.ns, s.svcs[name].port.Port)
}

// problems returns every way cfg, as held by a sidecar of namespace ns
// (the scene's or the other one), routes or resolves other than the scene
// says; none when it is right. Names are resolved as the application in
// that pod asks, through its search path (envoysim.Config.ResolveInPod).
func (s *sidecarScene) problems(cfg *envoysim.Config, ns string) []string {
	var out []string
	fail := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	route := func(conn envoysim.Conn, cluster string, eps []string) {
		r, err := cfg.Route(conn)
		switch {
		case err != nil:
			fail("%s %s:%d Host %q: %v (walk %+v)", conn.Protocol, conn.DstIP, conn.DstPort, conn.Host, err, r)
		case r.Cluster != cluster || !slices.Equal(r.Endpoints, eps):
			fail("%s %s:%d Host %q: cluster %q endpoints %v, want %q %v (walk %+v)", conn.Protocol, conn.DstIP, conn.DstPort, conn.Host, r.Cluster, r.Endpoints, cluster, eps, r)
		}
	}
	passthrough := func(conn envoysim.Conn) {
		route(conn, "PassthroughCluster", []string{conn.DstIP + ":" + strconv.Itoa(int(conn.DstPort))})
	}
	resolve := func(name string, qtype uint16, want ...string) {
		got, err := cfg.ResolveInPod("dns", ns, "cluster.local", name, qtype)
		if err != nil || !slices.Equal(got, want) {
			fail("DNS %d %s from %s: %v %v, want %v", qtype, name, ns, got, err, want)
		}
	}
	forwarded := func(name string) {
		if got, err := cfg.ResolveInPod("dns", ns, "cluster.local", name, envoysim.TypeA); !errors.Is(err, envoysim.ErrForwarded) {
			fail("DNS A %s from %s: %v %v, want it forwarded upstream", name, ns, got, err)
		}
	}
	// nameForms resolves every form of a Service's name as the pod would:
	// the short name only from its own namespace.
	nameForms := func(name string, want ...string) {
		for _, n := range []string{name + "." + s.ns, name + "." + s.ns + ".svc", name + "." + s.ns + ".svc.cluster.local"} {
			resolve(n, envoysim.TypeA, want...)
		}
		if ns == s.ns {
			resolve(name, envoysim.TypeA, want...)
		} else {
			forwarded(name)
		}
	}
	for _, name := range s.order {
		svc := s.svcs[name]
		port := uint32(svc.port.Port)
		fqdn := name + "." + s.ns + ".svc.cluster.local"
		eps := make([]string, len(svc.pods))
		for i, ip := range svc.pods {
			eps[i] = ip + ":" + strconv.Itoa(int(port))
		}
		switch {
		case svc.limited && ns != s.ns:
			// Not visible here: no listener, no cluster, no name.
			if l := fmt.Sprintf("udp_%s_%d", svc.ip, port); cfg.Listeners[l] != nil {
				fail("listener %s of a Service visible to other namespaces only is held", l)
			}
			if _, ok := cfg.Clusters[s.canonical(name)+"/udp"]; ok {
				fail("cluster %s/udp of a Service visible to other namespaces only is held", s.canonical(name))
			}
			forwarded(fqdn)
		case svc.limited:
			// Visible: its UDP listener; its name is left to the
			// cluster's DNS (limited Services are not in the table).
			route(envoysim.Conn{Protocol: "udp", DstIP: svc.ip, DstPort: port}, s.canonical(name)+"/udp", eps)
			forwarded(fqdn)
		case svc.gone && svc.port.Protocol == corev1.ProtocolUDP:
			udp := fmt.Sprintf("udp_%s_%d", svc.ip, port)
			if _, ok := cfg.Listeners[udp]; ok {
				fail("listener %s of a deleted Service is still held", udp)
			}
			if _, ok := cfg.Clusters[s.canonical(name)+"/udp"]; ok {
				fail("cluster %s/udp of a deleted Service is still held", s.canonical(name))
			}
			forwarded(fqdn)
		case svc.gone:
			passthrough(envoysim.Conn{Protocol: "tcp", DstIP: svc.ip, DstPort: port})
			if _, ok := cfg.Clusters[s.canonical(name)]; ok {
				fail("cluster %s of a deleted Service is still held", s.canonical(name))
			}
			if l := fmt.Sprintf("%s_%d", svc.ip, port); cfg.Listeners[l] != nil {
				fail("listener %s of a deleted Service is still held", l)
			}
			forwarded(fqdn)
		case svc.ip == corev1.ClusterIPNone:
			for _, ip := range svc.pods {
				passthrough(envoysim.Conn{Protocol: "tcp", DstIP: ip, DstPort: port})
			}
			nameForms(name, svc.pods...)
		case svc.port.Protocol == corev1.ProtocolUDP:
			route(envoysim.Conn{Protocol: "udp", DstIP: svc.ip, DstPort: port}, s.canonical(name)+"/udp", eps)
			nameForms(name, svc.ip)
		case svc.port.Name == "http":
			// The ClusterIP chose the Service: every Host reaches it.
			p := ":" + strconv.Itoa(int(port))
			hosts := []string{svc.ip, svc.ip + p, "unknown.invalid"}
			for _, h := range []string{name, name + "." + s.ns, name + "." + s.ns + ".svc", fqdn} {
				hosts = append(hosts, h, h+p)
			}
			for _, h := range hosts {
				route(envoysim.Conn{Protocol: "tcp", DstIP: svc.ip, DstPort: port, Host: h}, s.canonical(name), eps)
			}
			nameForms(name, svc.ip)
			// SRV records are left to the cluster's DNS.
			if got, err := cfg.ResolveInPod("dns", ns, "cluster.local", "_http._tcp."+fqdn, envoysim.TypeSRV); !errors.Is(err, envoysim.ErrForwarded) {
				fail("DNS SRV _http._tcp.%s: %v %v, want it forwarded upstream", fqdn, got, err)
			}
		default:
			route(envoysim.Conn{Protocol: "tcp", DstIP: svc.ip, DstPort: port}, s.canonical(name), eps)
			nameForms(name, svc.ip)
			// No Service has this address (outside the service CIDR).
			passthrough(envoysim.Conn{Protocol: "tcp", DstIP: "10.97.0.1", DstPort: port})
		}
	}
	return out
}
