package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Options describe one load run: the same world, clients and changes for
// every server Kind.
type Options struct {
	// Clients is N, the number of ADS streams (one connection each).
	Clients int
	// Services is R, the Services in the world; Endpoints is the number of
	// ready endpoints of each.
	Services, Endpoints int
	// PerClient is how many Services each client subscribes to; 0 means all
	// of them. Client c subscribes to Services c·PerClient, c·PerClient+1, …
	// (mod Services), so subscriptions spread evenly.
	PerClient int
	// Delta makes the clients speak incremental xDS (DeltaAggregatedResources,
	// as Envoy can) instead of state of the world (as gRPC clients do).
	Delta bool
	// Changes is the number of single-endpoint changes per Kind; fewer are
	// applied when Budget runs out first (but at least MinChanges). 0 skips
	// the single changes when Churn has rates.
	Changes    int
	MinChanges int
	// Budget bounds the change phase of one Kind; 0 means no bound.
	Budget time.Duration
	// Kinds are the servers under test, run one after the other.
	Kinds []Kind
	// PeerCommand starts a peer process: program and leading arguments, to
	// which the peer flags are appended (see ServePeer). PeerEnv is added to
	// its environment; its stderr goes to PeerStderr (nil discards it).
	PeerCommand []string
	PeerEnv     []string
	PeerStderr  io.Writer
	// SyncTimeout bounds the start of a peer and the initial sync of all
	// clients; ChangeTimeout bounds one change. A change that times out is
	// counted (Result.Timeouts) and recorded at ChangeTimeout.
	SyncTimeout, ChangeTimeout time.Duration
	// Settle bounds how long the driver waits after the last change for
	// the run to come to rest (the server's CPU time and the clients'
	// traffic unchanged; see quiesce) before it reads the server's CPU
	// time and the final state, so that work after the last ACK (ACK
	// processing, deferred sends) is counted.
	Settle time.Duration
	// Shape is how the clients subscribe: ShapeGRPC (the zero value) or
	// ShapeEnvoy (see envoyClient). Envoy clients do not run churn, and the
	// SnapshotCache is not measured with them.
	Shape Shape
	// Namespaces spreads the Services over that many namespaces (0 or 1:
	// one, "load"); Envoy client c has node metadata NAMESPACE of namespace
	// c mod Namespaces, so each namespace variant has its sidecars.
	Namespaces int
	// Sidecars builds the Envoy sidecar resources in every peer (the
	// pipeline's sidecar stage); set it for Envoy clients, and for gRPC
	// clients that are to be compared with them on the same world.
	Sidecars bool
	// Adds is the number of Services added one at a time after the
	// endpoint changes, for Envoy clients (0: none).
	Adds int
	// Routes gives the first Routes Services an HTTPRoute each (see
	// World.SetRoutes), to measure what mesh routes cost the changes.
	Routes int
	// Churn, when it has rates, adds open-loop churn phases after the
	// single changes (Result.Churn).
	Churn ChurnOptions
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.Clients < 1 || o.Services < 1 || o.Endpoints < 1 {
		return fmt.Errorf("clients, services and endpoints must be positive (got %d, %d, %d)", o.Clients, o.Services, o.Endpoints)
	}
	if o.PerClient < 0 || o.PerClient > o.Services {
		return fmt.Errorf("per-client must be between 0 and services (%d), got %d", o.Services, o.PerClient)
	}
	if len(o.PeerCommand) == 0 {
		return errors.New("no peer command")
	}
	if o.Shape == "" {
		o.Shape = ShapeGRPC
	}
	if o.Shape == ShapeEnvoy && !o.Sidecars {
		return errors.New("envoy clients need the sidecar resources (Sidecars)")
	}
	if o.Shape == ShapeEnvoy && len(o.Churn.Rates) > 0 {
		return errors.New("envoy clients do not run churn")
	}
	if o.Adds < 0 {
		return fmt.Errorf("adds must not be negative, got %d", o.Adds)
	}
	if o.Changes < 0 {
		return fmt.Errorf("changes must not be negative, got %d", o.Changes)
	}
	if o.Changes == 0 && len(o.Churn.Rates) == 0 {
		o.Changes = 1
	}
	if o.MinChanges < 1 || o.MinChanges > o.Changes {
		o.MinChanges = min(o.Changes, 5)
	}
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = 5 * time.Minute
	}
	if o.ChangeTimeout <= 0 {
		o.ChangeTimeout = 30 * time.Second
	}
	if err := o.Churn.defaults(o.ChangeTimeout); err != nil {
		return err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PeerStderr == nil {
		o.PeerStderr = io.Discard
	}
	return nil
}

// subscriptions returns the Service indices client c subscribes to.
func (o *Options) subscriptions(c int) []int {
	if o.PerClient == 0 {
		out := make([]int, o.Services)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, o.PerClient)
	for j := range out {
		out[j] = (c*o.PerClient + j) % o.Services
	}
	return out
}

// Run measures every Kind in opts.Kinds in turn and returns one Result per
// Kind. An error means a Kind could not be measured at all (its peer did not
// start, clients could not sync, or their state was wrong at the start);
// clients that end with a state other than the server's are reported in
// Result.FinalMismatches, changes that never converged in Result.Timeouts;
// the same for churn in Result.Churn.
func Run(ctx context.Context, opts Options) ([]Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var out []Result
	for _, kind := range opts.Kinds {
		if opts.Shape == ShapeEnvoy && kind == KindSnapshot {
			opts.Logger.Info("skipped: the SnapshotCache peer is not measured with envoy clients", "kind", kind)
			continue
		}
		r, err := runKind(ctx, &opts, kind)
		if err != nil {
			return out, fmt.Errorf("load: %s N=%d R=%d: %w", kind, opts.Clients, opts.Services, err)
		}
		opts.Logger.Info("measured", "kind", kind, "clients", opts.Clients, "services", opts.Services,
			"p50", r.P50(), "p99", r.P99(), "cpu_per_change", r.CPUPerChange, "changes", r.Changes)
		for _, c := range r.Churn {
			p99, _ := c.StalenessQuantile(0.99)
			opts.Logger.Info("churn", "kind", kind, "rate", c.Rate, "skipped", c.Skipped, "changes", c.Changes,
				"p99_staleness", p99, "not_converged", len(c.NotConverged), "cores", c.CPUCores,
				"final_mismatches", c.FinalMismatches)
		}
		out = append(out, r)
	}
	return out, nil
}

// peer is a running peer process and its line protocol.
type peer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	exit  chan error
}

func startPeer(ctx context.Context, opts *Options, kind Kind) (*peer, []string, error) {
	args := append(append([]string{}, opts.PeerCommand[1:]...), peerArgs(kind, opts)...)
	cmd := exec.CommandContext(ctx, opts.PeerCommand[0], args...)
	cmd.Env = append(os.Environ(), opts.PeerEnv...)
	cmd.Stderr = opts.PeerStderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start peer: %w", err)
	}
	p := &peer{cmd: cmd, stdin: stdin, lines: make(chan string, 16), exit: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.exit <- cmd.Wait()
	}()
	first, err := p.expect("listening", opts.SyncTimeout)
	if err != nil {
		p.stop()
		return nil, nil, err
	}
	return p, first, nil
}

// expect waits for the next line that starts with word and returns its
// fields after word.
func (p *peer) expect(word string, timeout time.Duration) ([]string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return nil, fmt.Errorf("waiting for %q: %w", word, errPeerExited)
			}
			f := strings.Fields(line)
			if len(f) > 0 && f[0] == "error" {
				return nil, fmt.Errorf("peer: %s", strings.TrimPrefix(line, "error "))
			}
			if len(f) > 0 && f[0] == word {
				return f[1:], nil
			}
		case <-t.C:
			return nil, fmt.Errorf("peer did not answer %q within %s", word, timeout)
		}
	}
}

func (p *peer) command(format string, a ...any) error {
	if _, err := fmt.Fprintf(p.stdin, format+"\n", a...); err != nil {
		return fmt.Errorf("peer command: %w", err)
	}
	return nil
}

func (p *peer) stop() {
	// A peer behind on churn may not read "quit" for a long time (its stdin
	// pipe full of changes): do not wait for the write, kill it instead.
	go func() {
		_ = p.command("quit")
		_ = p.stdin.Close()
	}()
	// The peer's exit status after "quit" (or a kill) tells nothing the
	// run has not already measured, so it is dropped. Its last lines (the
	// answers to a churn backlog) are read and dropped too: the goroutine
	// that reads them reports the exit only after the last one.
	kill := time.NewTimer(10 * time.Second)
	defer kill.Stop()
	lines := p.lines
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				lines = nil
			}
		case err := <-p.exit:
			_ = err
			return
		case <-kill.C:
			_ = p.cmd.Process.Kill()
		}
	}
}

func runKind(ctx context.Context, opts *Options, kind Kind) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := Result{
		Kind: kind, Shape: opts.Shape, Clients: opts.Clients, Services: opts.Services, Endpoints: opts.Endpoints,
		PerClient: opts.PerClient, Delta: opts.Delta, Namespaces: max(opts.Namespaces, 1), Sidecars: opts.Sidecars, Routes: opts.Routes,
	}

	p, first, err := startPeer(ctx, opts, kind)
	if err != nil {
		return res, err
	}
	defer p.stop()
	if len(first) != 3 {
		return res, fmt.Errorf("peer said %q, want ADDR HEAP_EMPTY HEAP_WORLD", first)
	}
	addr := first[0]
	heapEmpty, _ := strconv.ParseUint(first[1], 10, 64)
	heapWorld, _ := strconv.ParseUint(first[2], 10, 64)

	world, err := NewWorld(opts.Services, opts.Endpoints, opts.Namespaces)
	if err != nil {
		return res, err
	}
	world.SetRoutes(opts.Routes)
	if opts.Shape == ShapeEnvoy {
		return runEnvoy(ctx, opts, p, world, res, addr, heapEmpty, heapWorld)
	}
	h := newHasher()
	want, err := world.expected(h)
	if err != nil {
		return res, err
	}
	var current atomic.Pointer[change]
	var churn atomic.Pointer[churnTracker]
	subscribers := make([]int, opts.Services) // clients per Service
	clients := make([]*client, opts.Clients)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	}()
	syncStart := time.Now()
	for i := range clients {
		subs := opts.subscriptions(i)
		slots := make([]int, len(subs))
		for p, s := range subs {
			slots[p] = subscribers[s]
			subscribers[s]++
		}
		clients[i] = newClient(i, world.Name, subs, slots, h, &current, &churn)
		clients[i].delta = opts.Delta
		if err := clients[i].start(ctx, addr); err != nil {
			return res, err
		}
	}
	streams := make([]*adsStream, len(clients))
	for i, c := range clients {
		streams[i] = &c.adsStream
	}
	if err := waitSynced(streams, opts.SyncTimeout, "client"); err != nil {
		return res, err
	}
	res.Sync = time.Since(syncStart)
	for _, c := range clients {
		if n := c.mismatches(want); n > 0 {
			return res, fmt.Errorf("initial sync: client %d holds %d resources that differ from the world", c.id, n)
		}
	}
	if err := p.command("heap"); err != nil {
		return res, err
	}
	f, err := p.expect("heap", opts.SyncTimeout)
	if err != nil {
		return res, err
	}
	heapClients, _ := strconv.ParseUint(f[0], 10, 64)
	res.heap(opts, heapEmpty, heapWorld, heapClients)

	cpu0, err := processCPU(p.cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	var down0, up0, resp0 int64
	for _, c := range clients {
		down0, up0, resp0 = down0+c.bytesDown.Load(), up0+c.bytesUp.Load(), resp0+c.responses.Load()
	}
	phase := time.Now()
	affectedTotal := 0
	for k := 1; k <= opts.Changes; k++ {
		if k > opts.MinChanges && opts.Budget > 0 && time.Since(phase) > opts.Budget {
			break
		}
		i, err := world.Change(k)
		if err != nil {
			return res, err
		}
		if err := world.digest(h, want, i); err != nil {
			return res, err
		}
		ch := &change{seq: k, name: world.Name(i), digest: want.assignments[i], done: make(chan struct{})}
		ch.remaining.Store(int64(subscribers[i]))
		affectedTotal += subscribers[i]
		current.Store(ch)
		start := time.Now()
		if err := p.command("change %d", k); err != nil {
			return res, err
		}
		ok, err := p.expect("ok", opts.ChangeTimeout)
		if err != nil {
			return res, fmt.Errorf("change %d: %w", k, err)
		}
		if len(ok) == 2 {
			ns, _ := strconv.ParseInt(ok[1], 10, 64)
			res.Apply = append(res.Apply, time.Duration(ns))
		}
		if subscribers[i] == 0 {
			close(ch.done)
			ch.end.Store(time.Now().UnixNano())
		}
		t := time.NewTimer(opts.ChangeTimeout)
		select {
		case <-ch.done:
			res.Latencies = append(res.Latencies, time.Unix(0, ch.end.Load()).Sub(start))
		case <-t.C:
			res.Timeouts++
			res.Latencies = append(res.Latencies, opts.ChangeTimeout)
		case <-ctx.Done():
			t.Stop()
			return res, ctx.Err()
		}
		t.Stop()
		res.Changes++
	}
	quiesce(p.cmd.Process.Pid, func() int64 { return grpcTraffic(clients) }, opts.Settle)
	cpu1, err := processCPU(p.cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	var down1, up1, resp1 int64
	for _, c := range clients {
		down1, up1, resp1 = down1+c.bytesDown.Load(), up1+c.bytesUp.Load(), resp1+c.responses.Load()
	}
	if k := float64(res.Changes); k > 0 {
		res.CPUPerChange = time.Duration(float64(cpu1-cpu0) / k)
		res.BytesDownPerChange = float64(down1-down0) / k
		res.BytesUpPerChange = float64(up1-up0) / k
	}
	if affectedTotal > 0 {
		res.PushesPerAffected = float64(resp1-resp0) / float64(affectedTotal)
	}
	res.FinalMismatches = finalMismatches(clients, want)
	if len(opts.Churn.Rates) > 0 {
		cr := &churnRun{
			opts: opts, kind: kind, peer: p, clients: clients, subscribers: subscribers,
			world: world, hash: h, want: want, tracker: &churn,
		}
		// Change numbers continue after the single changes at the same
		// number for every Kind (the budget may cut those short), so a
		// churn change gets the same address whatever the Kind.
		res.Churn, err = cr.run(ctx, opts.Changes+1)
		if err != nil {
			return res, fmt.Errorf("churn: %w", err)
		}
	}
	for _, c := range clients {
		select {
		case <-c.done:
			return res, fmt.Errorf("client %d ended during the run: %w", c.id, c.err)
		default:
		}
	}
	return res, nil
}

// heap sets the heap figures from the peer's live heap when empty, with
// the world, and with the clients connected.
func (r *Result) heap(opts *Options, empty, world, clients uint64) {
	r.HeapPerEndpoint = float64(int64(world)-int64(empty)) / float64(opts.Services*opts.Endpoints)
	r.HeapPerClient = float64(int64(clients)-int64(world)) / float64(opts.Clients)
}

// processCPU returns the user + system CPU time of a process from
// /proc/PID/stat, in clock ticks of USER_HZ = 100 (the value on every Linux
// architecture Go supports), so its resolution is 10 ms: read it over many
// changes, not one.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("server CPU: %w", err)
	}
	// The command name (field 2) may contain spaces; fields after it are fixed.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("server CPU: short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("server CPU: %w", err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
