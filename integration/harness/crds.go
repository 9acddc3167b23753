package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// GatewayAPIKinds are the route kinds Switchboard reads, as the resource
// names of their CustomResourceDefinitions.
var GatewayAPIKinds = []string{"grpcroutes", "httproutes", "referencegrants"}

// InstallGatewayCRDs installs the standard-channel CustomResourceDefinitions
// of the named resources (e.g. GatewayAPIKinds; every file of the channel
// when none is named) from the sigs.k8s.io/gateway-api module the current
// module pins (found with the go command), and waits until
// gateway.networking.k8s.io/v1 serves those of them that are
// GatewayAPIKinds. A definition that exists is left as it is.
func InstallGatewayCRDs(ctx context.Context, admin kubernetes.Interface, resources ...string) error {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		return fmt.Errorf("harness: find the gateway-api module: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	if len(resources) == 0 {
		files, err := filepath.Glob(filepath.Join(dir, "gateway.networking.k8s.io_*.yaml"))
		if err != nil {
			return fmt.Errorf("harness: %w", err)
		}
		for _, f := range files {
			name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "gateway.networking.k8s.io_"), ".yaml")
			if !strings.HasPrefix(name, "vap_") { // a ValidatingAdmissionPolicy, not a definition
				resources = append(resources, name)
			}
		}
	}
	for _, name := range resources {
		b, err := os.ReadFile(filepath.Join(dir, "gateway.networking.k8s.io_"+name+".yaml"))
		if err != nil {
			return fmt.Errorf("harness: %w", err)
		}
		body, err := yaml.YAMLToJSON(b)
		if err != nil {
			return fmt.Errorf("harness: CRD %s: %w", name, err)
		}
		err = admin.CoreV1().RESTClient().Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").
			SetHeader("Content-Type", "application/json").Body(body).Do(ctx).Error()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("harness: install CRD %s: %w", name, err)
		}
	}
	for {
		served := map[string]bool{}
		list, err := admin.Discovery().ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1")
		if err == nil {
			for _, r := range list.APIResources {
				served[r.Name] = true
			}
		}
		missing := []string{}
		for _, name := range resources {
			if !served[name] && slices.Contains(GatewayAPIKinds, name) {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("harness: Gateway API CRDs %v not served: %w", missing, errors.Join(ctx.Err(), err))
		case <-time.After(pollInterval):
		}
	}
}
