// Command captureprobe is the "application" of TestCapture
// (integration/capture_test.go): the test starts it as another uid, so that
// the iptables owner match of deploy/sidecar/capture.sh sees a uid other
// than the test's. It sends one message and prints the reply:
//
//	captureprobe -net tcp -addr 10.96.0.10:80 -payload TOKEN
//
// TCP: connect, write PAYLOAD and a newline, print the first line read
// back. UDP: send PAYLOAD as one datagram, print the first datagram read
// back. Exit status 0 once the reply is printed, 1 on any error or when
// nothing came back within -timeout.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	fs := flag.NewFlagSet("captureprobe", flag.ContinueOnError)
	network := fs.String("net", "tcp", "tcp or udp (tcp4, udp6, ... too)")
	addr := fs.String("addr", "", "HOST:PORT to send to")
	payload := fs.String("payload", "", "what to send")
	timeout := fs.Duration("timeout", 20*time.Second, "give up after this long")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	reply, err := probe(*network, *addr, *payload, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "captureprobe: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(reply)
}

// probe sends payload to addr over network and returns the reply.
func probe(network, addr, payload string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return "", fmt.Errorf("dial %s %s: %w", network, addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", fmt.Errorf("set deadline: %w", err)
	}
	if strings.HasPrefix(network, "tcp") {
		if _, err := fmt.Fprintln(conn, payload); err != nil {
			return "", fmt.Errorf("write: %w", err)
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("read: %w", err)
		}
		return strings.TrimSpace(line), nil
	}
	if _, err := conn.Write([]byte(payload)); err != nil {
		return "", fmt.Errorf("write: %w", err)
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	return string(buf[:n]), nil
}
