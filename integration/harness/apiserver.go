package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"

	"k8s.io/client-go/rest"
)

// startAPIServerProcess runs kube-apiserver on cp's etcd, serving on port
// with its self-signed certificate in certDir (made there when absent,
// reused when present), logging to logName in cp's folder.
func (cp *ControlPlane) startAPIServerProcess(port int, certDir, logName string, extra io.Writer) (*process, error) {
	args := append([]string{"--secure-port=" + strconv.Itoa(port), "--cert-dir=" + certDir}, cp.apiserverArgs...)
	return startProcess("kube-apiserver", cp.apiserverBin, args, nil, filepath.Join(cp.dir, logName), extra)
}

// StopAPIServer kills the API server with SIGKILL, as a crash or a lost
// node would, and leaves etcd running; StartAPIServer brings it back. It is
// an error to stop an API server that is not running.
func (cp *ControlPlane) StopAPIServer() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.apiserver == nil || cp.apiserver.exited() {
		return errors.New("harness: StopAPIServer: the API server is not running")
	}
	err := cp.apiserver.stop(0)
	return err
}

// StartAPIServer starts the API server again after StopAPIServer, on the
// same address and with the same serving certificate, so configurations
// from UserConfig and WriteKubeconfig keep working, and waits until its
// /readyz passes. Its log goes to kube-apiserver-restarted.log.
func (cp *ControlPlane) StartAPIServer(ctx context.Context) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.apiserver != nil && !cp.apiserver.exited() {
		return errors.New("harness: StartAPIServer: the API server is running")
	}
	p, err := cp.startAPIServerProcess(cp.port, filepath.Join(cp.dir, "certs"), "kube-apiserver-restarted.log", nil)
	if err != nil {
		return err
	}
	cp.apiserver = p
	return cp.waitReady(ctx, p, cp.AdminConfig())
}

// waitReady waits until p, the API server that cfg talks to, passes /readyz.
func (cp *ControlPlane) waitReady(ctx context.Context, p *process, cfg *rest.Config) error {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return fmt.Errorf("build API server HTTP client: %w", err)
	}
	if err := waitHTTP(ctx, p, client, cfg.Host+"/readyz"); err != nil {
		return fmt.Errorf("kube-apiserver did not become ready: %w", err)
	}
	return nil
}

// APIServer is a second kube-apiserver on a ControlPlane's etcd, as in a
// highly available cluster: it serves the same objects and accepts the same
// tokens on an address and certificate of its own.
type APIServer struct {
	url    string
	caData []byte
	token  string
	p      *process
}

// SecondAPIServer starts another API server on cp's etcd and waits until its
// /readyz passes. The caller stops it with Stop; ControlPlane.Stop does not.
func (cp *ControlPlane) SecondAPIServer(ctx context.Context) (_ *APIServer, err error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(cp.dir, "certs-"+strconv.Itoa(ports[0]))
	p, err := cp.startAPIServerProcess(ports[0], certDir, "kube-apiserver-"+strconv.Itoa(ports[0])+".log", nil)
	if err != nil {
		return nil, err
	}
	a := &APIServer{url: "https://127.0.0.1:" + strconv.Itoa(ports[0]), token: cp.creds.tokens[AdminUser], p: p}
	defer func() {
		if err != nil {
			_ = p.stop(0)
		}
	}()
	if a.caData, err = waitServingCA(ctx, p, certDir); err != nil {
		return nil, err
	}
	if err := cp.waitReady(ctx, p, a.AdminConfig()); err != nil {
		return nil, err
	}
	return a, nil
}

// AdminConfig returns a new rest.Config for AdminUser on this API server.
func (a *APIServer) AdminConfig() *rest.Config {
	return &rest.Config{
		Host:            a.url,
		BearerToken:     a.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), a.caData...)},
		QPS:             1000,
		Burst:           2000,
	}
}

// Stop kills this API server.
func (a *APIServer) Stop() error { return a.p.stop(0) }
