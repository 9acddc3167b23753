// Command switchboard-load measures how fast and how cheaply Switchboard
// brings N ADS clients up to date after single-endpoint changes, next to
// go-control-plane's LinearCache and SnapshotCache and a fan-out floor, and
// writes a report (text, Markdown, SVG). The harness is package
// internal/loadtest; this file parses flags and wires it.
//
//	switchboard-load [run] --clients 100,1000 --services 1000 --endpoints 100 --out bench-out
//	switchboard-load --clients 1000 --services 1000 --changes 0 --churn-rates 10,100,1000 --churn-duration 60s
//	switchboard-load serve-peer --kind switchboard|gcp-linear|gcp-snapshot|floor ...
//
// serve-peer is the child process that the run starts once per server kind.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-xds/switchboard/internal/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchboard-load:", err)
		os.Exit(1)
	}
}

// options are the flags of a load run.
type options struct {
	clients   []int
	protocols []bool // delta or not, one run each
	shapes    []loadtest.Shape
	load      loadtest.Options
	kinds     string
	out       string
	logLevel  string
	peerLog   bool
	command   string
	// maxClients skips a kind for client counts above its bound.
	maxClients map[loadtest.Kind]int
	// churnClients are the client counts that get churn; nil is all.
	churnClients []int
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "serve-peer" {
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		return loadtest.ServePeer(ctx, args[1:], stdin, stdout, log)
	}
	if len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(opts.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	opts.load.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if opts.peerLog {
		opts.load.PeerStderr = stderr
	}
	for _, k := range strings.Split(opts.kinds, ",") {
		kind, err := loadtest.ParseKind(strings.TrimSpace(k))
		if err != nil {
			return fmt.Errorf("--kinds: %w", err)
		}
		opts.load.Kinds = append(opts.load.Kinds, kind)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for the peer processes: %w", err)
	}
	opts.load.PeerCommand = []string{exe, "serve-peer"}

	var results []loadtest.Result
	var errs []error
runs:
	for _, delta := range opts.protocols {
		for _, n := range opts.clients {
			for _, shape := range opts.shapes {
				o := opts.load
				o.Clients = n
				o.Delta = delta
				o.Shape = shape
				if shape == loadtest.ShapeEnvoy {
					o.Churn.Rates = nil
				}
				if opts.churnClients != nil && !slices.Contains(opts.churnClients, n) {
					o.Churn.Rates = nil
				}
				o.Kinds = nil
				for _, k := range opts.load.Kinds {
					if limit, ok := opts.maxClients[k]; !ok || n <= limit {
						o.Kinds = append(o.Kinds, k)
					}
				}
				rs, err := loadtest.Run(ctx, o)
				results = append(results, rs...)
				if err != nil {
					errs = append(errs, err)
					if ctx.Err() != nil {
						break runs
					}
				}
			}
		}
	}
	if err := writeReport(opts, results, stdout); err != nil {
		errs = append(errs, err)
	}
	// After the report, so that a wrong final state is in it too.
	if err := loadtest.CheckFinalState(results); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{command: "switchboard-load " + strings.Join(args, " ")}
	fs := flag.NewFlagSet("switchboard-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clients := fs.String("clients", "100", "comma-separated client counts N; each is a run")
	protocols := fs.String("protocols", "sotw", "comma-separated ADS protocols the clients speak, sotw and/or delta; each is a run")
	fs.BoolVar(&o.load.Sidecars, "sidecars", false, "build the Envoy sidecar resources in every peer even without envoy in --shapes (what they cost gRPC clients)")
	shapes := fs.String("shapes", "grpc", "comma-separated client shapes, grpc (by-name CDS+EDS) and/or envoy (wildcard LDS+CDS, then RDS+EDS, as a sidecar); each is a run; envoy builds the sidecar resources for every shape")
	fs.IntVar(&o.load.Namespaces, "namespaces", 1, "namespaces the Services (and the envoy clients' NAMESPACE) spread over")
	fs.IntVar(&o.load.Adds, "adds", 20, "Services added one at a time after the changes, with envoy clients")
	fs.IntVar(&o.load.Routes, "routes", 0, "give the first R' Services an HTTPRoute each (80/20 to itself and another Service of its namespace)")
	fs.IntVar(&o.load.Services, "services", 100, "Services R in the world")
	fs.IntVar(&o.load.Endpoints, "endpoints", 100, "ready endpoints per Service")
	fs.IntVar(&o.load.PerClient, "per-client", 0, "Services each client subscribes to (0: all)")
	fs.IntVar(&o.load.Changes, "changes", 100, "single-endpoint changes per server (0 with --churn-rates: churn only)")
	fs.IntVar(&o.load.MinChanges, "min-changes", 5, "changes applied even when --budget has run out")
	fs.DurationVar(&o.load.Budget, "budget", 0, "bound on each server's change phase (0: none); slow peers then get fewer changes")
	fs.DurationVar(&o.load.ChangeTimeout, "change-timeout", 30*time.Second, "a change not converged by then counts as a timeout")
	fs.DurationVar(&o.load.SyncTimeout, "sync-timeout", 5*time.Minute, "bound on a peer's start and the clients' initial sync")
	fs.DurationVar(&o.load.Settle, "settle", 2*time.Second, "at most this long after the last change, wait for the server's CPU and the clients' traffic to come to rest before reading them")
	fs.StringVar(&o.kinds, "kinds", "switchboard,gcp-linear,gcp-snapshot,floor", "servers to measure")
	fs.StringVar(&o.out, "out", "bench-out", "folder for report.md, report.txt and the SVG chart")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.peerLog, "peer-log", false, "pass the peer processes' logs (warnings) to stderr")
	maxClients := fs.String("kind-max-clients", "", "skip a server above a client count, e.g. gcp-snapshot=100 (its cost grows with N × R)")
	churnRates := fs.String("churn-rates", "", "comma-separated changes per second, one open-loop churn phase each after the single changes (empty: no churn)")
	fs.DurationVar(&o.load.Churn.Duration, "churn-duration", 60*time.Second, "how long each churn phase issues changes")
	fs.Uint64Var(&o.load.Churn.Seed, "churn-seed", 1, "seed of the Zipf choice of Services (the same sequence for every server)")
	fs.Float64Var(&o.load.Churn.ZipfS, "churn-zipf", 1.1, "Zipf exponent s > 1 of the choice of Services")
	fs.DurationVar(&o.load.Churn.Drain, "churn-drain", 30*time.Second, "after a churn phase, wait this long at most for every change to converge; a server still behind skips the higher rates")
	maxRate := fs.String("churn-kind-max-rate", "", "skip a server's churn phases above a rate, e.g. gcp-snapshot=10")
	churnClients := fs.String("churn-clients", "", "client counts (of --clients) that get the churn phases (empty: all)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	rates, err := positiveInts(*churnRates)
	if err != nil {
		return nil, fmt.Errorf("--churn-rates: %w", err)
	}
	o.load.Churn.Rates = rates
	if o.churnClients, err = positiveInts(*churnClients); err != nil {
		return nil, fmt.Errorf("--churn-clients: %w", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.clients, err = positiveInts(*clients); err != nil {
		return nil, fmt.Errorf("--clients: %w", err)
	}
	if len(o.clients) == 0 {
		return nil, errors.New("--clients: no client count")
	}
	for _, p := range strings.Split(*protocols, ",") {
		switch strings.TrimSpace(p) {
		case "sotw":
			o.protocols = append(o.protocols, false)
		case "delta":
			o.protocols = append(o.protocols, true)
		default:
			return nil, fmt.Errorf("--protocols: %q is neither sotw nor delta", p)
		}
	}
	for _, sh := range strings.Split(*shapes, ",") {
		shape, err := loadtest.ParseShape(strings.TrimSpace(sh))
		if err != nil {
			return nil, fmt.Errorf("--shapes: %w", err)
		}
		o.shapes = append(o.shapes, shape)
		o.load.Sidecars = o.load.Sidecars || shape == loadtest.ShapeEnvoy
	}
	if o.maxClients, err = kindLimits(*maxClients); err != nil {
		return nil, fmt.Errorf("--kind-max-clients: %w", err)
	}
	if o.load.Churn.KindMaxRate, err = kindLimits(*maxRate); err != nil {
		return nil, fmt.Errorf("--churn-kind-max-rate: %w", err)
	}
	return o, nil
}

// positiveInts parses "1,2,3" ("" is none).
func positiveInts(s string) ([]int, error) {
	var out []int
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// kindLimits parses "kind=N,kind=N".
func kindLimits(s string) (map[loadtest.Kind]int, error) {
	out := map[loadtest.Kind]int{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		kind, err := loadtest.ParseKind(strings.TrimSpace(k))
		if err != nil {
			return nil, err
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", kv, err)
		}
		out[kind] = n
	}
	return out, nil
}

// writeReport prints the comparison lines and writes the report files.
func writeReport(opts *options, results []loadtest.Result, stdout io.Writer) error {
	lines := loadtest.Lines(results)
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	if err := os.MkdirAll(opts.out, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	md := loadtest.Markdown(results, opts.command, machine())
	files := map[string]string{
		"report.md":  md,
		"report.txt": strings.Join(lines, "\n") + "\n",
		fmt.Sprintf("convergence-p99-R%d.svg", opts.load.Services): loadtest.ChartSVG(results, opts.load.Services),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(opts.out, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	fmt.Fprintf(stdout, "report: %s\n", filepath.Join(opts.out, "report.md"))
	return nil
}

// machine describes where the figures come from.
func machine() string {
	s := fmt.Sprintf("%d CPUs, %s/%s, %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			s += ", load average at the end " + strings.Join(f[:3], " ")
		}
	}
	return s
}
