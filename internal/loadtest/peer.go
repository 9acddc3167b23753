package loadtest

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/switchboard-xds/switchboard/model"
)

// Kind names a server under test.
type Kind string

// The servers the harness knows.
const (
	// KindSwitchboard is xds.Cache + xds.Server.
	KindSwitchboard Kind = "switchboard"
	// KindLinear is go-control-plane v0.14's sotw server on one LinearCache
	// per type joined by a MuxCache.
	KindLinear Kind = "go-control-plane-linear"
	// KindSnapshot is go-control-plane v0.14's sotw server on a
	// SnapshotCache in non-ADS mode with one snapshot shared by every node.
	KindSnapshot Kind = "go-control-plane-snapshot"
	// KindFloor fans one pre-marshalled assignment out per change and keeps
	// no per-client protocol state: the least work a server can do.
	KindFloor Kind = "floor"
)

// Kinds lists every Kind in report order.
var Kinds = []Kind{KindSwitchboard, KindLinear, KindSnapshot, KindFloor}

// ParseKind returns the Kind named s.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	// Short forms for the command line.
	switch s {
	case "gcp-linear", "linear":
		return KindLinear, nil
	case "gcp-snapshot", "snapshot":
		return KindSnapshot, nil
	}
	return "", fmt.Errorf("unknown server kind %q (want switchboard, gcp-linear, gcp-snapshot or floor)", s)
}

// peerServer is one server under test, seen from the peer process.
type peerServer interface {
	// register adds the ADS service to gs.
	register(gs *grpc.Server)
	// apply stores the Services of b (a watcher batch; Full for the first,
	// complete world).
	apply(ctx context.Context, b model.Batch) error
}

// resourcePeer is a peer that takes translated resources (keyed by cache
// group: "namespace/name", or a sidecar group) rather than batches.
type resourcePeer interface {
	register(gs *grpc.Server)
	applyResources(ctx context.Context, full bool, svcs map[string]*model.Resources) error
}

func newPeerServer(ctx context.Context, kind Kind, sidecars bool, log *slog.Logger) (peerServer, error) {
	var rp resourcePeer
	switch kind {
	case KindSwitchboard:
		return newSwitchboardPeer(sidecars, log), nil
	case KindLinear:
		rp = newLinearPeer(ctx, log)
	case KindSnapshot:
		rp = newSnapshotPeer(ctx, log)
	case KindFloor:
		rp = newFloorPeer()
	default:
		return nil, fmt.Errorf("unknown server kind %q", kind)
	}
	return newFedPeer(rp, sidecars, log), nil
}

// peerArgs are the flags of a peer process; the driver writes them
// (startPeer) and ServePeer reads them, so they are one contract.
func peerArgs(kind Kind, opts *Options) []string {
	args := []string{
		"--kind", string(kind),
		"--services", strconv.Itoa(opts.Services),
		"--endpoints", strconv.Itoa(opts.Endpoints),
		"--namespaces", strconv.Itoa(max(opts.Namespaces, 1)),
	}
	if opts.Sidecars {
		args = append(args, "--sidecars")
	}
	if opts.Routes > 0 {
		args = append(args, "--routes", strconv.Itoa(opts.Routes))
	}
	return args
}

// ServePeer runs one server under test until stdin closes, ctx ends or it
// reads "quit". args are the flags that the driver passes (--kind,
// --services, --endpoints, --namespaces, --sidecars, --routes, --listen). It builds
// the World, hands it to the server as one full watcher batch (Switchboard
// runs it through pipeline.Syncer into its xds.Cache, the others through
// the same Syncer into their own store), listens for ADS on loopback and
// speaks a line protocol:
//
//	stdout: "listening ADDR HEAP_EMPTY HEAP_WORLD" once the world is served
//	stdin "change K"  → stdout "ok K NANOS" (NANOS: translate + store time)
//	stdin "change K I" → the same for change K applied to Service I (churn)
//	stdin "add A"     → stdout "ok A NANOS": Service World.Total() is added
//	stdin "heap"      → stdout "heap BYTES" (live heap after two GCs)
//	stdin "quit"      → exit
//
// A command that fails is answered "error MESSAGE" and ends the peer. Logs go
// to log.
func ServePeer(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("serve-peer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kindName := fs.String("kind", string(KindSwitchboard), "server under test")
	services := fs.Int("services", 100, "Services in the world")
	endpoints := fs.Int("endpoints", 100, "endpoints per Service")
	namespaces := fs.Int("namespaces", 1, "namespaces the Services spread over")
	sidecars := fs.Bool("sidecars", false, "build the Envoy sidecar resources too")
	routes := fs.Int("routes", 0, "Services with an HTTPRoute of their own (World.SetRoutes)")
	// A server that falls behind, for the driver's own tests: the time is
	// the server's work, not a wait for anything.
	applyDelay := fs.Duration("apply-delay", 0, "take this long more to apply each change")
	listen := fs.String("listen", "127.0.0.1:0", "ADS address")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("serve-peer: %w", err)
	}
	kind, err := ParseKind(*kindName)
	if err != nil {
		return fmt.Errorf("serve-peer: %w", err)
	}
	// SWITCHBOARD_LOAD_CPUPROFILE=DIR writes DIR/<kind>.cpu.pprof, for
	// finding where a peer's CPU per change goes.
	if dir := os.Getenv("SWITCHBOARD_LOAD_CPUPROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, string(kind)+".cpu.pprof"))
		if err != nil {
			return fmt.Errorf("serve-peer: cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("serve-peer: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The World is the harness's input model, not server state: the heap
	// figures start after it is built.
	world, err := NewWorld(*services, *endpoints, *namespaces)
	if err != nil {
		return fmt.Errorf("serve-peer: %w", err)
	}
	world.SetRoutes(*routes)
	heapEmpty := liveHeap()
	srv, err := newPeerServer(ctx, kind, *sidecars, log)
	if err != nil {
		return err
	}
	if err := srv.apply(ctx, world.Batch(nil, time.Time{})); err != nil {
		return fmt.Errorf("serve-peer: store the world: %w", err)
	}
	heapWorld := liveHeap()

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("serve-peer: %w", err)
	}
	var gopts []grpc.ServerOption
	if sp, ok := srv.(*switchboardPeer); ok {
		// As switchboard serve runs it: the request codec and the
		// transport limits, at their defaults.
		gopts = sp.srv.GRPCServerOptions()
	}
	gs := grpc.NewServer(gopts...)
	srv.register(gs)
	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(lis) }()
	defer gs.Stop()

	out := bufio.NewWriter(stdout)
	reply := func(format string, a ...any) error {
		fmt.Fprintf(out, format+"\n", a...)
		return out.Flush()
	}
	if err := reply("listening %s %d %d", lis.Addr(), heapEmpty, heapWorld); err != nil {
		return fmt.Errorf("serve-peer: %w", err)
	}

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		var line string
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case err := <-serveErr:
			return fmt.Errorf("serve-peer: grpc: %w", err)
		case line, ok = <-lines:
		}
		if !ok {
			return nil
		}
		cmd, arg, _ := strings.Cut(line, " ")
		switch cmd {
		case "quit":
			return nil
		case "heap":
			h := liveHeap()
			// SWITCHBOARD_LOAD_HEAPPROFILE=DIR writes DIR/<kind>.heap.pprof
			// at each heap reading (the last is with every client
			// connected), for finding what a client's state is made of.
			if dir := os.Getenv("SWITCHBOARD_LOAD_HEAPPROFILE"); dir != "" {
				err = writeHeapProfile(filepath.Join(dir, string(kind)+".heap.pprof"))
			}
			if err == nil {
				err = reply("heap %d", h)
			}
		case "change":
			if *applyDelay > 0 {
				select {
				case <-time.After(*applyDelay):
				case <-ctx.Done():
					return nil
				}
			}
			err = applyChange(ctx, srv, world, arg, reply)
		case "add":
			err = applyAdd(ctx, srv, world, arg, reply)
		default:
			err = fmt.Errorf("unknown command %q", line)
		}
		if err != nil {
			_ = reply("error %s", strings.ReplaceAll(err.Error(), "\n", " "))
			return fmt.Errorf("serve-peer: %w", err)
		}
	}
}

func applyChange(ctx context.Context, srv peerServer, world *World, arg string, reply func(string, ...any) error) error {
	num, svc, explicit := strings.Cut(arg, " ")
	k, err := strconv.Atoi(num)
	if err != nil || k < 1 {
		return fmt.Errorf("bad change number %q", arg)
	}
	start := time.Now()
	var i int
	if explicit {
		i, err = strconv.Atoi(svc)
		if err != nil || i < 0 || i >= world.Len() {
			return fmt.Errorf("bad Service index in change %q", arg)
		}
		err = world.ChangeService(k, i)
	} else {
		i, err = world.Change(k)
	}
	if err != nil {
		return err
	}
	if err := srv.apply(ctx, world.Batch([]int{i}, start)); err != nil {
		return fmt.Errorf("change %d: %w", k, err)
	}
	return reply("ok %d %d", k, time.Since(start).Nanoseconds())
}

func applyAdd(ctx context.Context, srv peerServer, world *World, arg string, reply func(string, ...any) error) error {
	a, err := strconv.Atoi(arg)
	if err != nil || a < 1 {
		return fmt.Errorf("bad addition number %q", arg)
	}
	start := time.Now()
	i, err := world.AddService()
	if err != nil {
		return err
	}
	if err := srv.apply(ctx, world.Batch([]int{i}, start)); err != nil {
		return fmt.Errorf("add %d: %w", a, err)
	}
	return reply("ok %d %d", a, time.Since(start).Nanoseconds())
}

// liveHeap is the heap in use after garbage collection.
// writeHeapProfile writes the heap profile (in-use figures as of the last
// GC) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

var errPeerExited = errors.New("peer process exited")
