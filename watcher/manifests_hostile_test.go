package watcher

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/switchboard-xds/switchboard/model"
)

// Tests of the manifest source against hostile writers and files. Writers
// pause between writes (time.Sleep) because pausing is what they do; the
// tests synchronise on published batches and counters, never on sleeps.

// services returns n Service documents named svc-0..n-1 with port.
func services(n, port int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("---" + manifestService(fmt.Sprintf("svc-%04d", i), port))
	}
	return b.String()
}

// writeInPlace rewrites path in place (O_TRUNC, no rename) in chunks of
// size bytes, calling between(i) after chunk i.
func writeInPlace(t *testing.T, path string, content []byte, size int, between func(i int)) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; len(content) > 0; i++ {
		n := min(size, len(content))
		if _, err := f.Write(content[:n]); err != nil {
			t.Fatal(err)
		}
		content = content[n:]
		if len(content) > 0 {
			between(i)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// untilAll collects batches until every Service svc-0..n-1 has port, and
// fails if any batch on the way deletes one of them.
func (h *manifestHarness) untilAll(t *testing.T, n int, port int32) {
	t.Helper()
	have := map[model.ServiceKey]bool{}
	for len(have) < n {
		b := h.rec.next()
		for k, v := range b.Services {
			if v == nil {
				t.Fatalf("a batch deleted %s: a partial file was published", k)
			}
			if v.Ports[0].Port == port {
				have[k] = true
			} else {
				delete(have, k)
			}
		}
	}
}

func TestManifestChunkedRewriteNeverPublishesAPrefix(t *testing.T) {
	const n = 1000 // about 150 KB: 37 chunks
	h := startManifests(t, map[string]string{"big.yaml": services(n, 80)}, func(o *Options) { o.SettleTime = 300 * time.Millisecond })
	if b := h.rec.next(); len(b.Services) != n {
		t.Fatalf("first batch: %d Services, want %d", len(b.Services), n)
	}
	// 4 KB at a time, with a pause after each write: a poller racing the
	// writer sees many prefixes, each ending somewhere in a document.
	writeInPlace(t, filepath.Join(h.dir, "big.yaml"), []byte(services(n, 81)), 4096, func(int) { time.Sleep(2 * time.Millisecond) })
	h.untilAll(t, n, 81)
}

func TestManifestPauseAtDocumentBoundaryKeepsLaterServices(t *testing.T) {
	h := startManifests(t, map[string]string{"web.yaml": services(3, 80)}, func(o *Options) { o.SettleTime = 500 * time.Millisecond })
	h.rec.next()
	content := services(3, 81)
	cut := strings.Index(content, "---"+manifestService("svc-0002", 81)) // after two whole documents
	writeInPlace(t, filepath.Join(h.dir, "web.yaml"), []byte(content), cut, func(int) { time.Sleep(100 * time.Millisecond) })
	h.untilAll(t, 3, 81)
}

func TestManifestTruncateThenWriteKeepsLastGoodContent(t *testing.T) {
	h := startManifests(t, map[string]string{"web.yaml": services(2, 80)})
	h.rec.next()
	path := filepath.Join(h.dir, "web.yaml")
	// `cmd > web.yaml`: the shell truncates, cmd writes later.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the empty file to be refused", func() bool {
		return testutil.ToFloat64(h.metrics.refused.WithLabelValues(refuseEmpty)) == 1
	})
	if !strings.Contains(h.logs.String(), "reason=empty") {
		t.Errorf("the empty file should be logged with its reason:\n%s", h.logs.String())
	}
	writeInPlace(t, path, []byte(services(2, 81)), 1<<20, nil)
	h.untilAll(t, 2, 81)
}

func TestManifestRenameIntoPlaceNeedsNoPoll(t *testing.T) {
	// The safety poll is an hour and the settle time longer than the
	// test's deadline: only inotify, and the rename rule, can deliver.
	// It starts empty: at start nothing tells a renamed file from one
	// being written.
	h := startManifests(t, nil, func(o *Options) { o.SettleTime = time.Hour })
	h.rec.next()
	writeFile(t, h.dir, "web.yaml", manifestService("web", 80))
	h.rec.until(key("demo", "web"), "the first file", func(v *model.Service) bool { return v != nil })
	writeFile(t, h.dir, "web.yaml", manifestService("web", 81))
	h.rec.until(key("demo", "web"), "the renamed file", func(v *model.Service) bool { return v != nil && v.Ports[0].Port == 81 })
	writeFile(t, h.dir, "new.yaml", manifestService("new", 80))
	h.rec.until(key("demo", "new"), "the new file", func(v *model.Service) bool { return v != nil })
}

// A file moved in from another folder (written in a staging folder, then
// mv) is complete: it is read at once, like a rename inside the folder,
// not after the settle time. A file written in place still waits.
func TestManifestMovedInFromAnotherFolderNeedsNoSettle(t *testing.T) {
	h := startManifests(t, nil, func(o *Options) { o.SettleTime = time.Hour })
	h.rec.next()
	staging := t.TempDir() // the same filesystem as the folder: mv is a rename
	for i, name := range []string{"web.yaml", "api.yaml"} {
		path := filepath.Join(staging, name)
		if err := os.WriteFile(path, []byte(manifestService(strings.TrimSuffix(name, ".yaml"), 80+i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path, filepath.Join(h.dir, name)); err != nil {
			t.Fatal(err)
		}
		h.rec.until(key("demo", strings.TrimSuffix(name, ".yaml")), "the file moved in: "+name, func(v *model.Service) bool { return v != nil && v.Ports[0].Port == int32(80+i) })
	}
	// Moved over an existing file: the new content at once too.
	path := filepath.Join(staging, "web.yaml")
	if err := os.WriteFile(path, []byte(manifestService("web", 90)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, filepath.Join(h.dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	h.rec.until(key("demo", "web"), "the file moved over it", func(v *model.Service) bool { return v != nil && v.Ports[0].Port == 90 })
}

func TestManifestNewFileWrittenInPlaceAndDelete(t *testing.T) {
	h := startManifests(t, map[string]string{"web.yaml": manifestService("web", 80)})
	h.rec.next()
	if err := os.WriteFile(filepath.Join(h.dir, "api.yaml"), []byte(manifestService("api", 80)), 0o644); err != nil {
		t.Fatal(err)
	}
	h.rec.until(key("demo", "api"), "the new file", func(v *model.Service) bool { return v != nil })
	// An editor's delete and create is one change, not a removal.
	path := filepath.Join(h.dir, "web.yaml")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(manifestService("web", 81)), 0o644); err != nil {
		t.Fatal(err)
	}
	h.rec.until(key("demo", "web"), "the recreated file", func(v *model.Service) bool {
		if v == nil {
			t.Fatal("the delete and create published a removal")
		}
		return v.Ports[0].Port == 81
	})
	if err := os.Remove(filepath.Join(h.dir, "api.yaml")); err != nil {
		t.Fatal(err)
	}
	h.rec.until(key("demo", "api"), "the deleted file", func(v *model.Service) bool { return v == nil })
}

// hostileFolder makes a folder of files that must all be refused, and one
// good file.
func hostileFolder(t *testing.T) (dir string, want map[string]string) {
	t.Helper()
	dir = t.TempDir()
	writeFile(t, dir, "good.yaml", manifestService("good", 80))
	writeFile(t, dir, "big.yaml", services(40, 80)) // over the 4 KiB limit of these tests
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("/dev/zero", filepath.Join(dir, "zero.yaml")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo.yaml"), 0o644))
	must(os.Symlink(filepath.Join(dir, "nothing"), filepath.Join(dir, "dangling.yaml")))
	must(os.Symlink("loop.yaml", filepath.Join(dir, "loop.yaml")))
	must(os.Mkdir(filepath.Join(dir, "dir.yaml"), 0o755))
	return dir, map[string]string{
		"zero.yaml": refuseNotRegular, "fifo.yaml": refuseNotRegular, "dir.yaml": refuseNotRegular,
		"dangling.yaml": refuseDangling, "loop.yaml": refuseLoop, "big.yaml": refuseTooLarge,
	}
}

func TestManifestSpecialFilesAreRefused(t *testing.T) {
	dir, want := hostileFolder(t)
	h := &manifestHarness{dir: dir, rec: newSinkRecorder(t), logs: &logBuffer{}, metrics: NewMetrics(prometheus.NewRegistry())}
	opts := fastOptions()
	opts.MaxManifestBytes = 4096
	opts.Logger = slog.New(slog.NewTextHandler(h.logs, nil))
	opts.Metrics = h.metrics
	src, err := NewManifestSource(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, src, h.rec.sink)
	// Start-up neither blocks on the FIFO nor reads /dev/zero.
	b := h.rec.next()
	if len(b.Services) != 1 || b.Services[key("demo", "good")] == nil {
		t.Fatalf("first batch: %s; want demo/good alone", dump(b.Services))
	}
	counts := map[string]float64{}
	for _, r := range want {
		counts[r]++
	}
	for _, r := range refusalReasons {
		if got := testutil.ToFloat64(h.metrics.refused.WithLabelValues(r)); got != counts[r] {
			t.Errorf("refused{reason=%s} = %v, want %v", r, got, counts[r])
		}
	}
	logs := h.logs.String()
	for file, reason := range want {
		if !strings.Contains(logs, file) || !strings.Contains(logs, "reason="+reason) {
			t.Errorf("no log line names %s with reason %s:\n%s", file, reason, logs)
		}
	}
}

// newTestFolder returns a folder over dir that tests drive by hand.
func newTestFolder(t *testing.T, dir string, limit int64) (*folder, *Metrics, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	m := NewMetrics(prometheus.NewRegistry())
	log := slog.New(slog.NewTextHandler(logs, nil))
	dec, err := newManifestDecoder(log)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Options{MaxManifestBytes: limit, Metrics: m, Logger: log, SettleTime: time.Nanosecond, Clock: clock.RealClock{}}.config()
	if err != nil {
		t.Fatal(err)
	}
	return newFolder(dir, dec, cfg), m, logs
}

func TestManifestRefusalsAreLoggedOnceAndKeepTheLastGoodContent(t *testing.T) {
	dir, want := hostileFolder(t)
	f, m, logs := newTestFolder(t, dir, 4096)
	for range 3 {
		if err := f.scan(); err != nil {
			t.Fatal(err)
		}
	}
	for file := range want {
		if n := strings.Count(logs.String(), "file="+filepath.Join(dir, file)+" "); n != 1 {
			t.Errorf("%s logged %d times after three scans, want once", file, n)
		}
	}
	if got := testutil.ToFloat64(m.refused.WithLabelValues(refuseNotRegular)); got != 3 {
		t.Errorf("refused{not_regular} = %v after three scans, want 3 (one per file)", got)
	}

	// A good file turned into each hostile kind keeps its objects.
	good := filepath.Join(dir, "good.yaml")
	for _, replace := range []func() error{
		func() error { return os.Symlink("/dev/zero", good) },
		func() error { return syscall.Mkfifo(good, 0o644) },
		func() error { return os.Symlink("nothing", good) },
		func() error { return os.WriteFile(good, []byte(services(40, 80)), 0o644) },
		func() error { return os.WriteFile(good, []byte("kind: Service\n  : ["), 0o644) },
	} {
		must(t, os.RemoveAll(good))
		must(t, replace())
		must(t, f.scan())
		if objs := f.files["good.yaml"].objects; len(objs) != 1 || objs[0].key.name != "good" {
			t.Fatalf("good.yaml objects = %v after it was replaced; want the last good demo/good", objs)
		}
	}
	must(t, os.Remove(good))
	must(t, f.scan())
	f.checkDue(f.cfg.clock.Now().Add(time.Second))
	if _, ok := f.files["good.yaml"]; ok {
		t.Error("good.yaml is still known after it was removed")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestManifestUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", manifestService("web", 80))
	f, m, _ := newTestFolder(t, dir, 0)
	must(t, f.scan())
	must(t, os.Chmod(filepath.Join(dir, "web.yaml"), 0))
	writeFile(t, dir, "web.yaml", manifestService("web", 81))
	must(t, os.Chmod(filepath.Join(dir, "web.yaml"), 0))
	must(t, f.scan())
	objs := f.files["web.yaml"].objects
	if os.Geteuid() == 0 {
		// Root reads it anyway: the source relies on open, not on the mode
		// bits, so what root can read is served.
		if len(objs) != 1 || port(objs[0]) != 81 {
			t.Errorf("as root, the mode-000 file should be read: %v", objs)
		}
		return
	}
	if got := testutil.ToFloat64(m.refused.WithLabelValues(refuseUnreadable)); got != 1 || port(objs[0]) != 80 {
		t.Errorf("refused{unreadable} = %v, objects %v; want 1 and the last good port 80", got, objs)
	}
}

func TestCarryOverWithoutIdentityKeepsEverything(t *testing.T) {
	dec, err := newManifestDecoder(slog.New(slog.DiscardHandler))
	must(t, err)
	old, _, err := dec.decodeFile("f.yaml", []byte(services(3, 80)))
	must(t, err)
	// svc-0000 is valid, svc-0001 is gone, and a document without a name
	// may have been meant as either of the others.
	objs, bad, err := dec.decodeFile("f.yaml", []byte(manifestService("svc-0000", 81)+"---\napiVersion: v1\nkind: Service\nmetadata: {namespace: demo}\n"))
	must(t, err)
	if len(bad) != 1 || bad[0].known {
		t.Fatalf("bad = %+v, want one document of unknown identity", bad)
	}
	got := carryOver(old, objs, bad)
	if len(got) != 3 || port(got[0]) != 81 {
		t.Errorf("carried over %v; want the new svc-0000 and the last good svc-0001 and svc-0002", got)
	}
	// A bad document that names its object keeps only that one.
	objs, bad, err = dec.decodeFile("f.yaml", []byte(manifestService("svc-0000", 81)+"---"+manifestService("svc-0001", 81)+"  bogus: 1\n"))
	must(t, err)
	if len(bad) != 1 || !bad[0].known || bad[0].key.name != "svc-0001" {
		t.Fatalf("bad = %+v, want svc-0001", bad)
	}
	if got := carryOver(old, objs, bad); len(got) != 2 || got[1].key.name != "svc-0001" || port(got[1]) != 80 {
		t.Errorf("carried over %v; want the new svc-0000 and the last good svc-0001", got)
	}
}

// port is the first port of a Service object.
func port(o object) int32 { return o.obj.(*corev1.Service).Spec.Ports[0].Port }

// TestManifestFileReplacedByFolderRemovesItsObjects: a folder where a
// manifest file was is not a moment of the file's update (as a FIFO or a
// half-written file may be); its objects go at once, counted and logged
// as not_regular once.
func TestManifestFileReplacedByFolderRemovesItsObjects(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", manifestService("web", 80))
	writeFile(t, dir, "api.yaml", manifestService("api", 80))
	f, m, logs := newTestFolder(t, dir, 0)
	must(t, f.scan())
	if u := f.diff(); u.apply == nil {
		t.Fatal("the first scan published nothing")
	}
	must(t, os.Remove(filepath.Join(dir, "web.yaml")))
	must(t, os.Mkdir(filepath.Join(dir, "web.yaml"), 0o755))
	for range 2 {
		must(t, f.scan())
	}
	if objs := f.files["web.yaml"].objects; len(objs) != 0 {
		t.Fatalf("web.yaml, now a folder, still contributes %v", objs)
	}
	if u := f.diff(); u.apply == nil {
		t.Error("no update after web.yaml became a folder")
	}
	if _, ok := f.applied[objKey{kindService, "demo", "web"}]; ok {
		t.Error("demo/web is still applied after its file became a folder")
	}
	if _, ok := f.applied[objKey{kindService, "demo", "api"}]; !ok {
		t.Error("demo/api, in another file, was removed")
	}
	if got := testutil.ToFloat64(m.refused.WithLabelValues(refuseNotRegular)); got != 1 {
		t.Errorf("refused{not_regular} = %v after two scans, want 1", got)
	}
	if n := strings.Count(logs.String(), "replaced by a folder"); n != 1 {
		t.Errorf("%d log lines say the file became a folder, want 1:\n%s", n, logs.String())
	}
	// The folder goes and the file comes back: served again.
	must(t, os.Remove(filepath.Join(dir, "web.yaml")))
	writeFile(t, dir, "web.yaml", manifestService("web", 81))
	must(t, f.scan())
	f.diff()
	if o, ok := f.applied[objKey{kindService, "demo", "web"}]; !ok || port(o) != 81 {
		t.Errorf("demo/web after the file came back = %v, %v; want port 81", o, ok)
	}
}
