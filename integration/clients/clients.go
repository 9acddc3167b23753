// Package clients runs Switchboard's three real proxyless xDS client
// programs — grpc-go (./goclient), grpc-js-xds (./node) and gRPC C-core
// through Debian's python3-grpcio (./python) — and lets a Go test drive them
// the same way and assert the same outcomes.
//
// All three programs share one contract: flags --target, --count,
// --interval-ms, --timeout-ms, the repeatable --header k=v (request
// metadata on every call), --cycle-header k=v1,v2,... (call n carries
// k: v[n mod len]), --concurrency K (calls in rounds of K started
// together) and --stagger-ms S (a round's calls S ms apart); the bootstrap file named by GRPC_XDS_BOOTSTRAP; one JSON line
// per call on stdout, written when it ends
// ({"seq":<n>,"t":<unix ms>,"backend":"<id>","code":<grpc code>,"error":"<msg>"},
// seq numbering the calls from 0 in the order they started); logs on
// stderr; with --count 0 they run until SIGTERM, or until stdin closes if
// it is a pipe.
//
// Typical use, once per test package:
//
//	r, err := clients.Prepare(ctx, clients.PrepareOptions{Dir: dir})
//	p, err := r.Start(ctx, clients.NodeGRPCJS, clients.Options{Target: "xds:///echo", Bootstrap: js})
//	defer p.Stop()
//	_, err = p.WaitSpread(ctx, 20, "backend-a", "backend-b")
//
// The node dependencies and python3-grpcio are installed by hack/clients.sh;
// Prepare checks they are there and says so when they are not.
package clients

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
)

// Kind names one client implementation.
type Kind string

// The three client implementations.
const (
	GoGRPC      Kind = "grpc-go"     // grpc-go with google.golang.org/grpc/xds
	NodeGRPCJS  Kind = "grpc-js-xds" // @grpc/grpc-js with @grpc/grpc-js-xds on Node
	PythonCCore Kind = "c-core"      // gRPC C-core through Debian's python3-grpcio
)

// AllKinds returns every Kind, in a stable order, for table-driven tests.
func AllKinds() []Kind { return []Kind{GoGRPC, NodeGRPCJS, PythonCCore} }

// packagePath is this package's import path; its directory holds the client
// sources.
const packagePath = "github.com/switchboard-xds/switchboard/integration/clients"

// prepareHint is what to run when a client's dependencies are missing.
const prepareHint = "run hack/clients.sh from the repository root"

// PrepareOptions configures Prepare.
type PrepareOptions struct {
	// Dir receives the built Go client and each process's bootstrap file.
	// Required; it must exist (t.TempDir or os.MkdirTemp). The caller
	// removes it.
	Dir string
	// Kinds are the clients to make ready; nil means AllKinds.
	Kinds []Kind
	// Node is the node executable; empty means "node" from PATH.
	Node string
	// Python is the python interpreter; empty means /usr/bin/python3, the one
	// Debian's python3-grpcio installs into.
	Python string
}

// Runner starts client processes. It is made by Prepare and is safe for
// concurrent use.
type Runner struct {
	dir      string
	srcDir   string // this package's directory
	goClient string // built binary
	node     string
	python   string
	ready    map[Kind]bool
	seq      atomic.Int64
}

// Prepare makes the requested clients runnable: it builds the Go client once
// into opts.Dir with the go command (it must run inside this module, as tests
// do), and checks that the node client's node_modules and python3's grpc
// module are installed. It does not install anything; a missing dependency
// is an error naming hack/clients.sh.
func Prepare(ctx context.Context, opts PrepareOptions) (*Runner, error) {
	if opts.Dir == "" {
		return nil, errors.New("clients: PrepareOptions.Dir is required")
	}
	kinds := opts.Kinds
	if kinds == nil {
		kinds = AllKinds()
	}
	r := &Runner{dir: opts.Dir, node: opts.Node, python: opts.Python, ready: map[Kind]bool{}}
	if r.python == "" {
		r.python = "/usr/bin/python3"
	}
	if r.node == "" {
		r.node = "node"
	}
	out, err := goCommand(ctx, "", "list", "-f", "{{.Dir}}", packagePath)
	if err != nil {
		return nil, fmt.Errorf("clients: locate sources: %w", err)
	}
	r.srcDir = strings.TrimSpace(out)

	var errs []error
	for _, k := range kinds {
		var err error
		switch k {
		case GoGRPC:
			r.goClient = filepath.Join(r.dir, "goclient")
			_, err = goCommand(ctx, r.srcDir, "build", "-o", r.goClient, packagePath+"/goclient")
		case NodeGRPCJS:
			err = r.checkNode(ctx)
		case PythonCCore:
			err = r.checkPython(ctx)
		default:
			err = fmt.Errorf("unknown kind %q", k)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("clients: prepare %s: %w", k, err))
			continue
		}
		r.ready[k] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Runner) checkNode(ctx context.Context) error {
	node, err := exec.LookPath(r.node)
	if err != nil {
		return fmt.Errorf("node not found: %w", err)
	}
	r.node = node
	if _, err := exec.CommandContext(ctx, node, "--version").Output(); err != nil {
		return fmt.Errorf("%s --version: %w", node, err)
	}
	mod := filepath.Join(r.srcDir, "node", "node_modules", "@grpc", "grpc-js-xds", "package.json")
	if _, err := os.Stat(mod); err != nil {
		return fmt.Errorf("node dependencies missing (%s): %w", prepareHint, err)
	}
	return nil
}

func (r *Runner) checkPython(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, r.python, "-c", "import grpc").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s cannot import grpc (%s): %w: %s", r.python, prepareHint, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// command returns the program and leading arguments that run kind.
func (r *Runner) command(kind Kind) (prog string, args []string, dir string, err error) {
	if !r.ready[kind] {
		return "", nil, "", fmt.Errorf("clients: %q was not prepared", kind)
	}
	switch kind {
	case GoGRPC:
		return r.goClient, nil, r.dir, nil
	case NodeGRPCJS:
		nodeDir := filepath.Join(r.srcDir, "node")
		return r.node, []string{filepath.Join(nodeDir, "client.js")}, nodeDir, nil
	default: // PythonCCore
		return r.python, []string{filepath.Join(r.srcDir, "python", "client.py")}, r.dir, nil
	}
}

// goCommand runs the go command in dir and returns its stdout.
func goCommand(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
