package meshclient

import (
	"net/http"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestParse(t *testing.T) {
	env := map[string]string{"SWITCHBOARD_XDS_SERVER": "127.0.0.1:18000", "POD_NAMESPACE": "mesh", "POD_NAME": "echo-v1-x"}
	o, err := Parse([]string{"http://echo:8080/a?b=c", "--method=POST", "-H", "Host:other", "-H", "x-a:1", "--count=5"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.Target.Host != "echo:8080" || o.Method != http.MethodPost || o.Count != 5 || o.hostHeader() != "other" || o.requestHeaders().Get("x-a") != "1" || o.requestHeaders().Get("Host") != "" {
		t.Errorf("parsed %+v", o)
	}
	for _, bad := range [][]string{{}, {"ftp://x"}, {"http://x", "--count=-1"}, {"http://x", "-H", "novalue"}, {"http://x", "--nope=1"}} {
		if _, err := Parse(bad, func(k string) string { return env[k] }); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
	if _, err := Parse([]string{"grpc://echo:7070"}, func(string) string { return "" }); err == nil {
		t.Error("no xDS server: no error")
	}
}

func hv(k, v string, a corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: a}
}

func TestMutate(t *testing.T) {
	h := http.Header{"X-Set": {"old"}, "X-Add": {"old"}, "X-Remove": {"old"}, "X-Keep": {"old"}}
	mutate(h, []*corev3.HeaderValueOption{
		hv("x-set", "new", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
		hv("x-add", "new", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
		hv("x-keep", "new", corev3.HeaderValueOption_ADD_IF_ABSENT),
		hv("x-remove", "back", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS),
		{Header: &corev3.HeaderValue{Key: "x-legacy", Value: "v"}, Append: wrapperspb.Bool(false)},
	}, []string{"x-remove"})
	want := http.Header{"X-Set": {"new"}, "X-Add": {"old", "new"}, "X-Keep": {"old"}, "X-Legacy": {"v"}}
	if len(h) != len(want) {
		t.Fatalf("got %v, want %v", h, want)
	}
	for k, vs := range want {
		if got := h.Values(k); len(got) != len(vs) || got[0] != vs[0] || got[len(got)-1] != vs[len(vs)-1] {
			t.Errorf("%s: got %v, want %v", k, got, vs)
		}
	}
}

func TestRedirectAndRewrite(t *testing.T) {
	prefix := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/old"}}
	for _, tc := range []struct {
		rd         *routev3.RedirectAction
		host, path string
		want       string
	}{
		{&routev3.RedirectAction{HostRedirect: "example.org"}, "echo", "/a?q=1", "http://example.org/a?q=1"},
		{&routev3.RedirectAction{PortRedirect: 8083}, "echo", "/a", "http://echo:8083/a"},
		{&routev3.RedirectAction{PortRedirect: 80}, "echo:8080", "/a", "http://echo/a"},
		{&routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}}, "echo", "/a", "https://echo/a"},
		{&routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}}, "echo:8080", "/a", "https://echo:8080/a"},
		{&routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/full"}}, "echo", "/old/x", "http://echo/full"},
		{&routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/new"}}, "echo", "/old/x", "http://echo/new/x"},
	} {
		if got := redirectLocation(tc.rd, prefix, "http", tc.host, tc.path); got != tc.want {
			t.Errorf("%v on %s%s: %s, want %s", tc.rd, tc.host, tc.path, got, tc.want)
		}
	}
	toRoot := &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: `^/old(/.*)?$`}, Substitution: `\1`}
	if got := rewritePath("", toRoot, prefix, "/old/x/y?z=1"); got != "/x/y?z=1" {
		t.Errorf("regex rewrite: %s", got)
	}
	if got := rewritePath("/new", nil, prefix, "/old/x"); got != "/new/x" {
		t.Errorf("prefix rewrite: %s", got)
	}
}
