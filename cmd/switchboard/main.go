// Command switchboard is a Kubernetes service-discovery control plane: it
// watches Services and EndpointSlices and serves them to Envoy and to
// proxyless gRPC clients over xDS (ADS).
//
//	switchboard serve [flags]              run the control plane
//	switchboard bootstrap grpc [flags]     print a gRPC xDS bootstrap file
//	switchboard version                    print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "switchboard: %v\n", err)
		}
		os.Exit(1)
	}
}

const usage = `usage:
  switchboard serve [flags]             run the control plane (serve -h lists the flags)
  switchboard bootstrap grpc [flags]    print a gRPC xDS bootstrap JSON
  switchboard version                   print the version
`

// run dispatches to a subcommand. It returns an error instead of exiting so
// that it can be tested and so that deferred cleanups run.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("missing command")
	}
	switch args[0] {
	case "serve":
		opts, err := parseServe(args[1:], stderr)
		if err != nil {
			return err
		}
		return serve(ctx, opts, stderr)
	case "bootstrap":
		return bootstrap(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "switchboard %s\n", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
