package integration

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The helpers of TestCapture: stand-ins for Envoy's sockets (a
// virtualOutbound TCP listener that reads SO_ORIGINAL_DST, transparent UDP
// sockets bound to a ClusterIP:port, a DNS socket), a probe run as another
// uid, and a packet socket on the namespace's one outside interface that
// shows what left the pod uncaptured.

// arrival is one message that reached a stand-in socket.
type arrival struct {
	// at names the socket ("tcp 15001", "udp 10.96.0.10:5353", ...).
	at string
	// orig is the original destination the socket saw: SO_ORIGINAL_DST for
	// TCP, IP_ORIGDSTADDR for UDP.
	orig netip.AddrPort
}

// arrivals routes messages, by their payload (a token per case), to the
// case that expects them; a token nobody expects is kept as an error.
type arrivals struct {
	mu         sync.Mutex
	want       map[string]chan arrival
	unexpected []string
}

func newArrivals() *arrivals { return &arrivals{want: map[string]chan arrival{}} }

// expect registers token before its probe starts.
func (a *arrivals) expect(token string) <-chan arrival {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := make(chan arrival, 1)
	a.want[token] = ch
	return ch
}

func (a *arrivals) deliver(token string, got arrival) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, ok := a.want[token]
	if !ok {
		a.unexpected = append(a.unexpected, fmt.Sprintf("%q at %s (original destination %s)", token, got.at, got.orig))
		return
	}
	delete(a.want, token)
	ch <- got
}

func (a *arrivals) strays() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.unexpected
}

// serveOutbound accepts on ln like Envoy's virtualOutbound: it reads the
// token line, the original destination, and answers "orig=<addr>".
func serveOutbound(t *testing.T, ln *net.TCPListener, got *arrivals) {
	t.Helper()
	go func() {
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				orig, err := originalDst(c)
				if err != nil {
					t.Errorf("SO_ORIGINAL_DST: %v", err)
					return
				}
				got.deliver(strings.TrimSpace(line), arrival{at: "tcp " + ln.Addr().String(), orig: orig})
				_, _ = fmt.Fprintf(c, "orig=%s\n", orig)
			}()
		}
	}()
}

// originalDst reads the destination a connection had before the nat
// table's REDIRECT: SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6),
// both 80, as Envoy's original_dst listener filter does.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	v6 := netip.MustParseAddrPort(c.LocalAddr().String()).Addr().Unmap().Is6()
	var sa unix.RawSockaddrInet6 // large enough for a sockaddr_in too
	var opErr error
	err = raw.Control(func(fd uintptr) {
		level := unix.SOL_IP
		if v6 {
			level = unix.SOL_IPV6
		}
		size := uint32(unsafe.Sizeof(sa))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, uintptr(level), 80, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)), 0)
		if e != 0 {
			opErr = e
		}
	})
	if err = errors.Join(err, opErr); err != nil {
		return netip.AddrPort{}, err
	}
	return sockaddrAddrPort(unsafe.Pointer(&sa), v6), nil
}

// sockaddrAddrPort reads a struct sockaddr_in or sockaddr_in6.
func sockaddrAddrPort(p unsafe.Pointer, v6 bool) netip.AddrPort {
	if v6 {
		sa := (*unix.RawSockaddrInet6)(p)
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:]))
	}
	sa := (*unix.RawSockaddrInet4)(p)
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:]))
}

// listenUDP binds a UDP socket to addr and serves it: each datagram is a
// token, answered with "orig=<addr>". transparent makes it what Envoy's
// "transparent: true" UDP listener is (IP_TRANSPARENT, which also allows a
// non-local address, and IP_RECVORIGDSTADDR).
func listenUDP(t *testing.T, addr string, transparent bool, got *arrivals) {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	v6 := ap.Addr().Is6()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		if !transparent {
			return nil
		}
		var opErr error
		err := c.Control(func(fd uintptr) {
			if v6 {
				opErr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1),
					unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_RECVORIGDSTADDR, 1))
				return
			}
			opErr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1),
				unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVORIGDSTADDR, 1))
		})
		return errors.Join(err, opErr)
	}}
	network := "udp4"
	if v6 {
		network = "udp6"
	}
	pc, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		t.Fatalf("listen %s (transparent %v): %v", addr, transparent, err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	conn := pc.(*net.UDPConn)
	at := "udp " + addr
	go func() {
		buf, oob := make([]byte, 1500), make([]byte, 256)
		for {
			n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(buf, oob)
			if err != nil {
				return
			}
			orig := ap
			if transparent {
				if orig, err = origDstFromOOB(oob[:oobn], v6); err != nil {
					t.Errorf("%s: %v", at, err)
					continue
				}
			}
			got.deliver(string(buf[:n]), arrival{at: at, orig: orig})
			_, _ = conn.WriteToUDPAddrPort([]byte("orig="+orig.String()), from)
		}
	}()
}

// origDstFromOOB finds IP_ORIGDSTADDR / IPV6_ORIGDSTADDR in a datagram's
// control messages: the destination the packet carried when TPROXY
// delivered it.
func origDstFromOOB(oob []byte, v6 bool) (netip.AddrPort, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("control messages: %w", err)
	}
	for _, m := range msgs {
		if !v6 && m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_ORIGDSTADDR && len(m.Data) >= unix.SizeofSockaddrInet4 {
			return sockaddrAddrPort(unsafe.Pointer(&m.Data[0]), false), nil
		}
		if v6 && m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_ORIGDSTADDR && len(m.Data) >= unix.SizeofSockaddrInet6 {
			return sockaddrAddrPort(unsafe.Pointer(&m.Data[0]), true), nil
		}
	}
	return netip.AddrPort{}, errors.New("no original destination control message")
}

// wirePacket is a TCP or UDP packet seen leaving through the outside
// interface.
type wirePacket struct {
	proto string // "tcp" or "udp"
	dst   netip.AddrPort
}

// watchWire opens a packet socket on the interface named ifname and sends
// every outgoing IPv4/IPv6 TCP or UDP packet's protocol and destination on
// the returned channel, until the test ends.
func watchWire(t *testing.T, ifname string) <-chan wirePacket {
	t.Helper()
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, proto)
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		t.Fatalf("bind packet socket to %s: %v", ifname, err)
	}
	// Non-blocking, so the file is in the runtime's poller and Close ends
	// a Read in progress (with a blocking fd, Close waits for the next
	// packet).
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "packet-"+ifname)
	t.Cleanup(func() { _ = f.Close() })
	out := make(chan wirePacket, 256)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			if p, ok := parsePacket(buf[:n]); ok {
				select {
				case out <- p:
				default: // a test that stopped reading
				}
			}
		}
	}()
	return out
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// parsePacket reads the protocol and destination of an IPv4 or IPv6 packet
// carrying TCP or UDP (no IPv6 extension headers: the kernel adds none here).
func parsePacket(b []byte) (wirePacket, bool) {
	var proto byte
	var dst netip.Addr
	var l4 []byte
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		ihl := int(b[0]&0x0f) * 4
		if len(b) < ihl+4 {
			return wirePacket{}, false
		}
		proto, dst, l4 = b[9], netip.AddrFrom4([4]byte(b[16:20])), b[ihl:]
	case len(b) >= 44 && b[0]>>4 == 6:
		proto, dst, l4 = b[6], netip.AddrFrom16([16]byte(b[24:40])), b[40:]
	default:
		return wirePacket{}, false
	}
	name := map[byte]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp"}[proto]
	if name == "" {
		return wirePacket{}, false
	}
	return wirePacket{proto: name, dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(l4[2:4]))}, true
}

// probeBinary builds integration/cmd/captureprobe into a folder every uid
// may read.
func probeBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "switchboard-captureprobe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "captureprobe")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/switchboard-xds/switchboard/integration/cmd/captureprobe").CombinedOutput(); err != nil {
		t.Fatalf("build captureprobe: %v\n%s", err, out)
	}
	return bin
}

// startProbe runs the probe as uid (and gid uid) sending token to addr.
// Its result arrives on the returned channel: the reply it printed, or an
// error. ctx's end kills it.
func startProbe(ctx context.Context, t *testing.T, bin string, uid uint32, network, addr, token string) <-chan error {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "-net", network, "-addr", addr, "-payload", token)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}, Pdeathsig: syscall.SIGKILL}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start probe as uid %d: %v", uid, err)
	}
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		if err == nil && !strings.HasPrefix(stdout.String(), "orig=") {
			err = fmt.Errorf("reply %q, want orig=...", stdout.String())
		}
		if err != nil {
			err = fmt.Errorf("probe uid %d %s %s: %w: %s", uid, network, addr, err, strings.TrimSpace(stderr.String()))
		}
		done <- err
	}()
	return done
}
