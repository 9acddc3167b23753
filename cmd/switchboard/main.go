// Command switchboard is a Kubernetes service-discovery control plane: it
// watches Services and EndpointSlices and serves them to Envoy and to
// proxyless gRPC clients over xDS (ADS).
//
//	switchboard serve [flags]              run the control plane
//	switchboard bootstrap grpc [flags]     print a gRPC xDS bootstrap file
//	switchboard bootstrap envoy [flags]    print an Envoy sidecar bootstrap
//	switchboard status [flags]             print every xDS client's sync state
//	switchboard explain NODE [HOST[:PORT]] what one client holds and lacks
//	switchboard completion bash|zsh|fish   print a shell completion script
//	switchboard version                    print the version
//	switchboard help [command]             print usage
//
// The command line is cobra's and pflag's, as kubectl's and istioctl's:
// flags are --name, and each command's --help lists them (serve's by group).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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

// run runs the command line args. It returns an error instead of exiting
// so that it can be tested and so that deferred cleanups run. Help asked
// for (-h, --help, help) is not an error: the usage goes to stdout and run
// returns nil. Errors are not printed: main prints them, one line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// newRootCommand builds the command tree, writing to stdout and stderr;
// help wraps at stdout's width when it is a terminal.
func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	cols := terminalWidth(stdout)
	root := &cobra.Command{
		Use:   "switchboard",
		Short: "A Kubernetes xDS control plane",
		Long: "Switchboard watches Services and EndpointSlices and serves them to Envoy sidecars and to\n" +
			"proxyless gRPC clients over xDS (ADS).",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(flagError)
	root.SetUsageFunc(func(c *cobra.Command) error { return writeUsage(c.OutOrStderr(), c, nil, cols) })
	root.AddCommand(
		newServeCommand(new(serveFlags), cols),
		newBootstrapCommand(),
		newStatusCommand(),
		newExplainCommand(),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  noArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				_, err := fmt.Fprintf(c.OutOrStdout(), "switchboard %s\n", version)
				return err
			},
		},
	)
	// Cobra would add "completion" (bash, zsh, fish, powershell) when it
	// runs; added now, after SetOut, whose writer it keeps, so that
	// markUsageErrors sees it.
	root.InitDefaultCompletionCmd()
	root.SetHelpCommand(newHelpCommand())
	markUsageErrors(root)
	return root
}

// newHelpCommand is cobra's "help [command]", except that a topic that
// names no command is a usage error (exit 2) with the nearest command
// suggested, where cobra prints the usage and exits 0.
func newHelpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil {
				return usageErr(err)
			}
			if len(rest) > 0 {
				return usageErr(unknownCommand(cmd, rest[0]))
			}
			return cmd.Help()
		},
	}
}

// markUsageErrors makes every wrong command line under c a usage error:
// a command of commands run without one prints its usage to stderr, and
// an unknown one is named with the nearest; every check of positional
// arguments, cobra's own (completion's) included, fails as a usage error.
func markUsageErrors(c *cobra.Command) {
	if !c.Runnable() && c.HasSubCommands() {
		c.SuggestionsMinimumDistance = 2
		c.Args = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			return unknownCommand(c, args[0])
		}
		c.RunE = func(c *cobra.Command, _ []string) error {
			fmt.Fprint(c.ErrOrStderr(), c.UsageString())
			return usageErr(fmt.Errorf("%s (see '%s --help')", prefixed(c, "missing command"), c.CommandPath()))
		}
	}
	if args := c.Args; args != nil {
		c.Args = func(c *cobra.Command, a []string) error { return usageErr(args(c, a)) }
	}
	for _, sub := range c.Commands() {
		markUsageErrors(sub)
	}
}

// commandName is c's path without the root's name: "bootstrap grpc".
func commandName(c *cobra.Command) string {
	return strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), c.Root().Name()), " ")
}

// prefixed puts "NAME: " before msg, except on the root, whose errors main
// prefixes with "switchboard: " anyway.
func prefixed(c *cobra.Command, msg string) string {
	if name := commandName(c); name != "" {
		return name + ": " + msg
	}
	return msg
}

// unknownCommand is the error for a command c does not have.
func unknownCommand(c *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q", name)
	if s := c.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return fmt.Errorf("%s (see '%s --help')", prefixed(c, msg), c.CommandPath())
}

// noArgs refuses positional arguments (markUsageErrors makes it a usage
// error).
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return errors.New(prefixed(c, fmt.Sprintf("unexpected argument %q", args[0])))
	}
	return nil
}

// flagError makes a bad flag or flag value a one-line usage error that
// names the command and points at its --help. A long flag written with one
// dash (the flag package took -name; pflag reads shorthands) is named as
// it should be written: pflag stops at the first letter that is not a
// shorthand, after -h's h in -help.
func flagError(c *cobra.Command, err error) error {
	hint := ""
	if ne, ok := errors.AsType[*pflag.NotExistError](err); ok && ne.GetSpecifiedShortnames() != "" {
		rest, _, _ := strings.Cut(ne.GetSpecifiedShortnames(), "=")
		for _, name := range []string{rest, "h" + rest} {
			if c.Flags().Lookup(name) != nil {
				hint = "; a long flag takes two dashes: --" + name
				break
			}
		}
	}
	return usageErr(fmt.Errorf("%s%s (see '%s --help')", prefixed(c, err.Error()), hint, c.CommandPath()))
}

// usageError is a command line that is wrong (a bad flag or value, a
// missing or unexpected argument, an unknown command): switchboard exits 2
// for it, as the flag package's ExitOnError, kubectl and the shell's
// builtins do, and 1 for every other error.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usageErr marks err as a usage error; nil stays nil.
func usageErr(err error) error {
	var u usageError
	if err == nil || errors.As(err, &u) {
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
