package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// flagGroup is a named set of a command's flags that its help lists
// together, as kubectl's NamedFlagSets do: cobra has no flag groups in its
// help (its "flag groups" are constraints between flags).
type flagGroup struct {
	name string
	fs   *pflag.FlagSet
}

// flagGroups are a command's flag groups in the order its help lists them.
type flagGroups []flagGroup

// add returns a new group's flag set. Its flags are listed in the order
// they are defined, not sorted.
func (g *flagGroups) add(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	*g = append(*g, flagGroup{name: name, fs: fs})
	return fs
}

// bind adds every group's flags to cmd and makes its help list them by
// group; cols is as for writeUsage.
func (g flagGroups) bind(cmd *cobra.Command, cols int) {
	for _, gr := range g {
		cmd.Flags().AddFlagSet(gr.fs)
	}
	cmd.SetUsageFunc(func(c *cobra.Command) error { return writeUsage(c.OutOrStderr(), c, g, cols) })
}

// writeUsage writes c's usage: the usage line, the subcommands, the flags
// of each group under its name, then the flags of no group. Flags are
// written as --name (pflag's format), their help wrapped at cols columns
// (0: not wrapped).
func writeUsage(w io.Writer, c *cobra.Command, groups flagGroups, cols int) error {
	var b strings.Builder
	b.WriteString("Usage:\n")
	if c.Runnable() && !c.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "  %s\n", c.UseLine())
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "  %s [command]\n\nCommands:\n", c.CommandPath())
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() || sub.Name() == "help" {
				fmt.Fprintf(&b, "  %-*s %s\n", c.NamePadding(), sub.Name(), sub.Short)
			}
		}
	}
	grouped := map[string]bool{}
	for _, gr := range groups {
		fmt.Fprintf(&b, "\n%s flags:\n%s", gr.name, gr.fs.FlagUsagesWrapped(cols))
		gr.fs.VisitAll(func(f *pflag.Flag) { grouped[f.Name] = true })
	}
	rest := pflag.NewFlagSet("rest", pflag.ContinueOnError)
	c.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if !grouped[f.Name] {
			rest.AddFlag(f)
		}
	})
	if rest.HasAvailableFlags() {
		title := "Flags"
		if len(groups) > 0 {
			title = "Other flags"
		}
		fmt.Fprintf(&b, "\n%s:\n%s", title, rest.FlagUsagesWrapped(cols))
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "\nUse \"%s [command] --help\" for more information about a command.\n", c.CommandPath())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// terminalWidth is the width of w when it is a terminal, else 0: help
// piped to a file or a pager keeps one line per flag.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0
	}
	cols, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return cols
}

// Shell completion of flag values, for `switchboard completion SHELL`. A
// name that is not a flag of cmd is a bug in the caller, so it panics
// (every command is built by every test of run).

// completeFiles completes the named flags with file names.
func completeFiles(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		must(cmd.MarkFlagFilename(n))
	}
}

// completeDirs completes the named flags with directory names.
func completeDirs(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		must(cmd.MarkFlagDirname(n))
	}
}

// completeValues completes each named flag with its fixed values.
func completeValues(cmd *cobra.Command, values map[string][]string) {
	for n, vs := range values {
		must(cmd.RegisterFlagCompletionFunc(n, cobra.FixedCompletions(vs, cobra.ShellCompDirectiveNoFileComp)))
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
