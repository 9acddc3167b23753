package integration

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// checkGoMemLimit asserts that the Deployment's container sets GOMEMLIMIT
// from its own memory limit through the downward API, resolving the env
// as the kubelet does (resourceFieldRef: the limit divided by the divisor,
// rounded up; $(VAR) expanded), that the result is 90-100% of the limit,
// and that the Go runtime of the real binary accepts it (it aborts at
// start on a malformed GOMEMLIMIT, which is checked too).
func checkGoMemLimit(ctx context.Context, t *testing.T, bin string, dep *appsv1.Deployment) {
	t.Helper()
	c := dep.Spec.Template.Spec.Containers[0]
	limit, ok := c.Resources.Limits.Memory().AsInt64()
	if !ok || limit == 0 {
		t.Fatalf("container %s has no memory limit", c.Name)
	}
	var subst []string
	value := ""
	for _, e := range c.Env {
		switch {
		case e.Name == "GOMEMLIMIT":
			value = strings.NewReplacer(subst...).Replace(e.Value)
		case e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil:
			ref := e.ValueFrom.ResourceFieldRef
			if ref.Resource != "limits.memory" || (ref.ContainerName != "" && ref.ContainerName != c.Name) {
				continue
			}
			div := int64(1)
			if !ref.Divisor.IsZero() {
				div = ref.Divisor.Value()
			}
			subst = append(subst, "$("+e.Name+")", strconv.FormatInt((limit+div-1)/div, 10))
		}
	}
	if value == "" {
		t.Fatalf("container %s sets no GOMEMLIMIT (env %v)", c.Name, c.Env)
	}
	bytes, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		t.Fatalf("GOMEMLIMIT %q is not a byte count once resolved: %v", value, err)
	}
	if bytes >= limit || bytes < limit*9/10 {
		t.Errorf("GOMEMLIMIT %d is %.1f%% of the memory limit %d, want 90-100%%", bytes, 100*float64(bytes)/float64(limit), limit)
	}
	run := func(v string) error {
		cmd := exec.CommandContext(ctx, bin, "version")
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+v)
		return cmd.Run()
	}
	if err := run(value); err != nil {
		t.Errorf("the binary with GOMEMLIMIT=%s: %v", value, err)
	}
	if run("512 MiB, roughly") == nil {
		t.Error("the binary accepts a malformed GOMEMLIMIT: this check proves nothing")
	}
}
