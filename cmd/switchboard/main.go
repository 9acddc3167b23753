// Command switchboard is a Kubernetes service-discovery control plane: it
// watches Services and EndpointSlices and serves them to Envoy and to
// proxyless gRPC clients over xDS (ADS).
//
//	switchboard serve [flags]              run the control plane
//	switchboard bootstrap grpc [flags]     print a gRPC xDS bootstrap file
//	switchboard bootstrap envoy [flags]    print an Envoy sidecar bootstrap
//	switchboard status [flags]             print every xDS client's sync state
//	switchboard explain NODE [HOST[:PORT]] what one client holds and lacks
//	switchboard version                    print the version
//	switchboard help [command]             print usage
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "switchboard: %v\n", err)
		os.Exit(exitCode(err))
	}
}

const usage = `usage:
  switchboard serve [flags]             run the control plane (serve -h lists the flags)
  switchboard bootstrap grpc [flags]    print a gRPC xDS bootstrap JSON
  switchboard bootstrap envoy [flags]   print an Envoy sidecar bootstrap YAML
  switchboard status [flags]            print every xDS client's sync state (from --debug-address)
  switchboard explain NODE [HOST[:PORT]] what one client holds, what it lacks and since when; the walk to a host's endpoints
  switchboard version                   print the version
  switchboard help [command]            print this, or a command's usage
`

// run dispatches to a subcommand. It returns an error instead of exiting so
// that it can be tested and so that deferred cleanups run. Help asked for
// (-h, --help, help) is not an error: the usage goes to stdout and run
// returns nil.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageErr(errors.New("missing command"))
	}
	switch args[0] {
	case "serve":
		opts, err := parseServe(args[1:], stdout, stderr)
		if err != nil {
			return usageErr(err)
		}
		return serve(ctx, opts, stderr)
	case "bootstrap":
		return bootstrap(args[1:], stdout, stderr)
	case "status":
		opts, err := parseStatus(args[1:], stdout, stderr)
		if err != nil {
			return usageErr(err)
		}
		return status(ctx, opts, stdout)
	case "explain":
		opts, err := parseExplain(args[1:], stdout, stderr)
		if err != nil {
			return usageErr(err)
		}
		return explain(ctx, opts, stdout)
	case "version":
		fs := newFlagSet("version", "", "print the version")
		if err := parseFlags(fs, args[1:], stdout, stderr); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageErr(fmt.Errorf("version: unexpected argument %q", fs.Arg(0)))
		}
		fmt.Fprintf(stdout, "switchboard %s\n", version)
		return nil
	case "help":
		if len(args) > 1 {
			// "help serve" is "serve --help", "help bootstrap grpc" is
			// "bootstrap grpc --help".
			return dispatch(ctx, append(args[1:len(args):len(args)], "--help"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageErr(fmt.Errorf("unknown command %q", args[0]))
	}
}

// newFlagSet returns a flag set for "switchboard <command>" whose usage
// starts with the synopsis line and a one-line description, then the flags.
func newFlagSet(command, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("switchboard "+command, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: %s\n\n%s\n", strings.TrimSpace("switchboard "+command+" "+synopsis), description)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprint(out, "\nflags:\n")
			printFlags(out, fs)
		}
	}
	return fs
}

// printFlags lists fs's flags as the docs write them, --name (the flag
// package takes one dash or two; its PrintDefaults shows one).
func printFlags(out io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
			if typ == "string" {
				line += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				line += " (default " + f.DefValue + ")"
			}
		}
		fmt.Fprintln(out, line)
	})
}

// parseFlags parses args into fs. Asked for help (-h, --help) it prints the
// usage to stdout and returns flag.ErrHelp, which run turns into success.
// A bad flag comes back as a one-line error that names the command and
// points at its -h; the flag package's own printout of it is dropped.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		_, _ = out.WriteTo(stdout)
		return err
	default:
		return usageErr(fmt.Errorf("%s: %w (see '%s -h')", strings.TrimPrefix(fs.Name(), "switchboard "), err, fs.Name()))
	}
}

// usageError is a command line that is wrong (a bad flag or value, a
// missing or unexpected argument): switchboard exits 2 for it, as the flag
// package's ExitOnError, cobra and the shell's builtins do, and 1 for every
// other error.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usageErr marks err as a usage error; nil and help stay as they are.
func usageErr(err error) error {
	var u usageError
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.As(err, &u) {
		return err
	}
	return usageError{err}
}

// exitCode is the process's exit status for err: 2 for a usage error, 1
// for any other.
func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}
