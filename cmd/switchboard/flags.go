package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchboard-xds/switchboard/translator"
	"github.com/switchboard-xds/switchboard/watcher"
	"github.com/switchboard-xds/switchboard/xds"
)

// serveOptions are the flags of "switchboard serve". Flag names are part of
// the product: they are documented in the README and changed only on purpose.
type serveOptions struct {
	Kubeconfig string
	Manifests  string
	// ManifestMaxBytes and ManifestSettle configure the manifest source.
	ManifestMaxBytes int64
	ManifestSettle   time.Duration
	XDSAddress       string
	AdminAddress     string
	DebugAddress     string
	XDSTLS           xdsTLSOptions
	Namespaces       []string
	Selector         string
	ClusterDomain    string
	EnvoySidecars    bool
	// CSDS serves the Client Status Discovery Service on the xDS port.
	CSDS            bool
	EnvoyDNSAddress string
	LogLevel        slog.Level
	LogFormat       string
	MinDelay        time.Duration
	MaxDelay        time.Duration
	SyncTimeout     time.Duration
	DrainTimeout    time.Duration
	NodeRegions     bool
	// MaxConnectionAge and MaxConnectionAgeGrace go to grpc-go's
	// keepalive.ServerParameters: after about MaxConnectionAge (grpc-go adds
	// +/-10% jitter) a connection gets GOAWAY, and its streams are closed
	// MaxConnectionAgeGrace later, so clients reconnect, and spread over
	// the replicas behind a Service again after a rollout or scale-up.
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
	// Limits bound what one xDS client may cost (xds.Limits).
	Limits xds.Limits
}

// serveFlags are the flags of "switchboard serve": the options they fill
// directly, and the values that options checks and converts.
type serveFlags struct {
	o                    serveOptions
	namespaces, logLevel string
}

// newServeCommand is "switchboard serve": f's flags, validated by
// f.options into a usage error, then serve. cols is as for writeUsage.
func newServeCommand(f *serveFlags, cols int) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Run the control plane",
		Long: "Run the control plane: watch Services and EndpointSlices (of an API server, or of a folder with\n" +
			"--manifests) and serve them over xDS (ADS, SotW and delta) on --xds-address.",
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o, err := f.options()
			if err != nil {
				return usageErr(err)
			}
			return serve(c.Context(), o, c.ErrOrStderr())
		},
	}
	f.register(cmd, cols)
	return cmd
}

// register defines the flags on cmd, in the groups its help lists. Flag
// names, defaults and meanings are part of the product
// (docs/configuration.md lists them by the same groups).
func (f *serveFlags) register(cmd *cobra.Command, cols int) {
	o := &f.o
	var g flagGroups
	fs := g.add("Source")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, else $KUBECONFIG, else ~/.kube/config)")
	fs.StringVar(&o.Manifests, "manifests", "", "standalone mode: serve the Services and EndpointSlices in the YAML/JSON files of this folder, and follow changes to it (inotify)")
	fs.Int64Var(&o.ManifestMaxBytes, "manifest-max-bytes", watcher.DefaultMaxManifestBytes, "with --manifests: refuse (and keep the last good content of) a file larger than this many bytes")
	fs.DurationVar(&o.ManifestSettle, "manifest-settle", watcher.DefaultSettleTime, "with --manifests: read a file written in place only once its size and mtime have not changed for this long (a file renamed into place is read at once)")
	fs.StringVar(&f.namespaces, "namespaces", "", "comma-separated namespaces to watch (default: all)")
	fs.StringVar(&o.Selector, "selector", "", "label selector: serve only the Services that match it")
	fs.BoolVar(&o.NodeRegions, "node-regions", false, "also watch Nodes and put each endpoint's region (label topology.kubernetes.io/region of its Node) in its locality; needs deploy/rbac-node-regions.yaml")
	fs.DurationVar(&o.SyncTimeout, "sync-timeout", 2*time.Minute, "give up (exit non-zero) if the sources have not synced within this time")
	fs.DurationVar(&o.MinDelay, "coalesce-min", watcher.DefaultMinDelay, "publish a burst of changes once no change came for this long")
	fs.DurationVar(&o.MaxDelay, "coalesce-max", watcher.DefaultMaxDelay, "but never later than this after the first change of a burst")

	fs = g.add("xDS server")
	fs.StringVar(&o.XDSAddress, "xds-address", ":18000", "address of the ADS (gRPC) server")
	fs.StringVar(&o.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain, used in resource names")
	fs.BoolVar(&o.CSDS, "xds-csds", true, "serve CSDS (client status) on the xDS port; without --xds-client-ca it tells anyone who reaches the port every client's node id, namespace, zone, subscriptions, NACKs and the resources it holds")
	fs.DurationVar(&o.MaxConnectionAge, "max-connection-age", 30*time.Minute, "send GOAWAY to a client connection after about this long (+/-10% jitter), so that clients spread over the replicas again; 0 turns it off")
	fs.DurationVar(&o.MaxConnectionAgeGrace, "max-connection-age-grace", time.Minute, "after that GOAWAY, close the connection's streams this much later, so that the client reconnects and resubscribes; 0: never (an ADS stream then stays until the client ends it)")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 5*time.Second, "on shutdown, how long to wait for streams and requests to end")

	o.XDSTLS.register(g.add("xDS TLS"))

	fs = g.add("Envoy sidecar")
	fs.BoolVar(&o.EnvoySidecars, "envoy-sidecars", true, "serve Envoy sidecars the listeners, route variants and DNS table they route with (virtualOutbound, <IP>_<P>, udp_<IP>_<P>, dns; see docs/envoy-sidecars.md)")
	fs.StringVar(&o.EnvoyDNSAddress, "envoy-dns-address", "127.0.0.1:15053", `with --envoy-sidecars: the IP:port of the DNS listener (UDP) that answers for every Service name in each Envoy sidecar, or an IPv4 and an IPv6 one separated by a comma (listeners dns and dns6); "" serves none`)

	registerLimits(g.add("xDS limit"), &o.Limits)

	fs = g.add("Observability")
	fs.StringVar(&o.AdminAddress, "admin-address", ":9090", "address of the admin server: /metrics, /healthz, /readyz")
	fs.StringVar(&o.DebugAddress, "debug-address", "127.0.0.1:9091", `address of the debug server: /debug/clients, /debug/diagnostics; "" disables it`)
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "text", "text or json")

	g.bind(cmd, cols)
	completeFiles(cmd, "kubeconfig", "xds-tls-cert", "xds-tls-key", "xds-client-ca")
	completeDirs(cmd, "manifests")
	completeValues(cmd, map[string][]string{"log-level": {"debug", "info", "warn", "error"}, "log-format": {"text", "json"}})
}

// options checks the flags and returns the options they give. An error is
// one line that names the flag.
func (f *serveFlags) options() (serveOptions, error) {
	o := f.o
	if o.Kubeconfig != "" && o.Manifests != "" {
		return o, errors.New("serve: --kubeconfig and --manifests exclude each other: use an API server or a folder of manifests")
	}
	for _, ns := range strings.Split(f.namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			o.Namespaces = append(o.Namespaces, ns)
		}
	}
	if err := o.LogLevel.UnmarshalText([]byte(f.logLevel)); err != nil {
		return o, fmt.Errorf("serve: --log-level %q: want debug, info, warn or error", f.logLevel)
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
	if err := o.translatorOptions().Validate(); err != nil {
		return o, fmt.Errorf("serve: --envoy-dns-address: %w", err)
	}
	if o.ManifestMaxBytes <= 0 || o.ManifestSettle <= 0 {
		return o, fmt.Errorf("serve: --manifest-max-bytes (%d) and --manifest-settle (%v) must be positive", o.ManifestMaxBytes, o.ManifestSettle)
	}
	if o.MaxConnectionAge < 0 || o.MaxConnectionAgeGrace < 0 {
		return o, fmt.Errorf("serve: want --max-connection-age (%v) and --max-connection-age-grace (%v) >= 0", o.MaxConnectionAge, o.MaxConnectionAgeGrace)
	}
	if err := validateLimits(o.Limits); err != nil {
		return o, err
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

// registerLimits adds the flags of xds.Limits, with its defaults.
func registerLimits(fs *pflag.FlagSet, l *xds.Limits) {
	d := xds.DefaultLimits()
	fs.IntVar(&l.MaxConnections, "xds-max-connections", d.MaxConnections, "xDS connections open at once; one more is closed as soon as it is accepted (the client retries)")
	fs.IntVar(&l.MaxStreamsPerConnection, "xds-max-streams-per-connection", d.MaxStreamsPerConnection, "ADS streams open at once on one connection; one more is refused with RESOURCE_EXHAUSTED")
	fs.IntVar(&l.MaxRequestBytes, "xds-max-request-bytes", d.MaxRequestBytes, "largest xDS request message; a larger one ends its stream with RESOURCE_EXHAUSTED")
	fs.IntVar(&l.MaxNames, "xds-max-names", d.MaxNames, "most resource names of one type a stream may subscribe to, and most initial_resource_versions of a delta request; past it the stream ends with RESOURCE_EXHAUSTED")
	fs.IntVar(&l.MaxNodeIDBytes, "xds-max-node-id-bytes", d.MaxNodeIDBytes, "node ids (and user agents) are kept, shown and logged cut to this many bytes, with a marker giving the full length")
	fs.IntVar(&l.MaxNackDetailBytes, "xds-max-nack-detail-bytes", d.MaxNackDetailBytes, "NACK error messages are kept, shown and logged cut to this many bytes, with a marker giving the full length")
	fs.DurationVar(&l.NackLogInterval, "xds-nack-log-interval", d.NackLogInterval, "per stream, log one NACK per resource type at once, then at most one NACK line per this interval (the others are counted)")
	fs.IntVar(&l.MaxUnknownListeners, "xds-max-unknown-listeners", d.MaxUnknownListeners, "placeholder listeners one stream gets for listener names that name no Service; further such names go unanswered")
	fs.DurationVar(&l.FirstRequestTimeout, "xds-first-request-timeout", d.FirstRequestTimeout, "a stream that has not sent a whole first request by then is ended with DEADLINE_EXCEEDED")
	fs.DurationVar(&l.HandshakeTimeout, "xds-handshake-timeout", d.HandshakeTimeout, "a connection that has not finished its TLS and HTTP/2 handshake by then is closed")
	fs.IntVar(&l.MaxCSDSInFlight, "xds-csds-max-in-flight", d.MaxCSDSInFlight, "CSDS requests answered at once; one more is refused with RESOURCE_EXHAUSTED")
	fs.IntVar(&l.MaxCSDSResponseBytes, "xds-csds-max-response-bytes", d.MaxCSDSResponseBytes, "largest CSDS answer; clients past it are left out (ask with a node matcher or exclude_resource_contents)")
}

func validateLimits(l xds.Limits) error {
	for name, v := range map[string]int{
		"--xds-max-connections": l.MaxConnections, "--xds-max-streams-per-connection": l.MaxStreamsPerConnection,
		"--xds-max-request-bytes": l.MaxRequestBytes, "--xds-max-names": l.MaxNames,
		"--xds-max-node-id-bytes": l.MaxNodeIDBytes, "--xds-max-nack-detail-bytes": l.MaxNackDetailBytes,
		"--xds-max-unknown-listeners": l.MaxUnknownListeners,
		"--xds-csds-max-in-flight":    l.MaxCSDSInFlight, "--xds-csds-max-response-bytes": l.MaxCSDSResponseBytes,
	} {
		if v <= 0 {
			return fmt.Errorf("serve: %s (%d) must be positive", name, v)
		}
	}
	for name, v := range map[string]time.Duration{
		"--xds-nack-log-interval": l.NackLogInterval, "--xds-first-request-timeout": l.FirstRequestTimeout,
		"--xds-handshake-timeout": l.HandshakeTimeout,
	} {
		if v <= 0 {
			return fmt.Errorf("serve: %s (%v) must be positive", name, v)
		}
	}
	return nil
}

// translatorOptions are the translator.Options the flags give.
func (o serveOptions) translatorOptions() translator.Options {
	t := translator.Options{ClusterDomain: o.ClusterDomain}
	if o.EnvoySidecars {
		t.SidecarDNS = o.EnvoyDNSAddress
	}
	return t
}
