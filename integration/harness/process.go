package harness

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// process is one child program (etcd or kube-apiserver) running in a process
// group of its own, with its output in a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once cmd.Wait has returned
	waitErr error         // valid once done is closed
}

// startProcess runs path with args. Its stdout and stderr go to logPath and,
// when extra is not nil, to extra as well.
//
// The child gets a process group of its own so that stop can signal
// everything it may have started, and Pdeathsig=SIGKILL so that the kernel
// kills it when the test binary dies for any reason (panic, os.Exit, a
// SIGKILL from go test's timeout) without running Stop. Pdeathsig fires when
// the OS thread that forked the child exits; the Go runtime never ends a
// thread that is not locked to a goroutine, and this package locks none.
// env, when not nil, is added to this process's environment.
func startProcess(name, path string, args, env []string, logPath string, extra io.Writer) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	var out io.Writer = logFile
	if extra != nil {
		out = io.MultiWriter(logFile, extra)
	}
	cmd := exec.Command(path, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// With a MultiWriter, exec copies output in a goroutine; do not let a
	// grandchild that holds the pipe open keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, path, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Process is a program a test runs beside the control plane, as the
// harness runs its own (startProcess).
type Process struct{ p *process }

// StartProcess runs path with args, env added to this process's
// environment, in a process group of its own that dies with the test
// binary, its output in logPath.
func StartProcess(name, path string, args, env []string, logPath string) (*Process, error) {
	p, err := startProcess(name, path, args, env, logPath, nil)
	if err != nil {
		return nil, err
	}
	return &Process{p: p}, nil
}

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.p.done }

// Stop sends SIGTERM to the process's group, waits up to grace, then
// sends SIGKILL; an exit by one of these signals is not an error.
func (p *Process) Stop(grace time.Duration) error { return p.p.stop(grace) }

// exited reports whether the process has already ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, waits up to grace for the process
// to exit, then sends SIGKILL to the group and waits for it; grace 0 means
// SIGKILL at once. An exit caused by one of these signals is not an error.
func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		return p.exitError()
	}
	pgid := p.cmd.Process.Pid
	if grace > 0 {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Reap anything the child left behind in its group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return nil
	}
	return p.exitError()
}

// exitError describes how the process ended, with the tail of its log; nil
// when it exited with status 0. Only valid after done is closed.
func (p *process) exitError() error {
	if p.waitErr == nil {
		return nil
	}
	return fmt.Errorf("%s exited: %w\n%s", p.name, p.waitErr, p.logTail())
}

// logTail returns the last lines of the process's log, for error messages.
func (p *process) logTail() string {
	const maxLines = 40
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no %s log: %v)", p.name, err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return fmt.Sprintf("--- last lines of %s ---\n%s", p.logPath, bytes.Join(lines, []byte("\n")))
}

// exitErrorOr is exitError, or fallback when the process exited with status 0
// (which, for a server, is still a failure while waiting for it).
func (p *process) exitErrorOr(fallback error) error {
	if err := p.exitError(); err != nil {
		return err
	}
	return fallback
}
