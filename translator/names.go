package translator

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/switchboard-xds/switchboard/model"
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
		return o.validateSidecarDNS()
	}
	if !isDNS1123Subdomain(o.ClusterDomain) {
		return fmt.Errorf("cluster domain %q is not a DNS subdomain (lower-case labels of a-z, 0-9 and '-', joined by '.')", o.ClusterDomain)
	}
	return o.validateSidecarDNS()
}

// CanonicalName returns the name that the Listener, RouteConfiguration,
// Cluster and ClusterLoadAssignment of one Service port all carry:
// "S.N.svc.<domain>:P" for Service S in namespace N and port number P. An
// empty domain means DefaultClusterDomain. The name is also what a client
// dials as xds:///S.N.svc.<domain>:P.
func CanonicalName(domain string, key model.ServiceKey, port int32) string {
	if domain == "" {
		domain = DefaultClusterDomain
	}
	return key.Name + "." + key.Namespace + ".svc." + domain + ":" + strconv.Itoa(int(port))
}

// portNames returns the names of one port of a Service: its canonical name
// (CanonicalName with a non-empty domain), its aliases and its short names.
//
// Aliases are the other names a client may dial for the port: "S.N:P" and
// "S.N.svc:P", and, when the port is the Service's only translated port,
// also "S.N", "S.N.svc" and "S.N.svc.<domain>" (the names without a port,
// as DNS would resolve them). None of them equals a canonical name, and for
// valid Service keys no alias of one Service can equal a name of another:
// the number of dots and the ":P" suffix tell the forms apart, and Service
// names contain no dots.
//
// Short names are the names a client in the Service's own namespace may
// dial, like a DNS search path: "S:P" and, for the only translated port,
// "S". The server resolves such an LDS name in the client's namespace (node
// metadata NAMESPACE) and answers with a Listener of that name routing to
// the canonical route; gRPC then matches the dialled authority against the
// virtual host's domains, so these names must be domains of the route. They
// are not aliases: without a namespace they name no Service, so they never
// appear in model.Resources.Aliases.
//
// Aliases come in sorted order ("S.N" < "S.N.svc" < "S.N.svc.<domain>" <
// "S.N.svc:P" < "S.N:P", since '.' < ':'). The slices are windows of buf.
//
// Every name is a substring of one of two strings: "S", "S.N", "S.N.svc",
// "S.N.svc.<domain>" and ":P" are cut from the canonical name, and the
// names with a port from one concatenation, so the names of a port cost two
// allocations.
func portNames(buf *[7]string, domain string, key model.ServiceKey, port int32, single bool) (canonical string, aliases, short []string) {
	var digits [11]byte
	num := strconv.AppendInt(digits[:0], int64(port), 10)
	var b strings.Builder
	b.Grow(len(key.Name) + 1 + len(key.Namespace) + len(".svc.") + len(domain) + 1 + len(num))
	b.WriteString(key.Name)
	b.WriteByte('.')
	b.WriteString(key.Namespace)
	b.WriteString(".svc.")
	b.WriteString(domain)
	b.WriteByte(':')
	b.Write(num)
	canonical = b.String()
	p := canonical[len(canonical)-1-len(num):]        // ":P"
	baseLen := len(key.Name) + 1 + len(key.Namespace) // "S.N"
	svcLen := baseLen + len(".svc")                   // "S.N.svc"
	base := canonical[:baseLen]
	// "S.N:P", "S.N.svc:P" and "S:P", back to back.
	ported := base + p + canonical[:svcLen] + p + key.Name + p
	i, j := baseLen+len(p), baseLen+len(p)+svcLen+len(p)
	withPort, svcWithPort, nameWithPort := ported[:i], ported[i:j], ported[j:]
	if !single {
		buf[0], buf[1], buf[2] = svcWithPort, withPort, nameWithPort
		return canonical, buf[:2:2], buf[2:3:3]
	}
	buf[0], buf[1], buf[2] = base, canonical[:svcLen], canonical[:len(canonical)-len(p)]
	buf[3], buf[4] = svcWithPort, withPort
	buf[5], buf[6] = key.Name, nameWithPort
	return canonical, buf[:5:5], buf[5:7:7]
}

// validKey reports whether the key can be part of a name on the wire. The
// rules are the ones the API server applies to Services (apimachinery's
// validation: the name a DNS-1035 label, the namespace a DNS-1123 label),
// so names built from a valid key are ASCII, contain no dots inside S or N,
// and never collide with the names of another Service.
//
// apimachinery matches regular expressions: this and Options.Validate cost
// about 0.96 µs per translated Service together, against 29 ns for the
// hand-written loops they replaced (BenchmarkValidKey, -benchtime 200000x).
// That is about 9 ms of the 130-140 ms that BenchmarkAll takes for 10k
// Services × 10 endpoints: paid to keep one copy of the Kubernetes rules.
func validKey(key model.ServiceKey) bool {
	return len(validation.IsDNS1035Label(key.Name)) == 0 && len(validation.IsDNS1123Label(key.Namespace)) == 0
}

// isDNS1123Subdomain is validation.IsDNS1123Subdomain as a predicate: at
// most 253 characters of DNS-1123 labels joined by dots.
func isDNS1123Subdomain(s string) bool { return len(validation.IsDNS1123Subdomain(s)) == 0 }
