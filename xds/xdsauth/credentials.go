// Package xdsauth holds the xDS server's transport security: TLS serving
// credentials that follow their files without dropping connections, client
// certificate verification (mTLS), and the check that a client's node
// claims only the namespace its certificate identity is in (Authorize).
//
// It is kept out of package xds, which is about the protocol: xds only calls
// the optional xds.ServerOptions.Authorize hook once per stream.
package xdsauth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/switchboard-xds/switchboard/fileread"
)

// DefaultPollInterval is how often Run looks at the files when
// Options.PollInterval is zero.
const DefaultPollInterval = 2 * time.Second

// Options configure New.
type Options struct {
	// CertFile and KeyFile are the PEM serving certificate (chain, leaf
	// first) and its private key. Both are required.
	CertFile, KeyFile string
	// ClientCAFile, when set, is a PEM bundle of CA certificates: clients
	// must present a certificate that chains to one of them (mTLS). Empty
	// means clients are not asked for certificates.
	ClientCAFile string
	// PollInterval is how often Run reads the files; 0 means
	// DefaultPollInterval.
	PollInterval time.Duration
	// Logger receives reloads and refusals; nil discards them.
	Logger *slog.Logger
	// Metrics records reloads and refusals; nil records nothing.
	Metrics *Metrics
	// Now is the clock a certificate's validity is checked against; nil
	// is time.Now.
	Now func() time.Time
}

// MaxFileBytes bounds each of the files read (certificate chain, key,
// client CA bundle): a larger one does not load. A chain and key are a few
// KiB; a CA bundle as large as a distribution's whole trust store is
// about 220 KiB.
const MaxFileBytes = 1 << 20

// errValidity: the serving certificate is expired or not yet valid.
var errValidity = errors.New("the serving certificate is not valid now")

// Credentials are the xDS server's TLS credentials. Every TLS handshake
// reads the material most recently loaded, through
// tls.Config.GetConfigForClient, so a reload changes what new connections
// get and leaves established connections (and their streams) alone.
// Methods are safe for concurrent use.
type Credentials struct {
	opts Options
	log  *slog.Logger
	cur  atomic.Pointer[material]
	// seen is the content of the files at the last poll that changed, so
	// that a broken file is reported once, not on every poll. Owned by
	// the goroutine that runs Run (or by New before it).
	seen []byte
}

// material is one consistent load of the files.
type material struct {
	config   *tls.Config // what a handshake gets
	notAfter time.Time   // the serving certificate's expiry
}

// New loads the files once and returns Credentials serving them. It fails
// when a file cannot be read or parsed (one that is not a regular file, or
// is over MaxFileBytes, among them), the key does not match the
// certificate, or the serving certificate is expired or not yet valid: a
// server should not start with credentials every client would refuse.
func New(opts Options) (*Credentials, error) {
	if opts.CertFile == "" || opts.KeyFile == "" {
		return nil, errors.New("xdsauth: a certificate file and a key file are both required")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Credentials{opts: opts, log: opts.Logger}
	if c.log == nil {
		c.log = discard()
	}
	content, err := c.read()
	if err != nil {
		return nil, err
	}
	m, err := c.parse(content)
	if err != nil {
		return nil, err
	}
	c.seen = content
	c.cur.Store(m)
	opts.Metrics.loaded(m.notAfter)
	return c, nil
}

// MutualTLS reports whether clients must present a verified certificate.
func (c *Credentials) MutualTLS() bool { return c.opts.ClientCAFile != "" }

// ServerOption returns the grpc.Creds option that serves these
// credentials.
func (c *Credentials) ServerOption() grpc.ServerOption {
	return grpc.Creds(credentials.NewTLS(c.TLSConfig()))
}

// TLSConfig returns a server tls.Config whose every handshake uses the
// material loaded last.
func (c *Credentials) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return c.cur.Load().config, nil
		},
	}
}

// Run polls the files every Options.PollInterval until ctx ends and loads
// them when their content changed. A change that does not load (a file
// half written, a key that does not match its certificate yet, a file
// that is not regular or is over MaxFileBytes) is logged once and the last
// good material kept; the next change is tried again. A serving
// certificate that is expired or not yet valid does not load either, and
// is logged at error level: serving it would fail every handshake, while
// the previous one may still be good for days. Readiness is left alone
// (a replica serving its previous certificate serves well); the expiry
// gauge keeps the previous certificate's NotAfter, and the
// SwitchboardTLSCertificateExpiring alert reads it.
//
// Polling rather than fsnotify, as the manifest source does: a Kubernetes
// Secret volume updates by swapping a "..data" symlink in the folder,
// which a watch on the file itself never sees, and cert-manager or an
// operator may replace the files in any order. Reading three small files
// every few seconds costs about 25 µs a poll (BenchmarkPollUnchanged) and sees every one of these cases,
// on any file system, with no watch to re-establish.
func (c *Credentials) Run(ctx context.Context) error {
	t := time.NewTicker(c.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.poll()
		}
	}
}

// poll loads the files if their content changed since the last poll.
func (c *Credentials) poll() {
	content, err := c.read()
	if err != nil {
		// A file briefly missing while it is replaced is normal; report
		// it only if it persists in the same state.
		content = []byte(err.Error())
	}
	if bytes.Equal(content, c.seen) {
		return
	}
	c.seen = content
	var m *material
	if err == nil {
		m, err = c.parse(content)
	}
	if errors.Is(err, errValidity) {
		c.log.Error("TLS serving certificate changed to one that is expired or not yet valid; still serving the previous one", "error", err)
		c.opts.Metrics.reload(false)
		return
	}
	if err != nil {
		c.log.Warn("TLS files changed but do not load; still serving the previous ones", "error", err)
		c.opts.Metrics.reload(false)
		return
	}
	c.cur.Store(m)
	c.opts.Metrics.reload(true)
	c.opts.Metrics.loaded(m.notAfter)
	c.log.Info("TLS files reloaded", "cert", c.opts.CertFile, "client_ca", c.opts.ClientCAFile, "not_after", m.notAfter)
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// sep separates the files in the content read returns; it cannot occur in
// PEM.
const sep = "\x00"

// read returns the three files' content, joined.
func (c *Credentials) read() ([]byte, error) {
	var out []byte
	for _, f := range []string{c.opts.CertFile, c.opts.KeyFile, c.opts.ClientCAFile} {
		if f != "" {
			b, err := fileread.ReadFile(f, MaxFileBytes)
			if err != nil {
				return nil, fmt.Errorf("xdsauth: %w", err)
			}
			out = append(out, b...)
		}
		out = append(out, sep...)
	}
	return out, nil
}

// parse turns what read returned into material.
func (c *Credentials) parse(content []byte) (*material, error) {
	parts := bytes.SplitN(content, []byte(sep), 3)
	cert, err := tls.X509KeyPair(parts[0], parts[1])
	if err != nil {
		return nil, fmt.Errorf("xdsauth: %s and %s: %w", c.opts.CertFile, c.opts.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		// gRPC's credentials add h2 to a config from GetConfigForClient;
		// set it here too so the config is right on its own.
		NextProtos: []string{"h2"},
	}
	if c.opts.ClientCAFile != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(bytes.TrimSuffix(parts[2], []byte(sep))) {
			return nil, fmt.Errorf("xdsauth: %s: no PEM certificate in the client CA bundle", c.opts.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if now := c.opts.Now(); now.After(cert.Leaf.NotAfter) || now.Before(cert.Leaf.NotBefore) {
		return nil, fmt.Errorf("xdsauth: %s: %w: valid from %s to %s, and it is %s", c.opts.CertFile, errValidity,
			cert.Leaf.NotBefore.UTC().Format(time.RFC3339), cert.Leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return &material{config: cfg, notAfter: cert.Leaf.NotAfter}, nil
}
