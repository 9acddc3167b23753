package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestHelp: every way of asking for help prints that command's usage to
// stdout, nothing to stderr, and succeeds (exit 0).
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // substrings of stdout
	}{
		{[]string{"--help"}, []string{"switchboard [command]", "serve       Run the control plane", "completion"}},
		{[]string{"-h"}, []string{"switchboard [command]"}},
		{[]string{"help"}, []string{"switchboard [command]", "version     Print the version"}},
		{[]string{"serve", "--help"}, []string{"switchboard serve [flags]", "--max-connection-age duration", "--max-connection-age-grace duration", "--xds-address string"}},
		{[]string{"serve", "-h"}, []string{"switchboard serve [flags]", "--manifests string"}},
		{[]string{"serve", "--manifests", "dir", "-h"}, []string{"switchboard serve [flags]"}},
		{[]string{"help", "serve"}, []string{"switchboard serve [flags]", "--drain-timeout"}},
		{[]string{"bootstrap", "--help"}, []string{"switchboard bootstrap [command]", "envoy   YAML", "grpc        Print a gRPC"}},
		{[]string{"bootstrap", "-h"}, []string{"switchboard bootstrap [command]"}},
		{[]string{"bootstrap", "envoy", "--help"}, []string{"switchboard bootstrap envoy --server HOST:PORT --node-id ID [flags]", "--sotw", "--tls-ca", "--namespace"}},
		{[]string{"help", "bootstrap", "envoy"}, []string{"--sotw"}},
		{[]string{"bootstrap", "grpc", "--help"}, []string{"switchboard bootstrap grpc --server HOST:PORT --node-id ID [flags]", "--node-id", "--server", "--output"}},
		{[]string{"help", "bootstrap", "grpc"}, []string{"--node-id"}},
		{[]string{"status", "--help"}, []string{"switchboard status [flags]", "--debug address", "--output string"}},
		{[]string{"explain", "-h"}, []string{"switchboard explain NODE_ID [HOST[:PORT]] [flags]", "--debug string"}},
		{[]string{"version", "--help"}, []string{"switchboard version [flags]"}},
		{[]string{"version", "-h"}, []string{"switchboard version [flags]"}},
		{[]string{"completion", "--help"}, []string{"bash", "zsh", "fish"}},
	} {
		var stdout, stderr bytes.Buffer
		// With help, serve must return before it listens on anything.
		if err := run(context.Background(), tc.args, &stdout, &stderr); err != nil {
			t.Errorf("run(%q) = %v, want nil", tc.args, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("run(%q): stdout lacks %q:\n%s", tc.args, w, stdout.String())
			}
		}
		if stderr.Len() != 0 {
			t.Errorf("run(%q): stderr = %q, want nothing", tc.args, stderr.String())
		}
	}
}

// TestBadFlagIsOneLine: a flag a command lacks is an error of one line
// that names the command and its --help, and the usage is not dumped.
func TestBadFlagIsOneLine(t *testing.T) {
	for _, args := range [][]string{{"serve", "--bogus"}, {"bootstrap", "grpc", "--bogus"}, {"version", "--bogus"}, {"--bogus"}, {"status", "--output"}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[len(args)-1], "--")) || !strings.Contains(err.Error(), "--help'") || strings.Contains(err.Error(), "\n") {
			t.Errorf("run(%q) = %v, want a one-line error naming the flag and --help", args, err)
		}
		if stdout.Len() != 0 || stderr.Len() != 0 {
			t.Errorf("run(%q) printed stdout %q, stderr %q; want nothing (main prints the error)", args, stdout.String(), stderr.String())
		}
	}
}

// TestOneDashLongFlag: the flag package took -name for --name; pflag reads
// -name as shorthands, so the error says how the flag is written.
func TestOneDashLongFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		name string
	}{
		{[]string{"serve", "-manifests", "dir"}, "manifests"},
		{[]string{"bootstrap", "grpc", "-server=h:1"}, "server"},
		{[]string{"serve", "-help"}, "help"},
	} {
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "two dashes: --"+tc.name) {
			t.Errorf("run(%q) = %v, want a usage error naming --%s", tc.args, err, tc.name)
		}
	}
}

// TestExitCodes: a wrong command line exits 2, any other failure 1, help 0;
// usage lists flags as --name.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 2},
		{[]string{"nope"}, 2},
		{[]string{"serv"}, 2},
		{[]string{"--bogus"}, 2},
		{[]string{"serve", "--bogus"}, 2},
		{[]string{"serve", "--xds-max-names", "many"}, 2},
		{[]string{"serve", "--log-format", "xml"}, 2},
		{[]string{"serve", "extra"}, 2},
		{[]string{"bootstrap"}, 2},
		{[]string{"bootstrap", "nope"}, 2},
		{[]string{"bootstrap", "grpc", "--node-id", "n"}, 2},
		{[]string{"bootstrap", "envoy", "--server", "bad host!:1", "--node-id", "n"}, 2},
		{[]string{"status", "--output", "xml"}, 2},
		{[]string{"status", "extra"}, 2},
		{[]string{"explain"}, 2},
		{[]string{"explain", "--debug", ",", "n"}, 2},
		{[]string{"version", "extra"}, 2},
		{[]string{"completion"}, 2},
		{[]string{"completion", "tcsh"}, 2},
		{[]string{"completion", "bash", "extra"}, 2},
		{[]string{"bootstrap", "grpc", "--server", "h:1", "--node-id", "n", "--output", t.TempDir()}, 1}, // a folder: the write fails
		{[]string{"serve", "--help"}, 0},
		{[]string{"help", "serve"}, 0},
		{[]string{"help", "bootstrap", "grpc"}, 0},
		{[]string{"help", "nope"}, 2},
		{[]string{"help", "bootstrap", "nope"}, 2},
		{[]string{"completion", "bash"}, 0},
	} {
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &bytes.Buffer{})
		got := 0
		if err != nil {
			got = exitCode(err)
		}
		if got != tc.want {
			t.Errorf("switchboard %v: exit %d (%v), want %d", tc.args, got, err, tc.want)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"serve", "--help"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "      --xds-address string") || strings.Contains(out.String(), " -xds-address") {
		t.Errorf("serve --help does not list flags as --name:\n%s", out.String())
	}
}

// TestUnknownCommandSuggests: a misspelt command is named, with the
// nearest one.
func TestUnknownCommandSuggests(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"serv"}, &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), `unknown command "serv" (did you mean "serve"?)`) {
		t.Errorf("switchboard serv = %v", err)
	}
	err = run(context.Background(), []string{"bootstrap", "grcp"}, &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), `bootstrap: unknown command "grcp" (did you mean "grpc"?)`) {
		t.Errorf("switchboard bootstrap grcp = %v", err)
	}
}

// TestCompletion: `completion SHELL` prints each shell's script, and the
// script's callback (`__complete`) offers the values of the flags that
// have a fixed set, and directories for --manifests.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "__start_switchboard",
		"zsh":  "#compdef switchboard",
		"fish": "complete -c switchboard",
	} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"completion", shell}, &out, &bytes.Buffer{}); err != nil || !strings.Contains(out.String(), want) {
			t.Errorf("completion %s = %v, output lacks %q (%d bytes)", shell, err, want, out.Len())
		}
	}
	complete := func(args ...string) []string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"__complete"}, args...), &out, &bytes.Buffer{}); err != nil {
			t.Fatalf("__complete %q: %v", args, err)
		}
		return strings.Split(strings.TrimSpace(out.String()), "\n")
	}
	for _, tc := range []struct {
		args []string
		want []string // the candidates, then the directive
	}{
		{[]string{"serve", "--log-level", ""}, []string{"debug", "info", "warn", "error", ":4"}},
		{[]string{"serve", "--log-format", ""}, []string{"text", "json", ":4"}},
		{[]string{"status", "--output", ""}, []string{"text", "json", ":4"}},
		{[]string{"serve", "--manifests", ""}, []string{":16"}}, // directories
		{[]string{"bootstrap", ""}, []string{"envoy\tPrint an Envoy sidecar bootstrap YAML", "grpc\tPrint a gRPC xDS bootstrap JSON", ":4"}},
	} {
		got := complete(tc.args...)
		if !slices.Equal(got, tc.want) {
			t.Errorf("__complete %q = %q, want %q", tc.args, got, tc.want)
		}
	}
	if got := complete("serve", "--xds-max-"); !slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "--xds-max-names\t") }) {
		t.Errorf("__complete serve --xds-max- = %q, want --xds-max-names among them", got)
	}
}

// serveHelpGroups reads `serve --help` back: the flags of each group, by
// the group's title, in order.
func serveHelpGroups(t *testing.T) (titles []string, flags map[string][]string) {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"serve", "--help"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	flags = map[string][]string{}
	flagRE := regexp.MustCompile(`^(?:  -\w, |      )--([a-z0-9-]+)`)
	title := ""
	for line := range strings.Lines(out.String()) {
		if h, ok := strings.CutSuffix(strings.TrimSpace(line), " flags:"); ok && !strings.HasPrefix(line, " ") {
			title = h
			titles = append(titles, title)
			continue
		}
		if m := flagRE.FindStringSubmatch(line); m != nil && title != "" {
			flags[title] = append(flags[title], m[1])
		}
	}
	return titles, flags
}

// TestServeHelpGrouped: serve's help lists every flag once, in groups by
// area, and only --help outside them.
func TestServeHelpGrouped(t *testing.T) {
	titles, flags := serveHelpGroups(t)
	if want := []string{"Source", "xDS server", "xDS TLS", "Envoy sidecar", "xDS limit", "Observability", "Other"}; !slices.Equal(titles, want) {
		t.Errorf("groups %q, want %q", titles, want)
	}
	if !slices.Equal(flags["Other"], []string{"help"}) {
		t.Errorf("flags of no group: %q, want only --help", flags["Other"])
	}
	seen := map[string]string{}
	for _, title := range titles {
		for _, f := range flags[title] {
			if other, ok := seen[f]; ok {
				t.Errorf("--%s in %q and %q", f, other, title)
			}
			seen[f] = title
		}
	}
	var f serveFlags
	cmd := newServeCommand(&f, 0)
	n := 0
	cmd.Flags().VisitAll(func(*pflag.Flag) { n++ })
	if n+1 != len(seen) { // + --help, which cobra adds when it runs
		t.Errorf("the help lists %d flags, serve has %d and --help", len(seen), n)
	}
	for _, g := range flags {
		for _, name := range g {
			if strings.HasPrefix(name, "xds-max") && seen[name] != "xDS limit" {
				t.Errorf("--%s is in group %q", name, seen[name])
			}
		}
	}
}

// TestConfigurationDocListsEveryFlag: docs/configuration.md lists serve's
// flags under the same groups as --help ("### Source flags" and so on),
// each flag in a table row of its group, and no flag serve lacks.
func TestConfigurationDocListsEveryFlag(t *testing.T) {
	titles, want := serveHelpGroups(t)
	f, err := os.Open("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string][]string{}
	var order []string
	group := ""
	flagRE := regexp.MustCompile("`--([a-z0-9-]+)")
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "### ") && strings.HasSuffix(line, " flags"):
			group = strings.TrimSuffix(strings.TrimPrefix(line, "### "), " flags")
			order = append(order, group)
		case strings.HasPrefix(line, "#"):
			group = ""
		case group != "" && strings.HasPrefix(line, "| `--"):
			first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
			for _, m := range flagRE.FindAllStringSubmatch(first, -1) {
				got[group] = append(got[group], m[1])
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(order, titles[:len(titles)-1]) {
		t.Errorf("docs/configuration.md has flag sections %q, serve --help %q", order, titles[:len(titles)-1])
	}
	for _, title := range order {
		if !slices.Equal(got[title], want[title]) {
			t.Errorf("### %s flags: the doc lists %q, serve --help %q (same order)", title, got[title], want[title])
		}
	}
}
