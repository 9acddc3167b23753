// Command testbackend runs one or more Switchboard test backends (see package
// integration/testbackend) until SIGINT or SIGTERM, for demos and manual
// tests:
//
//	testbackend --listen 127.0.0.1:50051=backend-a,127.0.0.1:50052=backend-b
//
// It prints "listening <addr> <id>" on stdout for each backend once all are
// bound. On a signal it stops gracefully, as a server should when its Pod is
// deleted: no new connections, GOAWAY on open ones, in-flight calls finish
// (for at most --drain-timeout); it exits 0 after a clean shutdown. The
// integration harness runs it as the process of a Pod
// (harness.TestBackendCommand).
package main

import (
	"context"
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

	"github.com/switchboard-xds/switchboard/integration/testbackend"
)

// options is the parsed command line.
type options struct {
	listen []listenSpec
	drain  time.Duration
}

type listenSpec struct{ addr, id string }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err == nil {
		err = run(ctx, opts, os.Stdout)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "testbackend:", err)
		}
		os.Exit(2)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("testbackend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "comma-separated addr=id pairs, e.g. 127.0.0.1:50051=backend-a")
	drain := fs.Duration("drain-timeout", 10*time.Second, "on a signal, how long in-flight calls may take before they are cut")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	opts := options{drain: *drain}
	for _, pair := range strings.Split(*listen, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		addr, id, ok := strings.Cut(pair, "=")
		if !ok || addr == "" || id == "" {
			return options{}, fmt.Errorf("--listen: %q is not addr=id", pair)
		}
		opts.listen = append(opts.listen, listenSpec{addr: addr, id: id})
	}
	if len(opts.listen) == 0 {
		return options{}, errors.New("--listen: at least one addr=id is required")
	}
	return opts, nil
}

// run starts every backend, waits for ctx to end, then stops them all.
func run(ctx context.Context, opts options, stdout io.Writer) error {
	var backends []*testbackend.Backend
	stopAll := func() error {
		errs := make([]error, len(backends))
		var wg sync.WaitGroup
		for i, b := range backends {
			wg.Go(func() { errs[i] = b.GracefulStop(opts.drain) })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	for _, l := range opts.listen {
		b, err := testbackend.Start(l.addr, l.id)
		if err != nil {
			return errors.Join(err, stopAll())
		}
		backends = append(backends, b)
	}
	for _, b := range backends {
		fmt.Fprintf(stdout, "listening %s %s\n", b.Addr(), b.ID())
	}
	<-ctx.Done()
	return stopAll()
}
