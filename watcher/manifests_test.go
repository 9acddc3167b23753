package watcher

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-xds/switchboard/model"
)

// writeFile replaces dir/name atomically (temp file and rename), as careful
// tools do, so the source never sees a half-written file.
func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// logBuffer is a concurrency-safe log sink for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func manifestService(name string, port int) string {
	return strings.NewReplacer("NAME", name, "PORT", strconv.Itoa(port)).Replace(`
apiVersion: v1
kind: Service
metadata:
  name: NAME
  namespace: demo
spec:
  ports:
  - name: grpc
    port: PORT
`)
}

func manifestSlice(svc string, addrs ...string) string {
	var eps strings.Builder
	for _, a := range addrs {
		eps.WriteString("- addresses: [\"" + a + "\"]\n")
	}
	return strings.NewReplacer("SVC", svc, "EPS", eps.String()).Replace(`
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: SVC-1
  namespace: demo
  labels:
    kubernetes.io/service-name: SVC
addressType: IPv4
ports:
- name: grpc
  port: 50051
endpoints:
EPS`)
}

func addrs(v *model.Service) []string {
	if v == nil || len(v.Ports) == 0 {
		return nil
	}
	var out []string
	for _, e := range v.Ports[0].Endpoints {
		out = append(out, e.Addresses[0])
	}
	return out
}

type manifestHarness struct {
	dir     string
	rec     *sinkRecorder
	logs    *logBuffer
	metrics *Metrics
}

// startManifests runs a ManifestSource on a folder holding files. Its safety
// poll is an hour, so every change a test sees came by inotify; mods may
// change the Options.
func startManifests(t *testing.T, files map[string]string, mods ...func(*Options)) *manifestHarness {
	t.Helper()
	h := &manifestHarness{dir: t.TempDir(), rec: newSinkRecorder(t), logs: &logBuffer{}, metrics: NewMetrics(prometheus.NewRegistry())}
	for name, content := range files {
		writeFile(t, h.dir, name, content)
	}
	opts := fastOptions()
	opts.PollInterval = time.Hour
	opts.SettleTime = 50 * time.Millisecond
	for _, m := range mods {
		m(&opts)
	}
	opts.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Metrics = h.metrics
	src, err := NewManifestSource(h.dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, src, h.rec.sink)
	return h
}

func TestManifestSourceInitialLoad(t *testing.T) {
	h := startManifests(t, map[string]string{
		"web.yaml": manifestService("web", 80) + "---\n" + manifestSlice("web", "10.0.0.2", "10.0.0.1") + `
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
---
`,
		"api.JSON": `{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
   "spec": {"ports": [{"name": "http", "port": 8080}]}},
  {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
   "metadata": {"name": "api-1", "labels": {"kubernetes.io/service-name": "api"}},
   "addressType": "IPv6", "ports": [{"name": "http", "port": 8080}],
   "endpoints": [{"addresses": ["fd00::1"], "conditions": {"ready": false}}]}
]}
{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ignored"}}`,
		"notes.txt":    "not a manifest",
		".hidden.yaml": manifestService("hidden", 80),
	})
	first := h.rec.next()
	if !first.Full || len(first.Services) != 2 {
		t.Fatalf("first batch: full=%v services=%s; want full with demo/web and default/api", first.Full, dump(first.Services))
	}
	if got := addrs(first.Services[key("demo", "web")]); strings.Join(got, ",") != "10.0.0.1,10.0.0.2" {
		t.Errorf("demo/web endpoints = %v", got)
	}
	assertView(t, "default/api", first.Services[key("default", "api")], &model.Service{
		Key: key("default", "api"), Type: model.TypeClusterIP, SliceCount: 1,
		Ports: []model.Port{tcp("http", 8080, 8080, model.Endpoint{Addresses: []string{"fd00::1"}, Port: 8080})},
	})
	if logs := h.logs.String(); !strings.Contains(logs, "kind=Deployment") || !strings.Contains(logs, "kind=ConfigMap") {
		t.Errorf("other kinds should be logged at debug level; logs:\n%s", logs)
	}
}

func TestManifestSourceFollowsChanges(t *testing.T) {
	h := startManifests(t, map[string]string{
		"web.yaml": manifestService("web", 80) + "---\n" + manifestSlice("web", "10.0.0.1"),
	})
	h.rec.next()

	// An edit.
	writeFile(t, h.dir, "web.yaml", manifestService("web", 80)+"---\n"+manifestSlice("web", "10.0.0.1", "10.0.0.3"))
	v := h.rec.until(key("demo", "web"), "the edit", func(v *model.Service) bool { return len(addrs(v)) == 2 })
	if got := addrs(v); got[1] != "10.0.0.3" {
		t.Errorf("after edit: %v", got)
	}

	// A new file.
	writeFile(t, h.dir, "api.yml", manifestService("api", 8080))
	h.rec.until(key("demo", "api"), "the new file", func(v *model.Service) bool { return v != nil })

	// A deleted file removes its objects.
	if err := os.Remove(filepath.Join(h.dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	h.rec.until(key("demo", "web"), "the deleted file", func(v *model.Service) bool { return v == nil })

	if got := testutil.ToFloat64(h.metrics.events.WithLabelValues(kindService, eventDelete)); got != 1 {
		t.Errorf("service delete events = %v, want 1", got)
	}
}

func TestManifestSourceBrokenFileKeepsLastGoodContent(t *testing.T) {
	h := startManifests(t, map[string]string{
		"web.yaml":   manifestService("web", 80) + "---\n" + manifestSlice("web", "10.0.0.1"),
		"other.yaml": manifestService("other", 80),
		"bad.yaml":   "kind: Service\n  : [unbalanced",
	})
	first := h.rec.next()
	if len(first.Services) != 2 {
		t.Fatalf("first batch: %s; want web and other (bad.yaml contributes nothing)", dump(first.Services))
	}
	errorsFor := func(file string) float64 {
		return testutil.ToFloat64(h.metrics.manifestErrors.WithLabelValues(file))
	}
	if errorsFor("bad.yaml") != 1 || !strings.Contains(h.logs.String(), "bad.yaml") {
		t.Fatalf("bad.yaml at start: errors=%v, logs:\n%s", errorsFor("bad.yaml"), h.logs.String())
	}

	// One good and one bad document: the good one (the Service's new port)
	// is used, the bad one (the slice) keeps its last good version.
	writeFile(t, h.dir, "web.yaml", manifestService("web", 81)+"---\n"+manifestSlice("web", "10.0.0.1", "10.0.0.300"))
	v := h.rec.until(key("demo", "web"), "the valid document", func(v *model.Service) bool { return v != nil && v.Ports[0].Port == 81 })
	if got := strings.Join(addrs(v), ","); got != "10.0.0.1" {
		t.Errorf("web endpoints = %s, want the last good slice's 10.0.0.1", got)
	}
	if errorsFor("web.yaml") != 1 {
		t.Errorf("web.yaml errors = %v, want 1", errorsFor("web.yaml"))
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "web.yaml") || !strings.Contains(logs, "10.0.0.300") || !strings.Contains(logs, "document 2") {
		t.Errorf("the log should name the file, the document and the reason:\n%s", logs)
	}

	// Other files are unaffected, and web did not change again.
	writeFile(t, h.dir, "other.yaml", manifestService("other", 82))
	b := h.rec.next()
	if len(b.Services) != 1 || b.Services[key("demo", "other")] == nil {
		t.Fatalf("batch after editing other.yaml: %s; want only demo/other", dump(b.Services))
	}

	// A misspelt field is an error too, not a silently missing endpoint.
	writeFile(t, h.dir, "web.yaml", strings.Replace(manifestService("web", 81)+"---\n"+manifestSlice("web", "10.0.0.2"), "addresses", "adresses", 1))
	eventually(t, "the strict decoding error", func() bool { return errorsFor("web.yaml") == 2 })

	// Fixed: the new content is published.
	writeFile(t, h.dir, "web.yaml", manifestService("web", 81)+"---\n"+manifestSlice("web", "10.0.0.2"))
	v = h.rec.until(key("demo", "web"), "the fixed file", func(v *model.Service) bool { return len(addrs(v)) == 1 && addrs(v)[0] == "10.0.0.2" })
	if v.Ports[0].Port != 81 || strings.Join(addrs(v), ",") != "10.0.0.2" {
		t.Errorf("fixed web: %s", dump(v))
	}
	if errorsFor("web.yaml") != 2 {
		t.Errorf("web.yaml errors = %v, want 2 (one per bad content)", errorsFor("web.yaml"))
	}
}

func TestManifestSourceDuplicateFirstFileWins(t *testing.T) {
	h := startManifests(t, map[string]string{
		"a.yaml": manifestService("web", 80),
		"b.yaml": manifestService("web", 90),
	})
	first := h.rec.next()
	if v := first.Services[key("demo", "web")]; v == nil || v.Ports[0].Port != 80 {
		t.Fatalf("demo/web = %s, want the definition from a.yaml", dump(v))
	}
	if !strings.Contains(h.logs.String(), "object defined in two manifest files") {
		t.Errorf("the clash should be logged:\n%s", h.logs.String())
	}
	// When a.yaml goes, b.yaml's definition takes over.
	if err := os.Remove(filepath.Join(h.dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	h.rec.until(key("demo", "web"), "b.yaml to take over", func(v *model.Service) bool { return v != nil && v.Ports[0].Port == 90 })
}

func TestNewManifestSourceErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.yaml")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(dir, "missing"), file} {
		if _, err := NewManifestSource(d, Options{}); err == nil {
			t.Errorf("NewManifestSource(%s): want an error", d)
		}
	}
}

func TestDecodeFile(t *testing.T) {
	dec, err := newManifestDecoder(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      string
		want    []objKey
		wantErr string
	}{
		{"empty", "", nil, ""},
		{"only separators", "---\n---\n", nil, ""},
		{
			"namespace defaults", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n",
			[]objKey{{kindService, "default", "a"}},
			"",
		},
		{
			"json stream", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}} {"apiVersion":"v1","kind":"Service","metadata":{"name":"b","namespace":"x"}}`,
			[]objKey{{kindService, "default", "a"}, {kindService, "x", "b"}},
			"",
		},
		{"unknown kinds are skipped", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n", nil, ""},
		{"old EndpointSlice versions are skipped", "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: w}\n", nil, ""},
		{"missing kind", "apiVersion: v1\nmetadata: {name: a}\n", nil, "document 1"},
		{"no name", "apiVersion: v1\nkind: Service\n", nil, "metadata.name"},
		{"bad address family", manifestSlice("a", "fd00::1"), nil, "not an IPv4 address"},
		{"bad address type", strings.Replace(manifestSlice("a", "10.0.0.1"), "IPv4", "IPv5", 1), nil, "IPv5"},
		{"unknown field", manifestService("a", 1) + "  bogus: 1\n", nil, "bogus"},
		{"yaml syntax", "a: [", nil, "document 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, bad, err := dec.decodeFile("f.yaml", []byte(tc.in))
			for _, b := range bad {
				err = errors.Join(err, b.err)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []objKey
			for _, o := range objs {
				got = append(got, o.key)
			}
			assertView(t, "objects", got, tc.want)
		})
	}
}

func TestManifestSourceEmptiedFileAndSameSizeEdit(t *testing.T) {
	h := startManifests(t, map[string]string{
		"web.yaml": manifestService("web", 80),
		"api.yaml": manifestService("api", 80),
	})
	h.rec.next()

	// Same size, same mtime, new content: caught because the mtime is recent.
	path := filepath.Join(h.dir, "web.yaml")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, h.dir, "web.yaml", manifestService("web", 90))
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	h.rec.until(key("demo", "web"), "the same-size edit", func(v *model.Service) bool { return v != nil && v.Ports[0].Port == 90 })

	// An emptied file keeps its objects, with a warning; removing it
	// removes them.
	writeFile(t, h.dir, "api.yaml", "")
	eventually(t, "the empty file to be refused", func() bool {
		return testutil.ToFloat64(h.metrics.refused.WithLabelValues(refuseEmpty)) == 1
	})
	writeFile(t, h.dir, "web.yaml", manifestService("web", 91))
	b := h.rec.next()
	if _, ok := b.Services[key("demo", "api")]; ok || b.Services[key("demo", "web")] == nil {
		t.Fatalf("batch after the next edit: %s; want demo/web only (demo/api kept as it was)", dump(b.Services))
	}
	if err := os.Remove(filepath.Join(h.dir, "api.yaml")); err != nil {
		t.Fatal(err)
	}
	b = h.rec.next()
	if v, ok := b.Services[key("demo", "api")]; !ok || v != nil {
		t.Fatalf("batch after removing the emptied api.yaml: %s; want demo/api deleted (and nothing before)", dump(b.Services))
	}
}

// TestManifestServicePortNames: a Service whose port names the API server
// would refuse (not a DNS-1123 label: a space, non-ASCII, upper case, over
// 63 characters; or a name used twice) is refused with a diagnostic that
// names it, and the other objects of its file are served; its last good
// version stays.
func TestManifestServicePortNames(t *testing.T) {
	svc := func(name, ports string) string {
		return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + ", namespace: demo}\nspec:\n  ports:\n" + ports
	}
	h := startManifests(t, map[string]string{
		"a.yaml": svc("good", "  - {name: grpc, port: 80}\n") + "---\n" + svc("space", "  - {name: \"grpc-x y\", port: 80}\n"),
		"b.yaml": svc("accent", "  - {name: grpé, port: 80}\n") + "---\n" + svc("upper", "  - {name: GRPC, port: 80}\n") +
			"---\n" + svc("long", "  - {name: "+strings.Repeat("p", 64)+", port: 80}\n") +
			"---\n" + svc("twice", "  - {name: grpc, port: 80}\n  - {name: grpc, port: 81}\n") +
			"---\n" + svc("fine", "  - {name: http, port: 80}\n  - {name: grpc, port: 81}\n"),
	})
	first := h.rec.next()
	if len(first.Services) != 2 || first.Services[key("demo", "good")] == nil || first.Services[key("demo", "fine")] == nil {
		t.Fatalf("first batch: %s; want demo/good and demo/fine alone", dump(first.Services))
	}
	logs := h.logs.String()
	for _, want := range []string{
		`Service demo/space: spec.ports[0].name \"grpc-x y\"`,
		`Service demo/accent: spec.ports[0].name \"grpé\"`,
		`Service demo/upper: spec.ports[0].name \"GRPC\"`,
		`Service demo/long: spec.ports[0].name`,
		`Service demo/twice: spec.ports[1].name \"grpc\": a duplicate port name`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("no diagnostic %s in the log:\n%s", want, logs)
		}
	}
	if got := testutil.ToFloat64(h.metrics.refused.WithLabelValues(refuseInvalidDocument)); got != 2 {
		t.Errorf("refused{invalid_document} = %v, want 2 (one per file)", got)
	}
	// A good Service broken later keeps its last good version.
	writeFile(t, h.dir, "a.yaml", svc("good", "  - {name: grpc, port: 80}\n  - {name: \"bad name\", port: 81}\n"))
	eventually(t, "a second refusal of a.yaml", func() bool {
		return testutil.ToFloat64(h.metrics.refused.WithLabelValues(refuseInvalidDocument)) == 3
	})
	writeFile(t, h.dir, "c.yaml", svc("later", "  - {name: grpc, port: 80}\n"))
	for {
		b := h.rec.next()
		if v, ok := b.Services[key("demo", "good")]; ok {
			t.Errorf("demo/good changed after a bad edit: %s; want its last good version kept", dump(v))
		}
		if b.Services[key("demo", "later")] != nil {
			break
		}
	}
}
