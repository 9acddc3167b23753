package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/switchboard-xds/switchboard/translator"
	"github.com/switchboard-xds/switchboard/watcher"
)

// serveOptions are the flags of "switchboard serve". Flag names are part of
// the product: they are documented in the README and changed only on purpose.
type serveOptions struct {
	Kubeconfig    string
	Manifests     string
	XDSAddress    string
	AdminAddress  string
	DebugAddress  string
	XDSTLS        xdsTLSOptions
	Namespaces    []string
	Selector      string
	ClusterDomain string
	LogLevel      slog.Level
	LogFormat     string
	MinDelay      time.Duration
	MaxDelay      time.Duration
	SyncTimeout   time.Duration
	DrainTimeout  time.Duration
	NodeRegions   bool
}

func parseServe(args []string, stderr io.Writer) (serveOptions, error) {
	var o serveOptions
	var namespaces, level string
	fs := flag.NewFlagSet("switchboard serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, else $KUBECONFIG, else ~/.kube/config)")
	fs.StringVar(&o.Manifests, "manifests", "", "standalone mode: serve the Services and EndpointSlices in the YAML/JSON files of this folder, and follow changes to it")
	fs.StringVar(&o.XDSAddress, "xds-address", ":18000", "address of the ADS (gRPC) server")
	fs.StringVar(&o.AdminAddress, "admin-address", ":9090", "address of the admin server: /metrics, /healthz, /readyz")
	fs.StringVar(&o.DebugAddress, "debug-address", "127.0.0.1:9091", `address of the debug server: /debug/clients, /debug/diagnostics; "" disables it`)
	o.XDSTLS.register(fs)
	fs.StringVar(&namespaces, "namespaces", "", "comma-separated namespaces to watch (default: all)")
	fs.StringVar(&o.Selector, "selector", "", "label selector: serve only the Services that match it")
	fs.StringVar(&o.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain, used in resource names")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "text", "text or json")
	fs.DurationVar(&o.MinDelay, "coalesce-min", watcher.DefaultMinDelay, "publish a burst of changes once no change came for this long")
	fs.DurationVar(&o.MaxDelay, "coalesce-max", watcher.DefaultMaxDelay, "but never later than this after the first change of a burst")
	fs.DurationVar(&o.SyncTimeout, "sync-timeout", 2*time.Minute, "give up (exit non-zero) if the sources have not synced within this time")
	fs.BoolVar(&o.NodeRegions, "node-regions", false, "also watch Nodes and put each endpoint's region (label topology.kubernetes.io/region of its Node) in its locality; needs deploy/rbac-node-regions.yaml")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 5*time.Second, "on shutdown, how long to wait for streams and requests to end")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("serve: %w (see 'switchboard serve -h')", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if o.Kubeconfig != "" && o.Manifests != "" {
		return o, errors.New("serve: --kubeconfig and --manifests exclude each other: use an API server or a folder of manifests")
	}
	for _, ns := range strings.Split(namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			o.Namespaces = append(o.Namespaces, ns)
		}
	}
	if err := o.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return o, fmt.Errorf("serve: --log-level %q: want debug, info, warn or error", level)
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		return o, fmt.Errorf("serve: --log-format %q: want text or json", o.LogFormat)
	}
	for name, addr := range map[string]string{"--xds-address": o.XDSAddress, "--admin-address": o.AdminAddress, "--debug-address": o.DebugAddress} {
		if _, _, err := net.SplitHostPort(addr); err != nil && (name != "--debug-address" || addr != "") {
			return o, fmt.Errorf("serve: %s %q: %w", name, addr, err)
		}
	}
	if err := o.XDSTLS.validate(); err != nil {
		return o, err
	}
	if err := (translator.Options{ClusterDomain: o.ClusterDomain}).Validate(); err != nil {
		return o, fmt.Errorf("serve: --cluster-domain: %w", err)
	}
	if o.MinDelay < 0 || o.MaxDelay < o.MinDelay {
		return o, fmt.Errorf("serve: want 0 <= --coalesce-min (%v) <= --coalesce-max (%v)", o.MinDelay, o.MaxDelay)
	}
	return o, nil
}

func (o serveOptions) logger(w io.Writer) *slog.Logger {
	ho := &slog.HandlerOptions{Level: o.LogLevel}
	if o.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}
