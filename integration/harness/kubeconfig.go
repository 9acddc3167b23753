package harness

import (
	"fmt"
	"os"

	clientcmdv1 "k8s.io/client-go/tools/clientcmd/api/v1"
	"sigs.k8s.io/yaml"
)

// WriteKubeconfig writes a kubeconfig file at path (mode 0600) for user,
// AdminUser or SwitchboardUser, with one cluster, user and context, the
// context current. It authenticates with the user's bearer token and
// verifies the API server against the CA the API server generated at
// startup (certificate-authority-data), not with insecure-skip-verify. It is
// how Switchboard's binary is run with --kubeconfig.
func (cp *ControlPlane) WriteKubeconfig(path, user string) error {
	data, err := cp.Kubeconfig(user)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// Kubeconfig returns the file WriteKubeconfig writes.
func (cp *ControlPlane) Kubeconfig(user string) ([]byte, error) {
	tok, ok := cp.creds.tokens[user]
	if !ok {
		return nil, fmt.Errorf("harness: unknown user %q (want %q or %q)", user, AdminUser, SwitchboardUser)
	}
	return cp.TokenKubeconfig(user, tok)
}

// TokenKubeconfig returns a kubeconfig like WriteKubeconfig's for any bearer
// token (such as a ServiceAccount's, from a TokenRequest), with name as its
// user and context.
func (cp *ControlPlane) TokenKubeconfig(name, token string) ([]byte, error) {
	const cluster = "switchboard-harness"
	cfg := clientcmdv1.Config{
		Kind:       "Config",
		APIVersion: "v1",
		Clusters: []clientcmdv1.NamedCluster{{
			Name:    cluster,
			Cluster: clientcmdv1.Cluster{Server: cp.url, CertificateAuthorityData: cp.caData},
		}},
		AuthInfos: []clientcmdv1.NamedAuthInfo{{
			Name:     name,
			AuthInfo: clientcmdv1.AuthInfo{Token: token},
		}},
		Contexts: []clientcmdv1.NamedContext{{
			Name:    name,
			Context: clientcmdv1.Context{Cluster: cluster, AuthInfo: name},
		}},
		CurrentContext: name,
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("marshal kubeconfig: %w", err)
	}
	return data, nil
}
