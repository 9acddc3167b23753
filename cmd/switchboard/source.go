package main

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

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

func newSource(ctx context.Context, o serveOptions, wopts watcher.Options) (watcher.Source, error) {
	if o.Manifests != "" {
		return watcher.NewManifestSource(o.Manifests, wopts)
	}
	cfg, err := restConfig(o.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "switchboard/" + version
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if err := preflight(ctx, client, o.Namespaces, o.NodeRegions, cfg.Host); err != nil {
		return nil, err
	}
	return watcher.NewInformerSource(client, wopts)
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

// preflight lists one Service and one EndpointSlice, so that an unreachable
// API server or a missing permission is a clear error at start rather than
// a replica that never becomes ready.
func preflight(ctx context.Context, client kubernetes.Interface, namespaces []string, nodes bool, host string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	one := metav1.ListOptions{Limit: 1}
	for _, ns := range namespaces {
		if _, err := client.CoreV1().Services(ns).List(ctx, one); err != nil {
			return fmt.Errorf("API server %s: list services: %w", host, err)
		}
		if _, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, one); err != nil {
			return fmt.Errorf("API server %s: list endpointslices: %w", host, err)
		}
	}
	if nodes {
		if _, err := client.CoreV1().Nodes().List(ctx, one); err != nil {
			return fmt.Errorf("API server %s: list nodes (for --node-regions; see deploy/rbac-node-regions.yaml): %w", host, err)
		}
	}
	return nil
}
