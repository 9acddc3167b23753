package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	"github.com/switchboard-xds/switchboard/xds/xdsauth"
)

// xdsTLSOptions are the flags of "switchboard serve" that secure the xDS
// port.
type xdsTLSOptions struct {
	Cert, Key, ClientCA string
}

func (o *xdsTLSOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.Cert, "xds-tls-cert", "", "serve xDS over TLS with this PEM certificate (chain); reloaded when it changes")
	fs.StringVar(&o.Key, "xds-tls-key", "", "the private key of --xds-tls-cert (PEM); reloaded when it changes")
	fs.StringVar(&o.ClientCA, "xds-client-ca", "", "require xDS clients to present a certificate from this PEM CA bundle (mTLS), with a SPIFFE ID whose namespace is the node's NAMESPACE; reloaded when it changes")
}

func (o xdsTLSOptions) validate() error {
	if (o.Cert == "") != (o.Key == "") {
		return errors.New("serve: --xds-tls-cert and --xds-tls-key go together")
	}
	if o.ClientCA != "" && o.Cert == "" {
		return errors.New("serve: --xds-client-ca needs --xds-tls-cert and --xds-tls-key: client certificates are only asked for over TLS")
	}
	return nil
}

// xdsSecurity is what the xDS server needs from the TLS flags: options for
// the grpc.Server, an Authorize hook for mTLS, and the reload loop (nil
// for none). The zero value is plaintext.
type xdsSecurity struct {
	serverOptions []grpc.ServerOption
	authorize     func(context.Context, *corev3.Node) error
	// askerNamespace scopes CSDS to the asker's namespace (mTLS only).
	askerNamespace func(context.Context) (string, error)
	run            func(context.Context) error
}

// build loads the files named by the flags, failing when they do not load.
// The TLS metrics are registered either way, so that the series the
// certificate-expiry alert reads exist from the start (at 0 without TLS).
func (o xdsTLSOptions) build(log *slog.Logger, reg prometheus.Registerer) (xdsSecurity, error) {
	metrics := xdsauth.NewMetrics(reg)
	if o.Cert == "" {
		return xdsSecurity{}, nil
	}
	creds, err := xdsauth.New(xdsauth.Options{
		CertFile:     o.Cert,
		KeyFile:      o.Key,
		ClientCAFile: o.ClientCA,
		Logger:       log,
		Metrics:      metrics,
	})
	if err != nil {
		return xdsSecurity{}, fmt.Errorf("--xds-tls-cert/--xds-tls-key/--xds-client-ca: %w", err)
	}
	sec := xdsSecurity{serverOptions: []grpc.ServerOption{creds.ServerOption()}, run: creds.Run}
	if creds.MutualTLS() {
		sec.authorize = creds.Authorize
		sec.askerNamespace = func(ctx context.Context) (string, error) {
			id, err := xdsauth.IdentityOf(ctx)
			return id.Namespace, err
		}
	}
	return sec, nil
}
