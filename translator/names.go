package translator

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/switchboard-xds/switchboard/watcher"
)

// DefaultClusterDomain is the cluster DNS domain used when
// Options.ClusterDomain is empty.
const DefaultClusterDomain = "cluster.local"

// domain returns the cluster domain to use for names.
func (o Options) domain() string {
	if o.ClusterDomain == "" {
		return DefaultClusterDomain
	}
	return o.ClusterDomain
}

// Validate reports whether the options can be used to translate. An empty
// ClusterDomain is valid (DefaultClusterDomain is used); otherwise it must be a
// DNS-1123 subdomain without a trailing dot, like kubelet's --cluster-domain.
// Translating with invalid options does not panic: every Service gets a
// diagnostic and no resources.
func (o Options) Validate() error {
	if o.ClusterDomain == "" {
		return nil
	}
	if !isDNS1123Subdomain(o.ClusterDomain) {
		return fmt.Errorf("cluster domain %q is not a DNS subdomain (lower-case labels of a-z, 0-9 and '-', joined by '.')", o.ClusterDomain)
	}
	return nil
}

// CanonicalName returns the name that the Listener, RouteConfiguration,
// Cluster and ClusterLoadAssignment of one Service port all carry:
// "S.N.svc.<domain>:P" for Service S in namespace N and port number P. An
// empty domain means DefaultClusterDomain. The name is also what a client
// dials as xds:///S.N.svc.<domain>:P.
func CanonicalName(domain string, key watcher.ServiceKey, port int32) string {
	if domain == "" {
		domain = DefaultClusterDomain
	}
	return key.Name + "." + key.Namespace + ".svc." + domain + ":" + strconv.Itoa(int(port))
}

// portAliases returns the other names a client may dial for one port of a
// Service, in sorted order: "S.N:P" and "S.N.svc:P", and, when the port is
// the Service's only translated port, also "S.N", "S.N.svc" and
// "S.N.svc.<domain>" (the names without a port, as DNS would resolve them).
// None of them equals a canonical name, and for valid Service keys no alias
// of one Service can equal a name of another: the number of dots and the
// ":P" suffix tell the forms apart, and Service names contain no dots.
func portAliases(domain string, key watcher.ServiceKey, port int32, single bool) []string {
	base := key.Name + "." + key.Namespace
	p := ":" + strconv.Itoa(int(port))
	if !single {
		return []string{base + p, base + ".svc" + p}
	}
	out := []string{base, base + ".svc", base + ".svc." + domain, base + p, base + ".svc" + p}
	slices.Sort(out)
	return out
}

// shortNames returns the names a client in the Service's own namespace may
// dial for one port, like a DNS search path: "S:P" and, when the port is the
// Service's only translated port, "S". The server resolves such an LDS name
// in the client's namespace (node metadata NAMESPACE) and answers with a
// Listener of that name routing to the canonical route; gRPC then matches
// the dialled authority against the virtual host's domains, so these names
// must be domains of the route. They are not aliases: without a namespace
// they name no Service, so they never appear in Resources.Aliases.
func shortNames(key watcher.ServiceKey, port int32, single bool) []string {
	sp := key.Name + ":" + strconv.Itoa(int(port))
	if !single {
		return []string{sp}
	}
	return []string{key.Name, sp}
}

// validKey reports whether the key can be part of a name on the wire. The
// rules are the ones the API server applies to Services, so names built
// from a valid key are ASCII, contain no dots inside S or N, and never
// collide with the names of another Service.
func validKey(key watcher.ServiceKey) bool {
	return isDNS1035Label(key.Name) && isDNS1123Label(key.Namespace)
}

// isDNS1123Label mirrors k8s.io/apimachinery/pkg/util/validation.IsDNS1123Label:
// at most 63 characters of [a-z0-9-], starting and ending with [a-z0-9].
func isDNS1123Label(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i != 0 && i != len(s)-1:
		default:
			return false
		}
	}
	return true
}

// isDNS1035Label mirrors validation.IsDNS1035Label: a DNS-1123 label that
// starts with a letter.
func isDNS1035Label(s string) bool {
	return isDNS1123Label(s) && s[0] >= 'a' && s[0] <= 'z'
}

// isDNS1123Subdomain mirrors validation.IsDNS1123Subdomain: at most 253
// characters of DNS-1123 labels joined by dots.
func isDNS1123Subdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if !isDNS1123Label(s[start:i]) {
				return false
			}
			start = i + 1
		}
	}
	return true
}
