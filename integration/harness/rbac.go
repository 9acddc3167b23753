package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// ApplyRBAC creates, or updates when they exist, the objects in the
// multi-document YAML file at path: Namespaces, ServiceAccounts,
// ClusterRoles and ClusterRoleBindings. Any other kind, or a field the kind
// does not have, is an error, so the file is checked as strictly as
// `kubectl apply --validate=strict` would.
func ApplyRBAC(ctx context.Context, c kubernetes.Interface, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("apply RBAC: %w", err)
	}
	for i, doc := range splitYAML(data) {
		if err := applyDocument(ctx, c, doc); err != nil {
			return fmt.Errorf("apply RBAC: %s document %d: %w", path, i+1, err)
		}
	}
	return nil
}

// splitYAML splits a multi-document YAML stream on "---" lines and drops
// documents that hold only comments and blank lines.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, doc := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		empty := true
		for _, line := range bytes.Split(doc, []byte("\n")) {
			line = bytes.TrimSpace(line)
			if len(line) > 0 && line[0] != '#' {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, doc)
		}
	}
	return docs
}

// applyDocument creates or updates the one object in doc.
func applyDocument(ctx context.Context, c kubernetes.Interface, doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return fmt.Errorf("read apiVersion and kind: %w", err)
	}
	switch tm.APIVersion + "/" + tm.Kind {
	case "v1/Namespace":
		var obj corev1.Namespace
		if err := yaml.UnmarshalStrict(doc, &obj); err != nil {
			return fmt.Errorf("parse %s: %w", tm.Kind, err)
		}
		api := c.CoreV1().Namespaces()
		return createOrUpdate(ctx, &obj, api.Create, api.Get, api.Update)
	case "v1/ServiceAccount":
		var obj corev1.ServiceAccount
		if err := yaml.UnmarshalStrict(doc, &obj); err != nil {
			return fmt.Errorf("parse %s: %w", tm.Kind, err)
		}
		api := c.CoreV1().ServiceAccounts(obj.Namespace)
		return createOrUpdate(ctx, &obj, api.Create, api.Get, api.Update)
	case "rbac.authorization.k8s.io/v1/ClusterRole":
		var obj rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(doc, &obj); err != nil {
			return fmt.Errorf("parse %s: %w", tm.Kind, err)
		}
		api := c.RbacV1().ClusterRoles()
		return createOrUpdate(ctx, &obj, api.Create, api.Get, api.Update)
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		var obj rbacv1.ClusterRoleBinding
		if err := yaml.UnmarshalStrict(doc, &obj); err != nil {
			return fmt.Errorf("parse %s: %w", tm.Kind, err)
		}
		api := c.RbacV1().ClusterRoleBindings()
		return createOrUpdate(ctx, &obj, api.Create, api.Get, api.Update)
	case "rbac.authorization.k8s.io/v1/Role":
		var obj rbacv1.Role
		if err := yaml.UnmarshalStrict(doc, &obj); err != nil {
			return fmt.Errorf("parse %s: %w", tm.Kind, err)
		}
		api := c.RbacV1().Roles(obj.Namespace)
		return createOrUpdate(ctx, &obj, api.Create, api.Get, api.Update)
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		var obj rbacv1.RoleBinding
		if err := yaml.UnmarshalStrict(doc, &obj); err != nil {
			return fmt.Errorf("parse %s: %w", tm.Kind, err)
		}
		api := c.RbacV1().RoleBindings(obj.Namespace)
		return createOrUpdate(ctx, &obj, api.Create, api.Get, api.Update)
	default:
		return fmt.Errorf("unsupported object %s %s", tm.APIVersion, tm.Kind)
	}
}

// object is what createOrUpdate needs of a typed API object.
type object interface {
	metav1.Object
}

// createOrUpdate creates obj, or when an object of that name exists, replaces
// it with obj at the existing resourceVersion.
func createOrUpdate[T object](
	ctx context.Context, obj T,
	create func(context.Context, T, metav1.CreateOptions) (T, error),
	get func(context.Context, string, metav1.GetOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error),
) error {
	_, err := create(ctx, obj, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("create %s: %w", obj.GetName(), err)
		}
		return nil
	}
	cur, err := get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get %s: %w", obj.GetName(), err)
	}
	obj.SetResourceVersion(cur.GetResourceVersion())
	if _, err := update(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update %s: %w", obj.GetName(), err)
	}
	return nil
}
