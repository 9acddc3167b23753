package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BackendCIDR is the address range that RunInNetns makes local inside the
// test's network namespace: test backends listen on addresses in it, and
// EndpointSlices name them (the API server refuses loopback addresses).
const BackendCIDR = "10.244.0.0/16"

// PodCIDR is the second range RunInNetns makes local: the cluster mode
// (StartCluster) gives Pods addresses in its lower half and its fake Nodes
// podCIDRNodeIP, so a Pod's backend can bind its Pod IP and the API server
// reaches KWOK's kubelet server at the Node's address. It is apart from
// BackendCIDR, whose addresses tests choose by hand.
const PodCIDR = "10.245.0.0/16"

const (
	// netnsEnv is set in the environment of the re-executed test binary,
	// which runs in the private network namespace.
	netnsEnv = "SWITCHBOARD_NETNS"
	// tmpDirEnv names a folder that the outer process made and removes
	// after the inner one exits, however it exits; Start makes its
	// temporary folder inside it.
	tmpDirEnv = "SWITCHBOARD_HARNESS_TMPDIR"
	// tmpDirPrefix starts the name of that folder, followed by the outer
	// process's id and "-".
	tmpDirPrefix = "switchboard-netns-"
)

// RunInNetns runs the test binary's tests inside a network namespace of their
// own and returns the exit code for os.Exit. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(harness.RunInNetns(m)) }
//
// On first entry it re-executes the test binary, with the same arguments,
// standard streams and environment, as a child in a new network namespace
// (clone with CLONE_NEWNET, which is what `unshare -n` does), forwards
// SIGINT, SIGTERM and SIGQUIT to it, and returns its exit code. Inside, it
// brings up lo, routes BackendCIDR and PodCIDR to lo as local addresses (`ip
// route replace local 10.244.0.0/16 dev lo`, the same for 10.245.0.0/16) and
// runs m.Run. No traffic can leave the namespace: it has no interface but
// lo.
//
// Creating a network namespace needs root (CAP_SYS_ADMIN), as CI has. When it
// fails, RunInNetns prints why and returns 1: integration tests never skip.
func RunInNetns(m *testing.M) int {
	if os.Getenv(netnsEnv) == "" {
		code, err := reexecInNetns()
		if err != nil {
			fmt.Fprintf(os.Stderr, "harness: %v\n", err)
			return 1
		}
		return code
	}
	if err := setUpNetns(); err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		return 1
	}
	return m.Run()
}

// reexecInNetns runs this binary again in a new network namespace and returns
// its exit code.
func reexecInNetns() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("re-execute the test binary in a network namespace: %w", err)
	}
	removeStaleTempDirs()
	tmp, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", tmpDirPrefix, os.Getpid()))
	if err != nil {
		return 0, fmt.Errorf("re-execute the test binary in a network namespace: %w", err)
	}
	defer removeAll(tmp)

	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), netnsEnv+"=1", tmpDirEnv+"="+tmp)
	// Pdeathsig: if this process is killed, the child and through its own
	// Pdeathsig the API server and etcd go too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("create a network namespace for the integration tests (needs root, as CI runs): %w", err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return 0, fmt.Errorf("wait for the test binary in its network namespace: %w", err)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		fmt.Fprintf(os.Stderr, "harness: test binary in its network namespace killed by %v\n", ws.Signal())
		return 128 + int(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}

// removeStaleTempDirs removes the temporary folders of earlier runs whose
// outer process is gone: one killed with SIGKILL (go test's last resort on a
// timeout) cannot remove its own. A folder whose process id was reused since
// stays until that process ends.
func removeStaleTempDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tmpDirPrefix+"*-*"))
	for _, dir := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), tmpDirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(dir)
		}
	}
}

// removeAll removes dir. Children killed by Pdeathsig may still be writing
// for a moment, so a failure is retried briefly before it is reported.
func removeAll(dir string) {
	var err error
	for range 20 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "harness: %v\n", err)
}

// setUpNetns checks that this process is in a private network namespace and
// makes lo, BackendCIDR and PodCIDR usable there.
func setUpNetns() error {
	ifaces, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list network interfaces: %w", err)
	}
	names := make([]string, 0, len(ifaces))
	for _, ifc := range ifaces {
		names = append(names, ifc.Name)
	}
	// Guard against $SWITCHBOARD_NETNS set by hand in the host namespace:
	// the route below must never be added there.
	if !slices.Equal(names, []string{"lo"}) {
		return fmt.Errorf("$%s is set but this is not a private network namespace (interfaces %v)", netnsEnv, names)
	}
	ip, err := findIP()
	if err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		// replace, not add: a test may re-execute the binary inside the
		// namespace it is already in.
		{"route", "replace", "local", BackendCIDR, "dev", "lo"},
		{"route", "replace", "local", PodCIDR, "dev", "lo"},
	} {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %w: %s", args, err, out)
		}
	}
	return nil
}

// findIP returns the path of iproute2's ip, which may not be on a non-root
// PATH.
func findIP() (string, error) {
	if p, err := exec.LookPath("ip"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("iproute2's ip command not found (apt-get install iproute2)")
}
