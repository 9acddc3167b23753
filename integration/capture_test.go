package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// captureNetnsEnv marks the copy of the test binary that TestCapture runs in
// a network namespace of its own.
const captureNetnsEnv = "SWITCHBOARD_CAPTURE_NETNS"

// The uids of TestCapture: Envoy's (capture.sh's ENVOY_UID) and the
// application's. The test itself runs as root, a third.
const (
	captureEnvoyUID = 1337
	captureAppUID   = 1000
)

// TestCapture runs deploy/sidecar/capture.sh (real iptables, ip6tables and
// ip, as an init container would) and sends traffic as the application's
// uid and as Envoy's through the rules, with the test's sockets standing in
// for Envoy's: a TCP listener on 15001 that reads SO_ORIGINAL_DST,
// transparent UDP sockets bound to ClusterIP:port, a UDP socket on
// 127.0.0.1:15053. A packet socket on the namespace's one outside
// interface (a veth, where 10.96.0.0/12 and 192.0.2.0/24 route) shows what
// left uncaptured. The rules rewrite the whole namespace's traffic, so the
// test re-executes itself in a network namespace of its own, away from the
// other tests of the package.
func TestCapture(t *testing.T) {
	if os.Getenv(captureNetnsEnv) == "" {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run=^TestCapture$", "-test.v", "-test.count=1", "-test.timeout=5m")
		cmd.Env = append(os.Environ(), captureNetnsEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
		out, err := cmd.CombinedOutput()
		t.Logf("in its own network namespace:\n%s", out)
		if err != nil {
			t.Fatalf("TestCapture in its own network namespace: %v", err)
		}
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	probe := probeBinary(t)
	for _, args := range [][]string{
		// The pod's "eth0": one end of a veth pair whose other end drops
		// what it gets (the MAC is no one's). A permanent neighbour entry
		// for the gateway means no ARP: packets leave at once.
		{"link", "add", "sb0", "type", "veth", "peer", "name", "sb1"},
		{"link", "set", "sb1", "up"},
		{"link", "set", "sb0", "up"},
		{"addr", "add", "10.10.0.2/24", "dev", "sb0"},
		{"-6", "addr", "add", "fd00:10::2/64", "dev", "sb0", "nodad"},
		{"neigh", "replace", "10.10.0.1", "lladdr", "02:00:00:00:00:01", "dev", "sb0", "nud", "permanent"},
		{"-6", "neigh", "replace", "fd00:10::1", "lladdr", "02:00:00:00:00:01", "dev", "sb0", "nud", "permanent"},
		{"route", "add", "10.96.0.0/12", "via", "10.10.0.1", "dev", "sb0"},
		{"route", "add", "192.0.2.0/24", "via", "10.10.0.1", "dev", "sb0"},
		{"-6", "route", "add", "fd00:10:96::/112", "via", "fd00:10::1", "dev", "sb0"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	wire := watchWire(t, "sb0")

	env := []string{
		fmt.Sprintf("ENVOY_UID=%d", captureEnvoyUID),
		"SERVICE_CIDRS=10.96.0.0/12,fd00:10:96::/112",
		"EXCLUDE_CIDRS=10.97.0.0/16",
		"EXCLUDE_PORTS=22",
		"ENABLE_IPV6=true",
	}
	first := runCapture(t, env...)
	if again := runCapture(t, env...); again != first {
		t.Errorf("a second run of capture.sh changed the rules:\n--- first\n%s\n--- second\n%s", first, again)
	}

	got := newArrivals()
	for _, network := range []string{"tcp4", "tcp6"} {
		addr := "0.0.0.0:15001"
		if network == "tcp6" {
			addr = "[::]:15001"
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		serveOutbound(t, ln.(*net.TCPListener), got)
	}
	listenUDP(t, "10.96.0.10:5353", true, got)
	listenUDP(t, "[fd00:10:96::10]:5353", true, got)
	listenUDP(t, "127.0.0.1:15053", false, got)
	listenUDP(t, "[::1]:15053", false, got)

	c := captureCase{ctx: ctx, t: t, probe: probe, got: got, wire: wire}
	// Captured: the application's TCP to a ClusterIP or anywhere else, and
	// the test's own (root) TCP, reach 15001 with their destination.
	c.arrives(captureAppUID, "tcp4", "10.96.0.10:80", "tcp 0.0.0.0:15001", "10.96.0.10:80")
	c.arrives(captureAppUID, "tcp4", "192.0.2.80:8080", "tcp 0.0.0.0:15001", "192.0.2.80:8080")
	c.arrives(0, "tcp4", "10.96.0.11:443", "tcp 0.0.0.0:15001", "10.96.0.11:443")
	c.arrives(captureAppUID, "tcp6", "[fd00:10:96::10]:80", "tcp [::]:15001", "[fd00:10:96::10]:80")
	// UDP to a Service address reaches the transparent socket bound to it.
	c.arrives(captureAppUID, "udp4", "10.96.0.10:5353", "udp 10.96.0.10:5353", "10.96.0.10:5353")
	c.arrives(captureAppUID, "udp6", "[fd00:10:96::10]:5353", "udp [fd00:10:96::10]:5353", "[fd00:10:96::10]:5353")
	// DNS to any resolver, a ClusterIP (kube-dns) too, reaches 15053.
	c.arrives(captureAppUID, "udp4", "192.0.2.53:53", "udp 127.0.0.1:15053", "127.0.0.1:15053")
	c.arrives(captureAppUID, "udp4", "10.96.0.10:53", "udp 127.0.0.1:15053", "127.0.0.1:15053")
	c.arrives(captureAppUID, "udp6", "[fd00:10:96::10]:53", "udp [::1]:15053", "[::1]:15053")

	// Not captured: Envoy's own traffic, excluded CIDRs and ports, UDP
	// outside the Service CIDRs.
	c.leaves(captureEnvoyUID, "tcp4", "10.96.0.10:80")
	c.leaves(captureEnvoyUID, "tcp6", "[fd00:10:96::10]:80")
	c.leaves(captureEnvoyUID, "udp4", "10.96.0.10:5353")
	c.leaves(captureEnvoyUID, "udp4", "192.0.2.53:53")
	c.leaves(captureAppUID, "tcp4", "10.96.0.10:22")
	c.leaves(captureAppUID, "tcp4", "10.97.0.5:80")
	c.leaves(captureAppUID, "udp4", "192.0.2.9:9999")

	// Without DNS capture, a query to a ClusterIP is UDP to a Service like
	// any other, and one elsewhere leaves as it is.
	runCapture(t, append(env, "DNS_CAPTURE=false")...)
	listenUDP(t, "10.96.0.10:53", true, got)
	c.arrives(captureAppUID, "udp4", "10.96.0.10:53", "udp 10.96.0.10:53", "10.96.0.10:53")
	c.leaves(captureAppUID, "udp4", "192.0.2.54:53")

	if s := got.strays(); len(s) > 0 {
		t.Errorf("messages no case expected: %s", strings.Join(s, "; "))
	}
}

// runCapture runs capture.sh with env and returns the rules it left
// (iptables-save and ip6tables-save without counters and comments, and the
// ip rules).
func runCapture(t *testing.T, env ...string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "deploy", "sidecar", "capture.sh")
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("capture.sh %v: %v\n%s", env, err, out)
	}
	var rules strings.Builder
	for _, args := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"ip", "-4", "rule"}, {"ip", "-6", "rule"}, {"ip", "-4", "route", "show", "table", "133"}} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(line, "#") {
				rules.WriteString(line + "\n")
			}
		}
	}
	return rules.String()
}

// captureCase sends one probe per call and checks where it went.
type captureCase struct {
	ctx   context.Context
	t     *testing.T
	probe string
	got   *arrivals
	wire  <-chan wirePacket
	n     int
}

// arrives sends a token from uid to addr and checks that the socket named
// at received it with original destination orig, and that the probe got
// the answer back through the rules' reverse translation.
func (c *captureCase) arrives(uid uint32, network, addr, at, orig string) {
	c.t.Helper()
	c.n++
	token := fmt.Sprintf("case-%d-uid-%d-%s-%s", c.n, uid, network, addr)
	arrived := c.got.expect(token)
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	done := startProbe(ctx, c.t, c.probe, uid, network, addr, token)
	select {
	case a := <-arrived:
		if a.at != at || a.orig != netip.MustParseAddrPort(orig) {
			c.t.Errorf("uid %d %s to %s: arrived at %s with original destination %s, want %s with %s", uid, network, addr, a.at, a.orig, at, orig)
		}
	case err := <-done:
		c.t.Errorf("uid %d %s to %s: probe ended before anything arrived at %s: %v", uid, network, addr, at, err)
		return
	case <-ctx.Done():
		c.t.Errorf("uid %d %s to %s: nothing arrived at %s", uid, network, addr, at)
		return
	}
	if err := <-done; err != nil {
		c.t.Errorf("uid %d %s to %s: no answer back: %v", uid, network, addr, err)
	}
}

// leaves sends a token from uid to addr and checks that the packet goes out
// through the outside interface to addr itself (no listener answers there:
// the probe is killed once its packet has been seen).
func (c *captureCase) leaves(uid uint32, network, addr string) {
	c.t.Helper()
	c.n++
	token := fmt.Sprintf("case-%d-uid-%d-%s-%s", c.n, uid, network, addr)
	want := wirePacket{proto: network[:3], dst: netip.MustParseAddrPort(addr)}
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	done := startProbe(ctx, c.t, c.probe, uid, network, addr, token)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			c.t.Logf("probe %s ended: %v (it is killed once its packet is seen)", token, err)
		}
	}()
	for {
		select {
		case p := <-c.wire:
			if p == want {
				return
			}
		case err := <-done:
			c.t.Errorf("uid %d %s to %s: captured, want it to leave uncaptured (probe: %v)", uid, network, addr, err)
			return
		case <-ctx.Done():
			c.t.Errorf("uid %d %s to %s: no such packet left through the outside interface", uid, network, addr)
			return
		}
	}
}
