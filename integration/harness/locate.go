package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// rootModule is the module path of the repository whose
// deploy/kubernetes/base/rbac.yaml is applied by default.
const rootModule = "github.com/switchboard-xds/switchboard"

// pollInterval is how often Start looks at a process that is coming up.
const pollInterval = 50 * time.Millisecond

// toolsDir returns dir, else $SWITCHBOARD_TOOLS_DIR, else DefaultToolsDir().
func toolsDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(ToolsDirEnv)
	}
	if dir == "" {
		return DefaultToolsDir()
	}
	return dir, nil
}

// locateBinaries returns the paths of etcd and kube-apiserver under toolsDir,
// $SWITCHBOARD_TOOLS_DIR or DefaultToolsDir(), in that order of preference.
func locateBinaries(dir string) (etcd, apiserver string, err error) {
	bins, err := locateTools(dir, "etcd", "kube-apiserver")
	if err != nil {
		return "", "", err
	}
	return bins[0], bins[1], nil
}

// locateTools returns the paths of the named binaries in the bin folder of
// toolsDir(dir), or an error naming `make tools`.
func locateTools(dir string, names ...string) ([]string, error) {
	dir, err := toolsDir(dir)
	if err != nil {
		return nil, err
	}
	bins := make([]string, 0, len(names))
	for _, name := range names {
		bins = append(bins, filepath.Join(dir, "bin", name))
	}
	for _, bin := range bins {
		info, err := os.Stat(bin)
		if err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 {
			continue
		}
		if err == nil {
			err = fmt.Errorf("%s: not an executable file", bin)
		}
		return nil, fmt.Errorf("harness: %w; run `make tools` to build kube-apiserver, kube-controller-manager and kube-scheduler v%s, "+
			"etcd v%s and kwok v%s (about 20 minutes the first time), or point $%s at a folder holding them in bin/",
			err, KubernetesVersion, EtcdVersion, KWOKVersion, ToolsDirEnv)
	}
	return bins, nil
}

// findRBACFile walks up from the working directory to the root of the
// Switchboard module and returns its deploy/kubernetes/base/rbac.yaml, the
// kustomize base's, which a cluster install applies too.
func findRBACFile() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find deploy/kubernetes/base/rbac.yaml: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if modulePath(filepath.Join(dir, "go.mod")) == rootModule {
			return filepath.Join(dir, "deploy", "kubernetes", "base", "rbac.yaml"), nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("find deploy/kubernetes/base/rbac.yaml: no go.mod of %s above %s; set Options.RBACFile", rootModule, wd)
		}
	}
}

// modulePath returns the module path declared in the go.mod file at path, or
// "" when there is none.
func modulePath(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// waitHTTP polls url with client until it answers 200 OK. It gives up when
// ctx ends or when p exits, quoting p's log.
func waitHTTP(ctx context.Context, p *process, client *http.Client, url string) error {
	var last string
	for {
		if p.exited() {
			return p.exitErrorOr(fmt.Errorf("%s exited with status 0", p.name))
		}
		resp, err := get(ctx, client, url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("poll %s: %w (last answer: %s)\n%s", url, ctx.Err(), last, p.logTail())
		case <-p.done:
		case <-time.After(pollInterval):
		}
	}
}

// waitDefaultService waits until the Service default/kubernetes exists.
func waitDefaultService(ctx context.Context, p *process, c kubernetes.Interface) error {
	for {
		_, err := c.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsNotFound(err) && ctx.Err() == nil {
			return fmt.Errorf("get default/kubernetes: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for default/kubernetes: %w\n%s", ctx.Err(), p.logTail())
		case <-time.After(pollInterval):
		}
	}
}

// waitServingCA waits for the self-signed serving certificate that the API
// server writes into certDir at startup and returns the file, a PEM bundle
// of the serving certificate and the CA that signed it: trusting the bundle
// makes clients verify the server, with no insecure-skip-verify.
func waitServingCA(ctx context.Context, p *process, certDir string) ([]byte, error) {
	path := filepath.Join(certDir, "apiserver.crt")
	for {
		data, err := os.ReadFile(path)
		switch {
		case err == nil && parsesAsCertificates(data):
			return data, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("read API server certificate: %w", err)
		}
		// Absent, or still being written.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for %s: %w\n%s", path, ctx.Err(), p.logTail())
		case <-p.done:
			return nil, p.exitErrorOr(fmt.Errorf("%s exited with status 0", p.name))
		case <-time.After(pollInterval):
		}
	}
}

// parsesAsCertificates reports whether data is a complete PEM bundle of at
// least one certificate.
func parsesAsCertificates(data []byte) bool {
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return n > 0 && len(bytes.TrimSpace(data)) == 0
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return false
		}
		n++
	}
}

// get sends one GET with a short deadline of its own, so that one stuck
// connection does not use up the whole wait.
func get(ctx context.Context, client *http.Client, url string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("poll %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	// The body is read before cancel runs.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, err
}
