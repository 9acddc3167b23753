package clients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
)

// stopGrace is how long Stop waits for a clean exit before killing.
const stopGrace = 5 * time.Second

// Options describes one client run. Zero values mean the programs' defaults.
type Options struct {
	// Target is the dial target, e.g. "xds:///echo". Required.
	Target string
	// Bootstrap is the xDS bootstrap JSON; it is written to a file of this
	// process's own and named by GRPC_XDS_BOOTSTRAP.
	Bootstrap []byte
	// BootstrapPath names an existing bootstrap file; used when Bootstrap is
	// nil. One of the two is required.
	BootstrapPath string
	// Count is the number of calls before the program exits 0; 0 runs until
	// Stop.
	Count int
	// IntervalMS is the pause between calls; 0 means 10.
	IntervalMS int
	// TimeoutMS is each call's deadline; 0 means 1000.
	TimeoutMS int
	// Header is request metadata sent with every call (--header k=v in all
	// three programs), for example the key a ring_hash route hashes on.
	// Keys are sent in sorted order.
	Header map[string]string
	// Cycle is request metadata that changes from call to call
	// (--cycle-header k=v1,v2,...), for example many ring_hash keys from
	// one process; its zero value sends none.
	Cycle HeaderCycle
	// Concurrency is how many calls start together (--concurrency K): the
	// program makes its calls in rounds of K, starting the next round when
	// every call of the last one ended and IntervalMS passed. 0 means 1.
	// Count still counts calls. Group results with Rounds.
	Concurrency int
	// StaggerMS starts the calls of a round this far apart (--stagger-ms)
	// instead of all at once; 0 means at once.
	StaggerMS int
	// Env holds extra KEY=VALUE variables, e.g. GRPC_TRACE. They override
	// the inherited environment.
	Env []string
}

// HeaderCycle is one metadata key whose value changes per call: call
// number n carries Key: Values[n mod len(Values)]. Values may not contain
// commas.
type HeaderCycle struct {
	Key    string
	Values []string
}

// ValueOf returns the value call r carried.
func (c HeaderCycle) ValueOf(r Result) string { return c.Values[r.Seq%len(c.Values)] }

// Result is one call as a client program reported it.
type Result struct {
	Seq     int        // the call's number, from 0 in the order calls started
	T       time.Time  // when the call ended, as the client's clock saw it
	Backend string     // the x-backend response header; empty if none
	Code    codes.Code // the call's status code
	Err     string     // the status message; empty on success
}

// OK reports whether the call succeeded.
func (r Result) OK() bool { return r.Code == codes.OK }

// String formats r for failure messages.
func (r Result) String() string {
	if r.OK() {
		return fmt.Sprintf("#%d %s ok %s", r.Seq, r.T.Format("15:04:05.000"), r.Backend)
	}
	return fmt.Sprintf("#%d %s %s %q backend=%q", r.Seq, r.T.Format("15:04:05.000"), r.Code, r.Err, r.Backend)
}

// Process is one running client program. Its results are kept in order for
// the Wait methods and Results; all methods are safe for concurrent use.
type Process struct {
	kind    Kind
	started time.Time
	cmd     *exec.Cmd
	stdin   io.Closer
	stderr  *tailBuffer

	mu      sync.Mutex
	results []Result
	bad     []string      // stdout lines that broke the contract
	changed chan struct{} // closed and replaced on every new result
	exitErr error         // valid once done is closed

	done     chan struct{} // closed when the program exited and stdout is drained
	stopOnce sync.Once
	stopErr  error
}

// Start runs the kind client with opts. The program is killed if ctx ends
// first; call Stop (or Wait for a Count run) in every case.
func (r *Runner) Start(ctx context.Context, kind Kind, opts Options) (*Process, error) {
	prog, args, dir, err := r.command(kind)
	if err != nil {
		return nil, err
	}
	if opts.Target == "" {
		return nil, errors.New("clients: Options.Target is required")
	}
	if opts.Count < 0 || opts.IntervalMS < 0 || opts.TimeoutMS < 0 || opts.Concurrency < 0 || opts.StaggerMS < 0 {
		return nil, errors.New("clients: Options.Count, IntervalMS, TimeoutMS, Concurrency and StaggerMS must be >= 0")
	}
	if c := opts.Cycle; c.Key != "" || len(c.Values) > 0 {
		if c.Key == "" || len(c.Values) == 0 || slices.ContainsFunc(c.Values, func(v string) bool { return strings.Contains(v, ",") }) {
			return nil, errors.New("clients: Options.Cycle needs a Key and Values without commas")
		}
	}
	bootstrap := opts.BootstrapPath
	if opts.Bootstrap != nil {
		pdir := filepath.Join(r.dir, fmt.Sprintf("%s-%d", kind, r.seq.Add(1)))
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return nil, fmt.Errorf("clients: %w", err)
		}
		bootstrap = filepath.Join(pdir, "bootstrap.json")
		if err := os.WriteFile(bootstrap, opts.Bootstrap, 0o644); err != nil {
			return nil, fmt.Errorf("clients: write bootstrap: %w", err)
		}
	}
	if bootstrap == "" {
		return nil, errors.New("clients: Options.Bootstrap or BootstrapPath is required")
	}

	args = append(args, "--target", opts.Target, "--count", strconv.Itoa(opts.Count))
	if opts.IntervalMS > 0 {
		args = append(args, "--interval-ms", strconv.Itoa(opts.IntervalMS))
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Header)) {
		args = append(args, "--header", k+"="+opts.Header[k])
	}
	if opts.Cycle.Key != "" {
		args = append(args, "--cycle-header", opts.Cycle.Key+"="+strings.Join(opts.Cycle.Values, ","))
	}
	if opts.Concurrency > 0 {
		args = append(args, "--concurrency", strconv.Itoa(opts.Concurrency))
	}
	if opts.StaggerMS > 0 {
		args = append(args, "--stagger-ms", strconv.Itoa(opts.StaggerMS))
	}
	if opts.TimeoutMS > 0 {
		args = append(args, "--timeout-ms", strconv.Itoa(opts.TimeoutMS))
	}
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = dir
	cmd.Env = childEnv(os.Environ(), bootstrap, opts.Env)
	return startProcess(kind, cmd)
}

// startProcess starts cmd, whose stdout must follow the output contract.
// A cancelled command context sends SIGTERM, then kills after stopGrace.
func startProcess(kind Kind, cmd *exec.Cmd) (*Process, error) {
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	p := &Process{
		kind:    kind,
		cmd:     cmd,
		stderr:  &tailBuffer{max: 256 << 10},
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	p.stdin = stdin
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("clients: start %s: %w", kind, err)
	}
	go p.read(stdout)
	return p, nil
}

// childEnv is env without any inherited bootstrap, plus ours and extra.
func childEnv(env []string, bootstrap string, extra []string) []string {
	out := make([]string, 0, len(env)+len(extra)+1)
	for _, kv := range env {
		if strings.HasPrefix(kv, "GRPC_XDS_BOOTSTRAP=") || strings.HasPrefix(kv, "GRPC_XDS_BOOTSTRAP_CONFIG=") {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "GRPC_XDS_BOOTSTRAP="+bootstrap)
	return append(out, extra...) // later entries win in exec
}

// read parses stdout until it ends, then reaps the program.
func (p *Process) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		r, err := parseLine(sc.Bytes())
		p.mu.Lock()
		if err != nil {
			p.bad = append(p.bad, fmt.Sprintf("%q: %v", sc.Text(), err))
		} else {
			p.results = append(p.results, r)
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	err := p.cmd.Wait()
	if err == nil && sc.Err() != nil {
		err = fmt.Errorf("read stdout: %w", sc.Err())
	}
	p.mu.Lock()
	p.exitErr = err
	p.mu.Unlock()
	close(p.done)
}

// parseLine decodes one line of the output contract, strictly.
func parseLine(b []byte) (Result, error) {
	var l struct {
		Seq     *int    `json:"seq"`
		T       *int64  `json:"t"`
		Backend *string `json:"backend"`
		Code    *uint32 `json:"code"`
		Error   *string `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Result{}, fmt.Errorf("not a result line: %w", err)
	}
	if l.Seq == nil || l.T == nil || l.Backend == nil || l.Code == nil || l.Error == nil {
		return Result{}, errors.New(`result line lacks one of "seq", "t", "backend", "code", "error"`)
	}
	if *l.Seq < 0 {
		return Result{}, errors.New(`result line has a negative "seq"`)
	}
	return Result{Seq: *l.Seq, T: time.UnixMilli(*l.T), Backend: *l.Backend, Code: codes.Code(*l.Code), Err: *l.Error}, nil
}

// Kind returns which client this is.
func (p *Process) Kind() Kind { return p.kind }

// Started returns when the program was started, for startup latencies.
func (p *Process) Started() time.Time { return p.started }

// Len returns how many results have arrived; pass it to WaitFor as from to
// look only at later ones.
func (p *Process) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.results)
}

// Results returns a copy of every result so far, oldest first.
func (p *Process) Results() []Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Result(nil), p.results...)
}

// Stderr returns the program's stderr (its last 256 KiB).
func (p *Process) Stderr() string { return p.stderr.String() }

// Wait waits for the program to exit, as a Count run does by itself, and
// returns an error if it exited non-zero or broke the output contract.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
	case <-ctx.Done():
		return p.failure(fmt.Errorf("%s: waiting for exit: %w", p.kind, ctx.Err()))
	}
	return p.exitError()
}

// Stop ends the program: it closes stdin and sends SIGTERM, which the
// programs answer by exiting 0 after the call in flight, and kills it after
// 5 s. It waits for the exit and is idempotent. The error reports a program
// that did not exit cleanly or broke the output contract.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		_ = p.stdin.Close()
		terminated := false
		select {
		case <-p.done:
		default:
			terminated = p.cmd.Process.Signal(syscall.SIGTERM) == nil
		}
		select {
		case <-p.done:
			p.stopErr = p.exitError()
			// Before a program installs its handler (node needs a moment to
			// start) our SIGTERM kills it: that is still the stop we asked for.
			if ee := (*exec.ExitError)(nil); terminated && errors.As(p.stopErr, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
					p.stopErr = nil
				}
			}
		case <-time.After(stopGrace):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.stopErr = p.failure(fmt.Errorf("%s: did not exit within %s of SIGTERM", p.kind, stopGrace))
		}
	})
	return p.stopErr
}

func (p *Process) exitError() error {
	p.mu.Lock()
	err, bad := p.exitErr, len(p.bad)
	p.mu.Unlock()
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// Start's context ended and took the program down: asked for.
		return nil
	case err != nil:
		return p.failure(fmt.Errorf("%s exited: %w", p.kind, err))
	case bad > 0:
		return p.failure(fmt.Errorf("%s wrote %d malformed stdout lines", p.kind, bad))
	}
	return nil
}

// failure decorates err with what a reader of a failed test needs: the last
// results, malformed lines and the tail of stderr.
func (p *Process) failure(err error) error {
	p.mu.Lock()
	last := p.results[max(0, len(p.results)-5):]
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d results", len(p.results))
	if len(last) > 0 {
		b.WriteString(", last:")
	}
	for _, r := range last {
		fmt.Fprintf(&b, "\n  %s", r)
	}
	for _, l := range p.bad[max(0, len(p.bad)-3):] {
		fmt.Fprintf(&b, "\nmalformed stdout: %s", l)
	}
	p.mu.Unlock()
	if tail := p.stderr.Tail(2048); tail != "" {
		fmt.Fprintf(&b, "\nstderr tail:\n%s", tail)
	}
	return fmt.Errorf("%w%s", err, b.String())
}

// tailBuffer is an io.Writer keeping the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Tail returns at most the last n bytes, starting at a line boundary.
func (t *tailBuffer) Tail(n int) string {
	s := t.String()
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
