package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/integration/harness"
)

// switchboard is a running `switchboard serve` process.
type switchboard struct {
	t     *testing.T
	bin   string
	args  []string
	xds   string
	admin string
	debug string
	cmd   *exec.Cmd
	done  chan struct{}
	out   *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr returns 127.0.0.1 and a free port (harness.FreePort).
func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}

// startSwitchboard runs the binary with args plus its own free ports and
// waits until /readyz passes. The process is stopped when the test ends.
func startSwitchboard(t *testing.T, bin string, args ...string) *switchboard {
	t.Helper()
	sb := &switchboard{t: t, bin: bin, args: args, xds: freeAddr(t), admin: freeAddr(t), debug: freeAddr(t), out: &lockedBuffer{}}
	sb.start()
	t.Cleanup(func() {
		sb.stop()
		if t.Failed() {
			t.Logf("switchboard output:\n%s", sb.out.String())
		}
	})
	return sb
}

func (sb *switchboard) start() {
	sb.t.Helper()
	sb.launch()
	sb.waitReady()
}

// launch starts the process and returns at once.
func (sb *switchboard) launch() {
	sb.t.Helper()
	args := append([]string{"serve", "--xds-address", sb.xds, "--admin-address", sb.admin, "--debug-address", sb.debug, "--log-level", "debug"}, sb.args...)
	sb.cmd = exec.Command(sb.bin, args...)
	sb.cmd.Stdout, sb.cmd.Stderr = sb.out, sb.out
	sb.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := sb.cmd.Start(); err != nil {
		sb.t.Fatal(err)
	}
	sb.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(sb.cmd, sb.done)
}

// waitReady waits until the launched process's /readyz passes.
func (sb *switchboard) waitReady() {
	sb.t.Helper()
	if err := waitHTTPOK("http://"+sb.admin+"/readyz", sb.done, 60*time.Second); err != nil {
		sb.t.Fatalf("switchboard %v:\n%s", err, sb.out.String())
	}
}

// waitHTTPOK polls url until it answers 200 OK; it fails when done closes
// first (the process behind url exited) or after timeout.
func waitHTTPOK(url string, done <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return errors.New("exited before ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready in %v", timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL, as a crash or an OOM kill would, and waits for the
// process to be gone.
func (sb *switchboard) kill() {
	sb.t.Helper()
	if err := sb.cmd.Process.Kill(); err != nil {
		sb.t.Fatal(err)
	}
	<-sb.done
}

// stop sends SIGTERM and waits for a clean exit.
func (sb *switchboard) stop() {
	if sb.cmd == nil || sb.cmd.Process == nil {
		return
	}
	select {
	case <-sb.done:
		return
	default:
	}
	_ = sb.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sb.done:
	case <-time.After(15 * time.Second):
		_ = sb.cmd.Process.Kill()
		<-sb.done
		sb.t.Errorf("switchboard did not stop within 15s of SIGTERM")
	}
}

// bootstrap returns a gRPC bootstrap made by `switchboard bootstrap grpc`.
func (sb *switchboard) bootstrap(nodeID string, extra ...string) []byte {
	sb.t.Helper()
	out, err := exec.Command(sb.bin, append([]string{"bootstrap", "grpc", "--server", sb.xds, "--node-id", nodeID}, extra...)...).Output()
	if err != nil {
		sb.t.Fatalf("bootstrap: %v", err)
	}
	return out
}

// get fetches path from the admin server, or from the debug server for
// /debug/ paths.
func (sb *switchboard) get(path string) (int, string) {
	sb.t.Helper()
	addr := sb.admin
	if strings.HasPrefix(path, "/debug/") {
		addr = sb.debug
	}
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		sb.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func (sb *switchboard) String() string {
	return fmt.Sprintf("switchboard xds=%s admin=%s debug=%s", sb.xds, sb.admin, sb.debug)
}
