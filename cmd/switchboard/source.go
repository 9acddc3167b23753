package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/switchboard-xds/switchboard/routestatus"

	"github.com/switchboard-xds/switchboard/watcher"
)

func (o serveOptions) source() string {
	if o.Manifests != "" {
		return "manifests " + o.Manifests
	}
	if o.Kubeconfig != "" {
		return "kubeconfig " + o.Kubeconfig
	}
	return "kubernetes (in-cluster or default kubeconfig)"
}

// newSource returns the source of o, and with an API server the writer of
// mesh route status (nil with a manifest folder).
func newSource(ctx context.Context, o serveOptions, wopts watcher.Options) (watcher.Source, *routestatus.Writer, error) {
	if o.Manifests != "" {
		src, err := watcher.NewManifestSource(o.Manifests, wopts)
		return src, nil, err
	}
	cfg, err := restConfig(o.Kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	cfg.UserAgent = "switchboard/" + version
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if err := preflight(ctx, client, o.Namespaces, o.NodeRegions, cfg.Host, wopts.Logger); err != nil {
		return nil, nil, err
	}
	// Mesh routes (Gateway API), watched while their CRDs are installed.
	gw, err := gatewayclient.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway API client: %w", err)
	}
	wopts.Gateway = gw
	src, err := watcher.NewInformerSource(client, wopts)
	if err != nil {
		return nil, nil, err
	}
	status, err := routestatus.New(routestatus.Options{
		Kube: client, Gateway: gw,
		LeaseNamespace: envOr("POD_NAMESPACE", "switchboard-system"),
		LeaseName:      "switchboard-route-status",
		Identity:       podName(),
		Logger:         wopts.Logger.With("component", "route-status"),
	})
	return src, status, err
}

// envOr is $name, or def when it is empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// podName names this replica in the route status Lease: $POD_NAME (the
// downward API), else the host name and process id.
func podName() string {
	if v := os.Getenv("POD_NAME"); v != "" {
		return v
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// restConfig follows the documented order: --kubeconfig, else in-cluster,
// else $KUBECONFIG, else ~/.kube/config.
func restConfig(path string) (*rest.Config, error) {
	if path != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", path, err)
		}
		return cfg, nil
	}
	if cfg, err := rest.InClusterConfig(); err == nil {
		return cfg, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("no Kubernetes configuration (not in a cluster, no $KUBECONFIG, no ~/.kube/config; use --kubeconfig or --manifests): %w", err)
	}
	return cfg, nil
}

// preflight lists one Service and one EndpointSlice (and one Node with
// --node-regions), so that an unreachable API server or credentials it
// refuses are a clear error at start rather than a replica that never
// becomes ready. A missing permission (403) is only logged: RBAC is often
// applied together with the Deployment and may land a moment later, and the
// informer source keeps retrying and gives up after --sync-timeout, naming
// the forbidden resource.
func preflight(ctx context.Context, client kubernetes.Interface, namespaces []string, nodes bool, host string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	one := metav1.ListOptions{Limit: 1}
	check := func(what string, err error) error {
		switch {
		case err == nil:
			return nil
		case apierrors.IsForbidden(err):
			log.Warn("permission missing; waiting for it until --sync-timeout", "api_server", host, "check", what, "error", err)
			return nil
		default:
			return fmt.Errorf("API server %s: %s: %w", host, what, err)
		}
	}
	for _, ns := range namespaces {
		_, err := client.CoreV1().Services(ns).List(ctx, one)
		if err := check("list services", err); err != nil {
			return err
		}
		_, err = client.DiscoveryV1().EndpointSlices(ns).List(ctx, one)
		if err := check("list endpointslices", err); err != nil {
			return err
		}
	}
	if nodes {
		_, err := client.CoreV1().Nodes().List(ctx, one)
		if err := check("list nodes (for --node-regions; see deploy/rbac-node-regions.yaml)", err); err != nil {
			return err
		}
	}
	return nil
}
