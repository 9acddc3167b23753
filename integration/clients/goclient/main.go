// Command goclient is the grpc-go member of Switchboard's real-client
// matrix: a proxyless xDS client that calls /grpc.health.v1.Health/Check on
// an xds:/// target and reports which backend answered.
//
// It shares one command-line and output contract with the grpc-js-xds client
// (../node/client.js) and the C-core client (../python/client.py):
//
//	--target xds:///NAME   dial target (required)
//	--count N              calls to make, then exit 0; 0 runs until SIGINT,
//	                       SIGTERM or, when stdin is a pipe, until it is
//	                       closed (default 0)
//	--interval-ms M        pause between calls (default 10)
//	--timeout-ms T         deadline of each call (default 1000)
//	--header k=v           request metadata sent with every call; repeatable
//	--cycle-header k=v1,v2,...
//	                       request metadata that changes per call: call
//	                       number n carries k: v[n mod len(v)]
//	--concurrency K        calls go out in rounds of K started together; a
//	                       round ends when every call in it ended, and the
//	                       interval separates rounds (default 1). --count
//	                       counts calls; the last round may be smaller
//	--stagger-ms S         within a round, start the calls S ms apart
//	                       (default 0: all at once)
//
// Each call prints one JSON line on stdout, written when the call ends:
//
//	{"seq":<n>,"t":<unix ms>,"backend":"<x-backend header or empty>","code":<grpc code>,"error":"<message or empty>"}
//
// seq numbers the calls from 0 in the order they were started, so call
// n belongs to round n/K; within a round lines come in the order calls end.
//
// Everything else goes to stderr. The xDS bootstrap is read from the file
// named by GRPC_XDS_BOOTSTRAP, as every gRPC implementation does.
//
// For demos, --report-every 1s prints instead, once per interval, a human
// line with the calls per second each backend answered.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and the xDS balancers
)

// backendHeader is the response header test backends name themselves in.
const backendHeader = "x-backend"

// options is the parsed command line.
type options struct {
	target      string
	count       int
	interval    time.Duration
	timeout     time.Duration
	reportEvery time.Duration
	header      metadata.MD // sent with every call
	concurrency int
	stagger     time.Duration // between the starts of a round's calls
	cycleKey    string        // with cycleValues: metadata that changes per call
	cycleValues []string      // call n carries cycleKey: cycleValues[n%len]
}

// headerFlag collects repeated --header k=v flags.
type headerFlag struct{ md metadata.MD }

func (h *headerFlag) String() string { return fmt.Sprint(h.md) }

func (h *headerFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not k=v", v)
	}
	h.md.Append(k, val)
	return nil
}

// result is one call, as printed.
type result struct {
	Seq     int    `json:"seq"`
	T       int64  `json:"t"`
	Backend string `json:"backend"`
	Code    uint32 `json:"code"`
	Error   string `json:"error"`
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "goclient:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.count == 0 && stdinIsPipe() {
		// Run-forever mode also ends when whoever started us closes the
		// pipe on our stdin. Only a pipe: a background job in a script
		// gets /dev/null, which would end the run at once.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}
	if err := run(ctx, opts, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "goclient:", err)
		os.Exit(1)
	}
}

// stdinIsPipe reports whether stdin is a pipe (a FIFO).
func stdinIsPipe() bool {
	fi, err := os.Stdin.Stat()
	return err == nil && fi.Mode()&os.ModeNamedPipe != 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("goclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "", "dial target, e.g. xds:///echo")
	count := fs.Int("count", 0, "number of calls; 0 runs until killed or stdin closes")
	intervalMS := fs.Int("interval-ms", 10, "pause between calls in milliseconds")
	timeoutMS := fs.Int("timeout-ms", 1000, "per-call deadline in milliseconds")
	reportEvery := fs.Duration("report-every", 0, "print a per-backend calls/s summary at this interval instead of one JSON line per call")
	header := &headerFlag{md: metadata.MD{}}
	fs.Var(header, "header", "request metadata k=v sent with every call; repeatable")
	cycle := fs.String("cycle-header", "", "request metadata k=v1,v2,... : call n carries k: v[n mod len]")
	concurrency := fs.Int("concurrency", 1, "calls started together in each round")
	staggerMS := fs.Int("stagger-ms", 0, "pause between the starts of a round's calls in milliseconds")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	switch {
	case fs.NArg() > 0:
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	case *target == "":
		return options{}, errors.New("--target is required")
	case *count < 0 || *intervalMS < 0 || *timeoutMS <= 0 || *reportEvery < 0 || *concurrency <= 0 || *staggerMS < 0:
		return options{}, errors.New("--count, --interval-ms, --stagger-ms and --report-every must be >= 0, --timeout-ms and --concurrency > 0")
	}
	var cycleKey string
	var cycleValues []string
	if *cycle != "" {
		k, vs, ok := strings.Cut(*cycle, "=")
		if !ok || k == "" {
			return options{}, fmt.Errorf("--cycle-header: %q is not k=v1,v2 (values separated by commas)", *cycle)
		}
		cycleKey, cycleValues = k, strings.Split(vs, ",")
	}
	return options{
		concurrency: *concurrency,
		stagger:     time.Duration(*staggerMS) * time.Millisecond,
		cycleKey:    cycleKey,
		cycleValues: cycleValues,
		target:      *target,
		count:       *count,
		interval:    time.Duration(*intervalMS) * time.Millisecond,
		timeout:     time.Duration(*timeoutMS) * time.Millisecond,
		reportEvery: *reportEvery,
		header:      header.md,
	}, nil
}

// run makes the calls until opts.count is reached or ctx ends. Ending by ctx
// is a clean exit.
func run(ctx context.Context, opts options, stdout io.Writer) error {
	cc, err := grpc.NewClient(opts.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", opts.target, err)
	}
	defer cc.Close()
	health := healthpb.NewHealthClient(cc)

	var sink func(result) error
	if opts.reportEvery > 0 {
		r := newReporter(opts.reportEvery, time.Now(), stdout)
		sink = r.add
		defer r.flush(time.Now())
	} else {
		enc := json.NewEncoder(stdout)
		sink = func(r result) error { return enc.Encode(r) }
	}

	var mu sync.Mutex // one sink call at a time
	for seq := 0; opts.count == 0 || seq < opts.count; {
		if seq > 0 && opts.interval > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(opts.interval):
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		n := opts.concurrency
		if opts.count > 0 {
			n = min(n, opts.count-seq)
		}
		// The round's calls start together (or stagger apart) and each is
		// printed as it ends.
		errs := make(chan error, n)
		for i := range n {
			if i > 0 && opts.stagger > 0 {
				select {
				case <-ctx.Done(): // the rest of the round fails at once
				case <-time.After(opts.stagger):
				}
			}
			go func(seq int) {
				r := call(metadata.NewOutgoingContext(ctx, opts.metadata(seq)), health, opts.timeout)
				r.Seq = seq
				if ctx.Err() != nil && opts.count == 0 {
					// A call cut short by our own shutdown is not a result.
					errs <- nil
					return
				}
				mu.Lock()
				defer mu.Unlock()
				errs <- sink(r)
			}(seq + i)
		}
		for range n {
			if err := <-errs; err != nil {
				return fmt.Errorf("write result: %w", err)
			}
		}
		seq += n
	}
	return nil
}

// metadata returns the request metadata of call number seq.
func (o options) metadata(seq int) metadata.MD {
	if len(o.cycleValues) == 0 {
		return o.header
	}
	md := o.header.Copy()
	md.Append(o.cycleKey, o.cycleValues[seq%len(o.cycleValues)])
	return md
}

// call makes one health check and describes its outcome.
func call(ctx context.Context, health healthpb.HealthClient, timeout time.Duration) result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var hdr metadata.MD
	_, err := health.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr))
	r := result{T: time.Now().UnixMilli()}
	if v := hdr.Get(backendHeader); len(v) > 0 {
		r.Backend = v[0]
	}
	if err != nil {
		st := status.Convert(err)
		r.Code = uint32(st.Code())
		r.Error = st.Message()
	}
	return r
}
