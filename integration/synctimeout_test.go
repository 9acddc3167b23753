package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/switchboard-xds/switchboard/integration/harness"
)

// TestSyncTimeoutNamesForbiddenResource runs the binary as an identity that
// has deploy/rbac.yaml's ClusterRole without its EndpointSlice rule. The
// start-up check only warns about a missing permission, the informers keep
// failing to list EndpointSlices, and after --sync-timeout the binary exits
// non-zero with a last line that names the forbidden resource: the flag
// reaches the informer source, whose error wins over the generic backstop.
func TestSyncTimeoutNamesForbiddenResource(t *testing.T) {
	bin := switchboardBinary(t)
	cp, admin := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := harness.TestNamespace(t, admin)
	token := identityWithout(ctx, t, admin, ns, "discovery.k8s.io", "endpointslices")

	config, err := cp.TokenKubeconfig("limited", token)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, config, 0o600); err != nil {
		t.Fatal(err)
	}

	const timeout = 3 * time.Second
	cmd := exec.CommandContext(ctx, bin, "serve", "--kubeconfig", kubeconfig, "--sync-timeout", timeout.String(),
		"--xds-address", freeAddr(t), "--admin-address", freeAddr(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	t.Logf("exited after %v: %v", elapsed.Round(time.Millisecond), err)
	if ctx.Err() != nil {
		t.Fatalf("serve still running after a minute with --sync-timeout %v:\n%s", timeout, stderr.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("serve exited with %v, want status 1:\n%s", err, stderr.String())
	}
	if elapsed < timeout {
		t.Errorf("serve gave up after %v, before --sync-timeout %v: not the sync timeout", elapsed, timeout)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{
		"switchboard: watcher: informer caches not synced after 3s",
		`endpointslices.discovery.k8s.io is forbidden`,
	} {
		if !strings.Contains(last, want) {
			t.Errorf("last line of stderr does not say %q:\n%s", want, last)
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", stderr.String())
	}
}

// identityWithout creates a ServiceAccount in ns bound to a copy of the
// ClusterRole that deploy/rbac.yaml defines (as the harness applied it)
// without the rules for resource in group, and returns a token for it. The
// ClusterRole and its binding are deleted when the test ends.
func identityWithout(ctx context.Context, t *testing.T, admin kubernetes.Interface, ns, group, resource string) string {
	t.Helper()
	committed, err := admin.RbacV1().ClusterRoles().Get(ctx, "switchboard", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the ClusterRole of deploy/rbac.yaml: %v", err)
	}
	var rules []rbacv1.PolicyRule
	dropped := false
	for _, r := range committed.Rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) {
			dropped = true
			continue
		}
		rules = append(rules, r)
	}
	if !dropped || len(rules) == 0 {
		t.Fatalf("deploy/rbac.yaml's ClusterRole has no separate rule for %s.%s to drop: %+v", resource, group, committed.Rules)
	}
	const sa = "limited"
	name := ns + "-without-" + resource
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = admin.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{})
	})
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}
