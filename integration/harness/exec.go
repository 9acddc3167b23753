package harness

import (
	"bytes"
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// ExecOptions are the command and streams of Exec.
type ExecOptions struct {
	// Container is the container to exec into; empty means the Pod's only
	// one (the API server refuses an empty name for a Pod with several).
	Container string
	Command   []string
	// There is no standard input: KWOK v0.8.0's local exec does not close
	// the command's input when the SPDY stream's ends (`cat` never
	// returns), so a command that reads it would hang.
}

// Exec runs a command in a Pod through the API server's pods/exec
// subresource and the SPDY executor, as `kubectl exec` does, and returns its
// standard output and error. In cluster mode the API server forwards the
// request to KWOK's kubelet server, which runs the command on this machine
// with the environment of the Pod's Exec object (see RunPods). A command
// that exits non-zero is an error that wraps its exit status.
func Exec(ctx context.Context, cfg *rest.Config, namespace, pod string, opts ExecOptions) (stdout, stderr []byte, err error) {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("harness: exec: %w", err)
	}
	req := c.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: opts.Container,
			Command:   opts.Command,
			Stdout:    true,
			Stderr:    true,
		}, scheme.ParameterCodec)
	executor, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return nil, nil, fmt.Errorf("harness: exec: %w", err)
	}
	var out, errOut bytes.Buffer
	err = executor.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	if err != nil {
		return out.Bytes(), errOut.Bytes(), fmt.Errorf("harness: exec %v in %s/%s: %w", opts.Command, namespace, pod, err)
	}
	return out.Bytes(), errOut.Bytes(), nil
}
