package xdsauth

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchboard-xds/switchboard/internal/testpki"
)

// TestAuthorizeOverMutualTLS runs each kind of client against a real mTLS
// ADS server with Authorize installed.
func TestAuthorizeOverMutualTLS(t *testing.T) {
	p := newPKI(t)
	m := NewMetrics(prometheus.NewRegistry())
	creds, err := New(Options{CertFile: p.cert, KeyFile: p.key, ClientCAFile: p.clientCA, PollInterval: time.Hour, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	addr := server(t, creds, true)
	team, teamKey := p.ca.Issue(t, p.dir, "team", testpki.Leaf{URIs: []string{"spiffe://cluster.local/ns/team/sa/app"}})
	plain, plainKey := p.ca.Issue(t, p.dir, "plain", testpki.Leaf{CommonName: "plain"})
	odd, oddKey := p.ca.Issue(t, p.dir, "odd", testpki.Leaf{URIs: []string{"spiffe://cluster.local/workload"}})
	stranger := testpki.NewCA(t, "stranger")
	foreign, foreignKey := stranger.Issue(t, p.dir, "foreign", testpki.Leaf{URIs: []string{"spiffe://cluster.local/ns/team/sa/app"}})

	for _, tc := range []struct {
		name       string
		cert, key  string
		namespace  string
		code       codes.Code
		msgHas     []string
		reasonSeen string
	}{
		{name: "own namespace", cert: team, key: teamKey, namespace: "team", code: codes.OK},
		{name: "no NAMESPACE", cert: team, key: teamKey, code: codes.OK},
		{
			name: "other namespace", cert: team, key: teamKey, namespace: "other", code: codes.PermissionDenied,
			msgHas: []string{`"other"`, `"team"`, "spiffe://cluster.local/ns/team/sa/app", `node "other namespace"`}, reasonSeen: reasonNamespace,
		},
		{
			name: "no URI SAN", cert: plain, key: plainKey, namespace: "team", code: codes.PermissionDenied,
			msgHas: []string{"no SPIFFE ID", "CN=plain"}, reasonSeen: reasonNoSPIFFE,
		},
		{
			name: "not a workload ID", cert: odd, key: oddKey, code: codes.PermissionDenied,
			msgHas: []string{"not of the form"}, reasonSeen: reasonBadSPIFFE,
		},
		{name: "another CA", cert: foreign, key: foreignKey, namespace: "team", code: codes.Unavailable},
		{name: "no certificate", namespace: "team", code: codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := 0.0
			if tc.reasonSeen != "" {
				before = testutil.ToFloat64(m.refusal.WithLabelValues(tc.reasonSeen))
			}
			_, err := dial(t, addr, p.ca.PEM, tc.cert, tc.key).ask(nodeIn(tc.name, tc.namespace), "a")
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want code %v", err, tc.code)
			}
			for _, s := range tc.msgHas {
				if !strings.Contains(status.Convert(err).Message(), s) {
					t.Errorf("message %q does not name %s", status.Convert(err).Message(), s)
				}
			}
			if tc.reasonSeen != "" {
				if got := testutil.ToFloat64(m.refusal.WithLabelValues(tc.reasonSeen)); got != before+1 {
					t.Errorf("refusals{reason=%s} = %v, want %v", tc.reasonSeen, got, before+1)
				}
			}
		})
	}
}

func TestAuthorizeWithoutPeer(t *testing.T) {
	creds := &Credentials{}
	creds.log = discard()
	err := creds.Authorize(context.Background(), nodeIn("n", "team"))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Authorize without a peer = %v, want PermissionDenied", err)
	}
}

func TestParseIdentity(t *testing.T) {
	for in, want := range map[string]string{
		"spiffe://cluster.local/ns/a/sa/b": "a/b",
		"spiffe://td/ns/a/sa/b/c":          "error",
		"spiffe://td/ns//sa/b":             "error",
		"spiffe://td/sa/b/ns/a":            "error",
		"spiffe:///ns/a/sa/b":              "error",
		"https://td/ns/a/sa/b":             "error",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		id, err := ParseIdentity(u)
		got := id.Namespace + "/" + id.ServiceAccount
		if err != nil {
			got = "error"
		} else if id.String() != in {
			t.Errorf("ParseIdentity(%s).String() = %s", in, id)
		}
		if got != want {
			t.Errorf("ParseIdentity(%s) = %s (%v), want %s", in, got, err, want)
		}
	}
}
