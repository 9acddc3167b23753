package watcher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/switchboard-xds/switchboard/model"
)

// ManifestSource reads Services and EndpointSlices (discovery.k8s.io/v1) from
// the *.yaml, *.yml and *.json files of one folder (not its subfolders;
// hidden files are skipped) and follows changes to it: standalone mode, no
// API server.
//
// A file may hold several YAML documents, a stream of JSON objects, or a v1
// List; other kinds are skipped with a debug log. Objects without a namespace
// are put in "default". A file that does not parse, or that holds one bad
// document, is reported once per content (a warning naming the file and the
// reason, and switchboard_watcher_manifest_errors_total) and the objects of
// its last good content are kept, all of them; other files are unaffected.
// A deleted file removes its objects. When two files define the same object,
// the first file in name order wins and the clash is logged.
//
// The folder is polled every Options.PollInterval: stat every file, read the
// ones whose size or mtime changed (and, for a couple of seconds after a
// write, the ones whose mtime could hide a second write), and re-parse only
// when the content hash changed. Polling needs no new dependency and copes
// with editors and ConfigMap mounts that replace files by rename. Because an
// editor may briefly delete or truncate a file while saving, a file that is
// missing or empty takes effect only when a second poll still sees it so.
type ManifestSource struct {
	dir string
	cfg config
}

// NewManifestSource returns a Source for the manifests in dir. It fails if
// dir is not a readable folder or the Options are invalid.
func NewManifestSource(dir string, opts Options) (*ManifestSource, error) {
	cfg, err := opts.config()
	if err != nil {
		return nil, fmt.Errorf("manifest source: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("manifest source: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("manifest source: %s is not a directory", dir)
	}
	return &ManifestSource{dir: dir, cfg: cfg}, nil
}

// Run implements Source. It loads the folder, publishes a Full batch, then
// polls for changes until ctx is done. It returns an error only if the folder
// cannot be read at start; later read errors are logged and the last state is
// kept.
func (m *ManifestSource) Run(ctx context.Context, sink model.Sink) error {
	dec, err := newManifestDecoder(m.cfg.log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := newCoalescer(m.cfg)
	ownerDone := make(chan struct{})
	go func() {
		defer close(ownerDone)
		c.run(ctx, sink)
	}()
	defer func() {
		cancel()
		<-ownerDone
	}()

	f := newFolder(m.dir, dec, m.cfg)
	u, err := f.scan()
	if err != nil {
		return fmt.Errorf("read manifests: %w", err)
	}
	if u.apply != nil && !c.send(ctx, u) {
		return nil
	}
	if !c.send(ctx, update{synced: true}) {
		return nil
	}
	m.cfg.log.Info("manifests loaded", "dir", m.dir, "files", len(f.files), "objects", len(f.applied))

	ticker := m.cfg.clock.NewTicker(m.cfg.pollInterval)
	defer ticker.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		}
		u, err := f.scan()
		if err != nil {
			if msg := err.Error(); msg != lastErr {
				m.cfg.log.Warn("cannot read manifest folder; keeping the last state", "dir", m.dir, "error", err)
				lastErr = msg
			}
			continue
		}
		lastErr = ""
		if u.apply != nil && !c.send(ctx, u) {
			return nil
		}
	}
}

// racyWindow is how long after its mtime a file is re-read on every poll: a
// second write within the file system's timestamp granularity may leave size
// and mtime unchanged, so only the content tells.
const racyWindow = 2 * time.Second

// folder is the manifest poller's state. It belongs to the goroutine that
// runs ManifestSource.Run; the Store sees it only through updates.
type folder struct {
	dir   string
	dec   *manifestDecoder
	cfg   config
	files map[string]*fileState // by base name
	// applied is what the Store has been told, by object.
	applied map[objKey]object
}

type fileState struct {
	modTime time.Time
	size    int64
	hash    [sha256.Size]byte // of the content last parsed, good or bad
	objects []object          // of the last content that parsed
	// missing and empty count polls that saw the file gone or empty but
	// did not act on it yet.
	missing int
	empty   bool
}

func newFolder(dir string, dec *manifestDecoder, cfg config) *folder {
	return &folder{dir: dir, dec: dec, cfg: cfg, files: map[string]*fileState{}, applied: map[objKey]object{}}
}

// scan looks at the folder once and returns the update that brings the Store
// in line with it (apply is nil when nothing changed). It fails only when
// the folder itself cannot be listed.
func (f *folder) scan() (update, error) {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return update{}, fmt.Errorf("list %s: %w", f.dir, err)
	}
	changed := false
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		name := e.Name()
		if !isManifest(name) {
			continue
		}
		fi, err := os.Stat(filepath.Join(f.dir, name)) // follows symlinks (ConfigMap mounts)
		if err != nil || fi.IsDir() {
			continue // gone since ReadDir, or a dangling link: counts as missing
		}
		seen[name] = true
		if f.load(name, fi) {
			changed = true
		}
	}
	for name, fs := range f.files {
		if seen[name] {
			fs.missing = 0
			continue
		}
		if fs.missing++; fs.missing >= 2 {
			delete(f.files, name)
			changed = changed || len(fs.objects) > 0
			f.cfg.log.Info("manifest file removed", "file", name, "objects", len(fs.objects))
		}
	}
	if !changed {
		return update{}, nil
	}
	return f.diff(), nil
}

func isManifest(name string) bool {
	if strings.HasPrefix(name, ".") { // hidden, editor lock files, ConfigMap internals
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// load reads one file if it may have changed and reports whether its objects
// changed.
func (f *folder) load(name string, fi os.FileInfo) bool {
	fs, existed := f.files[name]
	if existed && fi.ModTime().Equal(fs.modTime) && fi.Size() == fs.size &&
		time.Since(fi.ModTime()) > racyWindow { // file times are wall-clock times, not the injected clock
		return false
	}
	path := filepath.Join(f.dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return false // raced with a rename or delete: the next poll sees the result
	}
	if !existed {
		fs = &fileState{}
		f.files[name] = fs
	}
	hash := sha256.Sum256(data)
	if existed && hash == fs.hash {
		fs.modTime, fs.size, fs.empty = fi.ModTime(), fi.Size(), false
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 && len(fs.objects) > 0 && !fs.empty {
		// Maybe an editor truncating before it writes: wait for one more
		// poll, leaving the recorded stat alone so that poll reads again.
		fs.empty = true
		return false
	}
	fs.empty = false
	fs.modTime, fs.size, fs.hash = fi.ModTime(), fi.Size(), hash
	objs, err := f.dec.decodeFile(name, data)
	if err != nil {
		f.cfg.log.Warn("manifest file does not parse; keeping its last good content",
			"file", path, "kept_objects", len(fs.objects), "error", err)
		f.cfg.metrics.manifestError(name)
		return false
	}
	fs.objects = objs
	return true
}

// diff works out the objects the folder defines now and returns one update
// that applies every difference to the Store at once, so that an edit moving
// an endpoint between slices is never seen half done.
func (f *folder) diff() update {
	want := map[objKey]object{}
	from := map[objKey]string{}
	for _, name := range slices.Sorted(maps.Keys(f.files)) {
		for _, o := range f.files[name].objects {
			if first, dup := from[o.key]; dup {
				if first != name {
					f.cfg.log.Warn("object defined in two manifest files; using the first",
						"kind", o.key.kind, "namespace", o.key.namespace, "name", o.key.name,
						"used", first, "ignored", name)
					continue
				}
				// Twice in one file: the later one wins, as with kubectl apply.
			}
			from[o.key] = name
			want[o.key] = o
		}
	}

	var ops []func(*Store) bool
	m := f.cfg.metrics
	for k, o := range want {
		old, ok := f.applied[k]
		switch {
		case !ok:
			m.event(k.kind, eventAdd)
		case old.obj == o.obj || equality.Semantic.DeepEqual(old.obj, o.obj):
			continue
		default:
			m.event(k.kind, eventUpdate)
		}
		ops = append(ops, func(s *Store) bool { return o.upsert(s, f.cfg.nodeRegions) })
	}
	for k := range f.applied {
		if _, ok := want[k]; ok {
			continue
		}
		m.event(k.kind, eventDelete)
		switch k.kind {
		case kindService:
			ops = append(ops, func(s *Store) bool { return s.DeleteService(k.namespace, k.name) })
		case kindEndpointSlice:
			ops = append(ops, func(s *Store) bool { return s.DeleteSlice(k.namespace, k.name) })
		case kindNode:
			ops = append(ops, func(s *Store) bool { return s.DeleteNode(k.name) })
		}
	}
	f.applied = want
	if len(ops) == 0 {
		return update{}
	}
	return update{apply: func(s *Store) bool {
		changed := false
		for _, op := range ops {
			changed = op(s) || changed
		}
		return changed
	}}
}

// Assert at compile time that both sources implement Source.
var (
	_ Source = (*ManifestSource)(nil)
	_ Source = (*InformerSource)(nil)
)
