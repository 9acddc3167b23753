package harness

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The ServiceAccount that SwitchboardUser is, as deploy/kubernetes/base/rbac.yaml
// names it.
const (
	serviceAccountNamespace = "switchboard-system"
	serviceAccountName      = "switchboard"
)

// The identities the API server knows, through its static token file.
const (
	// AdminUser is in group system:masters, which RBAC never denies.
	AdminUser = "admin"
	// SwitchboardUser is the ServiceAccount switchboard-system/switchboard,
	// the identity of Switchboard's pods in a cluster, with a token from the
	// TokenRequest API: it can do exactly what deploy/kubernetes/base/rbac.yaml
	// grants that ServiceAccount, so a test that runs Switchboard as this
	// user fails when the committed ClusterRole or binding lacks a
	// permission.
	SwitchboardUser = "switchboard"
)

// credentials are the secrets generated for one control plane.
type credentials struct {
	tokens map[string]string // user name -> bearer token
}

// writeCredentials generates AdminUser's bearer token and a service-account
// signing key pair, and writes the API server's token file and key files into
// dir. It returns the credentials and the paths the API server flags need.
// SwitchboardUser's token comes later, from serviceAccountToken.
func writeCredentials(dir string) (creds credentials, tokenFile, saPub, saKey string, err error) {
	tok, err := randomToken()
	if err != nil {
		return credentials{}, "", "", "", err
	}
	creds.tokens = map[string]string{AdminUser: tok}
	// Format: token,user,uid[,"group1,group2"].
	tokens := fmt.Sprintf("%s,%s,%s,system:masters\n", tok, AdminUser, AdminUser)
	tokenFile = filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
		return credentials{}, "", "", "", fmt.Errorf("write token file: %w", err)
	}

	// ECDSA P-256 rather than RSA: the API server accepts both (ES256), and
	// generating it costs microseconds instead of tens of milliseconds.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return credentials{}, "", "", "", fmt.Errorf("generate service-account key: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return credentials{}, "", "", "", fmt.Errorf("marshal service-account key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return credentials{}, "", "", "", fmt.Errorf("marshal service-account public key: %w", err)
	}
	saKey = filepath.Join(dir, "sa.key")
	saPub = filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return credentials{}, "", "", "", fmt.Errorf("write service-account key: %w", err)
	}
	if err := os.WriteFile(saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		return credentials{}, "", "", "", fmt.Errorf("write service-account public key: %w", err)
	}
	return creds, tokenFile, saPub, saKey, nil
}

// randomToken returns 32 random hex characters.
func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// serviceAccountToken asks the API server (TokenRequest, as the kubelet does
// for a pod) for a token of the ServiceAccount that SwitchboardUser is,
// valid for longer than any test run.
func serviceAccountToken(ctx context.Context, admin kubernetes.Interface) (string, error) {
	expiry := int64(24 * 60 * 60)
	tr, err := admin.CoreV1().ServiceAccounts(serviceAccountNamespace).CreateToken(ctx, serviceAccountName,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s/%s (the RBAC manifest must create it): %w", serviceAccountNamespace, serviceAccountName, err)
	}
	return tr.Status.Token, nil
}
