package echo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// GRPCServiceName is the gRPC service the backend serves on its gRPC ports;
// GRPCEchoMethod is its one method, which takes a google.protobuf.StringValue
// (ignored) and answers with the backend's Body in one.
const (
	GRPCServiceName = "switchboard.echo.Echo"
	GRPCEchoMethod  = "/" + GRPCServiceName + "/Echo"
)

// Options are the backend's flags, named as the echo image's: every port
// listens on IP (all addresses when empty).
type Options struct {
	IP        string
	HTTPPorts []int // --port: HTTP/1.1 and h2c, TLS when also in TLSPorts
	TLSPorts  []int // --tls
	GRPCPorts []int // --grpc
	TCPPorts  []int // --tcp: echo what is read
	// CertFile and KeyFile (--crt, --key) serve TLSPorts; when either file
	// does not exist a self-signed certificate for Hostname is made.
	CertFile, KeyFile string
	Hostname          string // reported as Hostname: the Pod's name
	Version           string // reported as ServiceVersion
}

// Server is a running backend. Close stops it.
type Server struct {
	opts  Options
	addrs map[string][]string // by kind: http, https, grpc, tcp
	wg    sync.WaitGroup
	close []func()
}

// Start binds every port of opts and serves them until Close. It fails,
// having released whatever it bound, if any port cannot be bound.
func Start(opts Options) (s *Server, err error) {
	s = &Server{opts: opts, addrs: map[string][]string{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	tlsPorts := map[int]bool{}
	for _, p := range opts.TLSPorts {
		tlsPorts[p] = true
	}
	var tlsConf *tls.Config
	if len(opts.TLSPorts) > 0 {
		cert, err := loadOrMakeCert(opts.CertFile, opts.KeyFile, opts.Hostname)
		if err != nil {
			return nil, err
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	for _, p := range opts.HTTPPorts {
		ln, err := s.listen(p)
		if err != nil {
			return nil, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		srv := &http.Server{Handler: s.httpHandler(port), ReadHeaderTimeout: 10 * time.Second, Protocols: new(http.Protocols)}
		srv.Protocols.SetHTTP1(true)
		kind, serve := "http", func() { _ = srv.Serve(ln) }
		if tlsPorts[p] {
			srv.TLSConfig = tlsConf.Clone()
			srv.Protocols.SetHTTP2(true)
			kind, serve = "https", func() { _ = srv.ServeTLS(ln, "", "") }
		} else {
			srv.Protocols.SetUnencryptedHTTP2(true)
		}
		s.addrs[kind] = append(s.addrs[kind], ln.Addr().String())
		s.goServe(serve, func() { _ = srv.Close() })
	}
	for _, p := range opts.GRPCPorts {
		ln, err := s.listen(p)
		if err != nil {
			return nil, err
		}
		srv := grpc.NewServer()
		port := ln.Addr().(*net.TCPAddr).Port
		srv.RegisterService(&grpc.ServiceDesc{
			ServiceName: GRPCServiceName,
			HandlerType: (*any)(nil),
			Methods: []grpc.MethodDesc{{MethodName: "Echo", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := dec(new(wrapperspb.StringValue)); err != nil {
					return nil, err
				}
				return wrapperspb.String(s.grpcBody(ctx, port)), nil
			}}},
		}, struct{}{})
		s.addrs["grpc"] = append(s.addrs["grpc"], ln.Addr().String())
		s.goServe(func() { _ = srv.Serve(ln) }, srv.Stop)
	}
	for _, p := range opts.TCPPorts {
		ln, err := s.listen(p)
		if err != nil {
			return nil, err
		}
		s.addrs["tcp"] = append(s.addrs["tcp"], ln.Addr().String())
		s.goServe(func() { serveTCP(ln) }, func() { _ = ln.Close() })
	}
	return s, nil
}

// Addrs returns the bound addresses of one kind of port: "http", "https",
// "grpc" or "tcp", in the order of the options.
func (s *Server) Addrs(kind string) []string { return s.addrs[kind] }

// Close stops every port and waits for the servers to return.
func (s *Server) Close() {
	for _, c := range s.close {
		c()
	}
	s.close = nil
	s.wg.Wait()
}

func (s *Server) listen(port int) (net.Listener, error) {
	addr := net.JoinHostPort(s.opts.IP, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("echo: listen on %s: %w", addr, err)
	}
	return ln, nil
}

func (s *Server) goServe(serve, stop func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		serve()
	}()
	s.close = append(s.close, stop)
}

func (s *Server) httpHandler(port int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hdr := r.Header.Clone()
		// Go moves Host out of the header map; the format lists it.
		hdr.Set("Host", r.Host)
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		body := Request{
			Version: s.opts.Version, Port: port, Host: r.Host, URL: r.URL.RequestURI(), Method: r.Method,
			Proto: r.Proto, IP: ip, Headers: hdr, Hostname: s.opts.Hostname,
		}.Body()
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, body)
	}
}

func (s *Server) grpcBody(ctx context.Context, port int) string {
	md, _ := metadata.FromIncomingContext(ctx)
	hdr := http.Header{}
	authority := ""
	for k, vs := range md {
		if k == ":authority" {
			authority = strings.Join(vs, ",")
			continue
		}
		for _, v := range vs {
			hdr.Add(k, v)
		}
	}
	ip := ""
	if p, ok := peer.FromContext(ctx); ok {
		ip, _, _ = net.SplitHostPort(p.Addr.String())
	}
	method, _ := grpc.Method(ctx)
	return Request{
		Version: s.opts.Version, Port: port, Host: authority, URL: method, Proto: "GRPC",
		IP: ip, Headers: hdr, Hostname: s.opts.Hostname,
	}.Body()
}

func serveTCP(ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

func loadOrMakeCert(certFile, keyFile, host string) (tls.Certificate, error) {
	if certFile != "" && keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err == nil {
			return cert, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return tls.Certificate{}, fmt.Errorf("echo: %w", err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("echo: key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("echo: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
