// Command testbackend runs one or more Switchboard test backends (see package
// integration/testbackend) until SIGINT or SIGTERM, for demos and manual
// tests:
//
//	testbackend --listen 127.0.0.1:50051=backend-a,127.0.0.1:50052=backend-b
//
// It prints "listening <addr> <id>" on stdout for each backend once all are
// bound, and exits 0 after a clean shutdown.
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
	"syscall"

	"github.com/switchboard-xds/switchboard/integration/testbackend"
)

// options is the parsed command line.
type options struct {
	listen []listenSpec
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
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var opts options
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
		var errs []error
		for _, b := range backends {
			errs = append(errs, b.Stop())
		}
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
