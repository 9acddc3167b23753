package harness

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Ports handed to servers under test come from below the kernel's ephemeral
// range. A port found by listening on :0 comes from that range, which every
// outgoing connection also draws from: with tests opening thousands of
// client connections in parallel (TestLimitsAgainstHostileClients,
// TestFaultThousandClientsReconnect), such a port was sometimes taken by a
// client's local end before the server bound it ("address already in
// use"). Below the range only servers bind, and each port is handed out
// once per test process.
var (
	portsOnce sync.Once
	portLow   int
	portSpan  int
	portNext  atomic.Int64
)

func initPorts() {
	low := 32768 // Linux's default ip_local_port_range starts here
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	portSpan = min(low-1024, 16000)
	portLow = low - portSpan
	// Start at an offset of our own, so that two test processes sharing a
	// network namespace rarely walk the same ports.
	portNext.Store(int64(os.Getpid() % portSpan))
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, from
// below the ephemeral range, never the same one twice in this process
// (until the range wraps).
func FreePort() (int, error) {
	portsOnce.Do(initPorts)
	for range portSpan {
		p := portLow + int(portNext.Add(1)%int64(portSpan))
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free port in %d-%d", portLow, portLow+portSpan-1)
}
