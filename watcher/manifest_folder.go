package watcher

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
)

// racyWindow is how long after its mtime a file that looks unchanged is
// still re-read: a second write within the file system's timestamp
// granularity may leave size and mtime unchanged, so only the content tells.
const racyWindow = 2 * time.Second

// folder is the manifest source's state: what each file contributes, which
// files wait to settle, and what the Store has been told. It belongs to the
// goroutine that runs ManifestSource.Run; the Store sees it only through
// updates.
type folder struct {
	dir     string
	dec     *manifestDecoder
	cfg     config
	files   map[string]*fileState // by base name
	pending map[string]*check     // by base name
	// applied is what the Store has been told, by object.
	applied map[objKey]object
	// dirty is set when a file's objects changed since the last diff.
	dirty bool
}

type fileState struct {
	read    stamp             // of the content last read, good or bad
	hash    [sha256.Size]byte // of that content
	objects []object          // what the file contributes now
	// refused is the refusal last reported (reason and detail), "" while
	// the file is fine; a refusal is logged and counted when it changes.
	refused string
}

// check is a file waiting to settle, or to be confirmed gone.
type check struct {
	seen stamp // what stat said when the wait began
	gone bool
	due  time.Time // on cfg.clock
}

func newFolder(dir string, dec *manifestDecoder, cfg config) *folder {
	return &folder{
		dir: dir, dec: dec, cfg: cfg,
		files: map[string]*fileState{}, pending: map[string]*check{}, applied: map[objKey]object{},
	}
}

func isManifest(name string) bool {
	if strings.HasPrefix(name, ".") { // hidden, editor temp files, ConfigMap internals
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// scan lists the folder and looks at every manifest in it and every file
// it knew. It fails only when the folder itself cannot be listed.
func (f *folder) scan() error {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", f.dir, err)
	}
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if name := e.Name(); isManifest(name) {
			seen[name] = true
			f.touch(name, false)
		}
	}
	for name := range f.files {
		if !seen[name] {
			f.touch(name, false)
		}
	}
	return nil
}

// touch looks at one file that may have changed. renamed says the file was
// just renamed into place, so its content is complete and needs no settle
// time. A file changed in place is read once its mtime is SettleTime old,
// or once stat saw it unchanged across SettleTime; until then it waits in
// pending. A file that is gone is removed only if still gone SettleTime
// later, since editors delete or rename a file just before writing its
// successor.
func (f *folder) touch(name string, renamed bool) {
	now := f.cfg.clock.Now()
	st, err := statManifest(filepath.Join(f.dir, name), f.cfg.maxBytes)
	switch {
	case errors.Is(err, errGone):
		if _, known := f.files[name]; !known {
			delete(f.pending, name)
		} else if c := f.pending[name]; c == nil || !c.gone {
			f.pending[name] = &check{gone: true, due: now.Add(f.cfg.settleTime)}
		}
		return
	case err != nil:
		delete(f.pending, name)
		if errors.Is(err, errFolder) {
			f.dropObjects(name)
		}
		f.refuse(name, err)
		return
	}
	age := time.Since(st.mtime) // file times are wall-clock times, not the injected clock
	if fs := f.files[name]; fs != nil && st == fs.read && age > racyWindow {
		delete(f.pending, name)
		return
	}
	if renamed || age >= f.cfg.settleTime {
		delete(f.pending, name)
		f.load(name, st)
		return
	}
	if c := f.pending[name]; c != nil && !c.gone && c.seen == st {
		return // already waiting for this version to settle
	}
	f.pending[name] = &check{seen: st, due: now.Add(f.cfg.settleTime)}
}

// checkDue acts on the pending checks that are due at now.
func (f *folder) checkDue(now time.Time) {
	for name, c := range f.pending {
		if c.due.After(now) {
			continue
		}
		delete(f.pending, name)
		st, err := statManifest(filepath.Join(f.dir, name), f.cfg.maxBytes)
		switch {
		case c.gone && errors.Is(err, errGone):
			f.remove(name)
		case !c.gone && err == nil && st == c.seen:
			f.load(name, st) // unchanged for SettleTime
		default:
			f.touch(name, false) // changed again, came back, or went away
		}
	}
}

// nextDue returns when the earliest pending check is due.
func (f *folder) nextDue() (time.Time, bool) {
	var next time.Time
	for _, c := range f.pending {
		if next.IsZero() || c.due.Before(next) {
			next = c.due
		}
	}
	return next, !next.IsZero()
}

// contentReasons are the refusals that depend on the bytes alone, so the
// same bytes read again need no second look.
var contentReasons = map[string]bool{refuseEmpty: true, refuseSyntax: true, refuseInvalidDocument: true}

// load reads one file that stat saw as st and works out what it contributes.
func (f *folder) load(name string, st stamp) {
	data, err := readManifest(filepath.Join(f.dir, name), st, f.cfg.maxBytes)
	if errors.Is(err, errMoved) {
		f.pending[name] = &check{due: f.cfg.clock.Now().Add(f.cfg.settleTime)}
		return
	}
	if err != nil {
		f.refuse(name, err)
		return
	}
	fs := f.state(name)
	hash := sha256.Sum256(data)
	reason, _, _ := strings.Cut(fs.refused, "\x00")
	if fs.read != (stamp{}) && hash == fs.hash && (fs.refused == "" || contentReasons[reason]) {
		fs.read = st
		return
	}
	fs.read, fs.hash = st, hash
	sum := hex.EncodeToString(hash[:8])
	if len(bytes.TrimSpace(data)) == 0 {
		if len(fs.objects) > 0 { // maybe `cmd > file` between its truncate and its write
			f.refuse(name, &refusal{refuseEmpty, "", errors.New("the file is empty")})
		}
		return
	}
	objs, bad, err := f.dec.decodeFile(name, data)
	if err != nil {
		f.refuse(name, &refusal{refuseSyntax, sum, err})
		return
	}
	if len(bad) > 0 {
		objs = carryOver(fs.objects, objs, bad)
		errs := make([]error, len(bad))
		for i, b := range bad {
			errs[i] = b.err
		}
		f.refuse(name, &refusal{refuseInvalidDocument, sum, errors.Join(errs...)})
	} else {
		fs.refused = ""
	}
	fs.objects = objs
	f.dirty = true
}

// carryOver adds to objs the last good version (from old) of the objects
// that bad documents meant to define. When a bad document does not say
// which object it is, every object of old that objs no longer defines is
// kept: deleting objects from a file waits until the file is valid.
func carryOver(old, objs []object, bad []badDoc) []object {
	defined := make(map[objKey]bool, len(objs))
	for _, o := range objs {
		defined[o.key] = true
	}
	named := map[objKey]bool{}
	all := false
	for _, b := range bad {
		if !b.known {
			all = true
		}
		named[b.key] = true
	}
	for _, o := range old {
		if !defined[o.key] && (all || named[o.key]) {
			objs = append(objs, o)
		}
	}
	return objs
}

func (f *folder) state(name string) *fileState {
	fs := f.files[name]
	if fs == nil {
		fs = &fileState{}
		f.files[name] = fs
	}
	return fs
}

// refuse reports err (a *refusal) for a file once per reason and detail;
// the file's objects stay as they are.
func (f *folder) refuse(name string, err error) {
	var r *refusal
	if !errors.As(err, &r) {
		r = &refusal{refuseUnreadable, err.Error(), err}
	}
	fs := f.state(name)
	key := r.reason + "\x00" + r.detail
	if fs.refused == key {
		return
	}
	fs.refused = key
	msg := "manifest file refused; keeping its last good content"
	switch r.reason {
	case refuseSyntax:
		msg = "manifest file does not parse; keeping its last good content"
	case refuseInvalidDocument:
		msg = "manifest file has invalid documents; using its valid ones and the last good version of the others"
	}
	// Logged before it is counted: whoever sees the count can find the line.
	f.cfg.log.Warn(msg, "file", filepath.Join(f.dir, name), "reason", r.reason, "kept_objects", len(fs.objects), "error", r.err)
	f.cfg.metrics.refusal(r.reason)
	if r.reason == refuseSyntax || r.reason == refuseInvalidDocument {
		f.cfg.metrics.manifestError(name)
	}
}

// dropObjects removes what a file contributes, now that a folder stands
// in its place; the file stays known, so that its refusal is logged once.
func (f *folder) dropObjects(name string) {
	fs := f.files[name]
	if fs == nil || len(fs.objects) == 0 {
		return
	}
	f.cfg.log.Info("manifest file replaced by a folder; its objects are removed", "file", name, "objects", len(fs.objects))
	fs.objects, fs.read, fs.hash = nil, stamp{}, [sha256.Size]byte{}
	f.dirty = true
}

// remove forgets a file that is gone.
func (f *folder) remove(name string) {
	fs := f.files[name]
	delete(f.files, name)
	if fs != nil && len(fs.objects) > 0 {
		f.dirty = true
		f.cfg.log.Info("manifest file removed", "file", name, "objects", len(fs.objects))
	}
}

// diff works out the objects the folder defines now and returns one update
// that applies every difference to the Store at once, so that an edit moving
// an endpoint between slices is never seen half done. apply is nil when
// nothing changed.
func (f *folder) diff() update {
	if !f.dirty {
		return update{}
	}
	f.dirty = false
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
		ops = append(ops, k.remove)
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
