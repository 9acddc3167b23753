package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"
)

// bootstrapOptions are the flags of "switchboard bootstrap grpc" and
// "switchboard bootstrap envoy" that say who the client is and how it
// reaches Switchboard.
type bootstrapOptions struct {
	Server    string
	NodeID    string
	Zone      string
	Region    string
	Namespace string
	// TLSCA, TLSCert and TLSKey are files on the client's machine: the CA
	// bundle that verifies the xDS server, and the client's certificate
	// and key for mTLS. Any of them makes the channel TLS.
	TLSCA, TLSCert, TLSKey string
}

// register defines the flags on cmd; client names the kind of client in
// their help ("client", "sidecar").
func (o *bootstrapOptions) register(cmd *cobra.Command, client string) {
	fs := cmd.Flags()
	fs.StringVar(&o.Server, "server", "", "xDS server address HOST:PORT (required)")
	fs.StringVar(&o.NodeID, "node-id", "", "node id the "+client+" reports (required)")
	fs.StringVar(&o.Zone, "zone", "", "the "+client+"'s zone (node locality), for zone-aware routing")
	fs.StringVar(&o.Region, "region", "", "the "+client+"'s region (node locality)")
	fs.StringVar(&o.Namespace, "namespace", "", "the "+client+"'s namespace (node metadata NAMESPACE), for short names")
	fs.StringVar(&o.TLSCA, "tls-ca", "", "connect over TLS and verify the xDS server with this PEM CA bundle (a path on the "+client+"'s machine)")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "the "+client+"'s PEM certificate, for a server that requires mTLS (--xds-client-ca)")
	fs.StringVar(&o.TLSKey, "tls-key", "", "the private key of --tls-cert")
	completeFiles(cmd, "tls-ca", "tls-cert", "tls-key")
}

// check returns the server's host and port, or what is wrong with the
// flags (a usage error); command prefixes the error.
func (o bootstrapOptions) check(command string) (host string, port uint32, err error) {
	host, port, err = o.checkFlags(command)
	return host, port, usageErr(err)
}

func (o bootstrapOptions) checkFlags(command string) (host string, port uint32, err error) {
	if o.Server == "" {
		return "", 0, fmt.Errorf("%s: --server is required", command)
	}
	host, portStr, err := net.SplitHostPort(o.Server)
	if err != nil {
		return "", 0, fmt.Errorf("%s: --server %q: %w", command, o.Server, err)
	}
	p, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("%s: --server %q: bad port", command, o.Server)
	}
	// One rule for both bootstraps: what gRPC dials and what Envoy resolves
	// is an IP address or a DNS name, never empty.
	if _, err := netip.ParseAddr(host); err != nil && len(validation.IsDNS1123Subdomain(strings.ToLower(strings.TrimSuffix(host, ".")))) > 0 {
		return "", 0, fmt.Errorf("%s: --server %q: the host must be an IP address or a DNS name (HOST:PORT)", command, o.Server)
	}
	if o.NodeID == "" {
		return "", 0, fmt.Errorf("%s: --node-id is required", command)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return "", 0, fmt.Errorf("%s: --tls-cert and --tls-key go together", command)
	}
	// Without a CA the client verifies the server against the system
	// roots, which a private CA is not in.
	if o.TLSCert != "" && o.TLSCA == "" {
		return "", 0, fmt.Errorf("%s: --tls-cert needs --tls-ca, the CA that verifies the server", command)
	}
	return host, uint32(p), nil
}

// grpcBootstrap is the subset of the gRPC xDS bootstrap format (gRFC A27)
// that grpc-go, grpc-js-xds and C-core all read the same way.
type grpcBootstrap struct {
	XDSServers []xdsServer   `json:"xds_servers"`
	Node       bootstrapNode `json:"node"`
}

type xdsServer struct {
	ServerURI      string        `json:"server_uri"`
	ChannelCreds   []channelCred `json:"channel_creds"`
	ServerFeatures []string      `json:"server_features"`
}

type channelCred struct {
	Type   string          `json:"type"`
	Config *tlsCredsConfig `json:"config,omitempty"`
}

// tlsCredsConfig is the config of channel_creds type "tls" (gRFC A65): the
// keys of the "file_watcher" certificate provider, which grpc-go
// (internal/xds/bootstrap/tlscreds) hands to its pemfile provider; it
// re-reads the files every refresh_interval (default 10 minutes).
type tlsCredsConfig struct {
	CACertificateFile string `json:"ca_certificate_file,omitempty"`
	CertificateFile   string `json:"certificate_file,omitempty"`
	PrivateKeyFile    string `json:"private_key_file,omitempty"`
}

type bootstrapNode struct {
	ID string `json:"id"`
	// Locality is always written: grpc-js-xds refuses a node without one,
	// even an empty object.
	Locality locality          `json:"locality"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

type locality struct {
	Region string `json:"region,omitempty"`
	Zone   string `json:"zone,omitempty"`
}

// newBootstrapCommand is "switchboard bootstrap", the parent of grpc and
// envoy.
func newBootstrapCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Print a bootstrap file that points a client at Switchboard",
		Long: "Print a bootstrap file that points a client at Switchboard:\n" +
			"  grpc    JSON for proxyless gRPC xDS clients (grpc-go, grpc-js-xds, gRPC C-core)\n" +
			"  envoy   YAML for an Envoy sidecar (delta ADS; --sotw for state of the world)",
	}
	cmd.AddCommand(newBootstrapGRPCCommand(), newBootstrapEnvoyCommand())
	return cmd
}

// newBootstrapGRPCCommand is "switchboard bootstrap grpc".
func newBootstrapGRPCCommand() *cobra.Command {
	var o bootstrapOptions
	var output string
	cmd := &cobra.Command{
		Use:   "grpc --server HOST:PORT --node-id ID [flags]",
		Short: "Print a gRPC xDS bootstrap JSON",
		Long:  "Print a gRPC xDS bootstrap JSON (gRFC A27) for a client of Switchboard's ADS server.",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return o.writeGRPC(c.OutOrStdout(), output)
		},
	}
	o.register(cmd, "client")
	// An init container of the image has no shell to redirect stdout.
	cmd.Flags().StringVar(&output, "output", "", "write the bootstrap to this file (mode 0644, replaced) instead of stdout, e.g. in an init container")
	completeFiles(cmd, "output")
	return cmd
}

// writeGRPC writes the gRPC bootstrap to stdout, or to the file output.
func (o bootstrapOptions) writeGRPC(stdout io.Writer, output string) error {
	b, err := o.build()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(b); err != nil {
		return fmt.Errorf("bootstrap grpc: %w", err)
	}
	if output != "" {
		if err := os.WriteFile(output, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("bootstrap grpc: --output: %w", err)
		}
		// Whatever the umask or an earlier file's mode: the app reads it.
		if err := os.Chmod(output, 0o644); err != nil {
			return fmt.Errorf("bootstrap grpc: --output: %w", err)
		}
		return nil
	}
	_, err = buf.WriteTo(stdout)
	return err
}

func (o bootstrapOptions) build() (grpcBootstrap, error) {
	if _, _, err := o.check("bootstrap grpc"); err != nil {
		return grpcBootstrap{}, err
	}
	creds := channelCred{Type: "insecure"}
	if o.TLSCA != "" {
		creds = channelCred{Type: "tls", Config: &tlsCredsConfig{CACertificateFile: o.TLSCA, CertificateFile: o.TLSCert, PrivateKeyFile: o.TLSKey}}
	}
	b := grpcBootstrap{
		XDSServers: []xdsServer{{
			ServerURI:      o.Server,
			ChannelCreds:   []channelCred{creds},
			ServerFeatures: []string{"xds_v3"},
		}},
		Node: bootstrapNode{ID: o.NodeID, Locality: locality{Region: o.Region, Zone: o.Zone}},
	}
	if o.Namespace != "" {
		b.Node.Metadata = map[string]string{"NAMESPACE": o.Namespace}
	}
	return b, nil
}
