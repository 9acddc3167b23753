// Command echoserver is the backend of every echo Pod of the Gateway API
// conformance suite's mesh tests (package integration/echo), started by the
// cluster harness's process-per-Pod runner in place of the suite's
// echo-advanced image, with the image's flags:
//
//	echoserver [--port N]... [--tls N]... [--grpc N]... [--tcp N]... [--crt F --key F] [--version V]
//
// With no port flag at all it serves HTTP on 8080 and gRPC on 7070, as the
// image does. It listens on $POD_IP (every address when unset) and reports
// $POD_NAME (else the host name) as its Hostname. It runs until SIGINT or
// SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/switchboard-xds/switchboard/integration/echo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts, err := parseFlags(os.Args[1:], os.Stderr, os.Getenv)
	if err == nil {
		err = run(ctx, opts, os.Stdout)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "echoserver:", err)
		}
		os.Exit(2)
	}
}

type portsFlag struct{ ports *[]int }

func (p portsFlag) String() string {
	if p.ports == nil {
		return ""
	}
	return fmt.Sprint(*p.ports)
}

func (p portsFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q is not a port", s)
	}
	*p.ports = append(*p.ports, n)
	return nil
}

func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (echo.Options, error) {
	var o echo.Options
	fs := flag.NewFlagSet("echoserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(portsFlag{&o.HTTPPorts}, "port", "HTTP port; repeatable")
	fs.Var(portsFlag{&o.TLSPorts}, "tls", "a --port that is served over TLS; repeatable")
	fs.Var(portsFlag{&o.GRPCPorts}, "grpc", "gRPC port; repeatable")
	fs.Var(portsFlag{&o.TCPPorts}, "tcp", "TCP echo port; repeatable")
	fs.StringVar(&o.CertFile, "crt", "", "TLS certificate (PEM); self-signed when the file does not exist")
	fs.StringVar(&o.KeyFile, "key", "", "TLS private key (PEM)")
	fs.StringVar(&o.Version, "version", "", "reported as ServiceVersion")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, t := range o.TLSPorts {
		found := false
		for _, p := range o.HTTPPorts {
			found = found || p == t
		}
		if !found {
			return o, fmt.Errorf("--tls=%d is not also a --port", t)
		}
	}
	if len(o.HTTPPorts)+len(o.GRPCPorts)+len(o.TCPPorts) == 0 {
		o.HTTPPorts, o.GRPCPorts = []int{8080}, []int{7070}
	}
	o.IP = getenv("POD_IP")
	o.Hostname = getenv("POD_NAME")
	if o.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return o, fmt.Errorf("no POD_NAME and no host name: %w", err)
		}
		o.Hostname = h
	}
	return o, nil
}

// run serves until ctx ends; it prints "listening KIND ADDR" per port once
// all are bound.
func run(ctx context.Context, opts echo.Options, stdout io.Writer) error {
	s, err := echo.Start(opts)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, kind := range []string{"http", "https", "grpc", "tcp"} {
		for _, a := range s.Addrs(kind) {
			fmt.Fprintf(stdout, "listening %s %s\n", kind, a)
		}
	}
	<-ctx.Done()
	return nil
}
