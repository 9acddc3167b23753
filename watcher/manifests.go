package watcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/utils/clock"

	"github.com/switchboard-xds/switchboard/model"
)

// ManifestSource reads Services and EndpointSlices (discovery.k8s.io/v1), and
// the Gateway API's HTTPRoutes, GRPCRoutes and ReferenceGrants, from
// the *.yaml, *.yml and *.json files of one folder (not its subfolders;
// hidden files are skipped) and follows changes to it: standalone mode, no
// API server.
//
// A file may hold several YAML documents, a stream of JSON objects, or a v1
// List; other kinds are skipped with a debug log. Objects without a namespace
// are put in "default". When two files define the same object, the first
// file in name order wins and the clash is logged. A deleted file removes
// its objects.
//
// Changes arrive by inotify (fsnotify) within milliseconds; the folder is
// also re-listed every Options.PollInterval as a safety net, and at once if
// inotify reports that it dropped events. A burst of events for one file
// leads to one read.
//
// It never serves a partial world. The rules, for each file:
//
//   - When content is read. A file renamed into place (an inotify create
//     that directly follows a rename in the same folder: how editors, kubectl
//     cp --atomic style tools and this project's tests write) is read at
//     once. A file written in place is read only when its size and mtime
//     have not changed for Options.SettleTime (its mtime is that old, or
//     stat saw it unchanged across that time), and the read is used only if
//     the open file still has that size and mtime after the read. So a file
//     rewritten in chunks is never seen half written, unless its writer
//     pauses longer than SettleTime mid-file. A file that is gone is removed
//     only if it is still gone SettleTime later, so an editor's delete and
//     create (or rename to a backup and write) is one change.
//   - What is read. Only regular files: the name is looked at with
//     os.Lstat, and a symlink is followed once (os.Stat) to a regular file
//     (how ConfigMap volumes appear). Devices, FIFOs, sockets, folders,
//     dangling symlinks and symlink loops are refused. Files are opened
//     with O_NONBLOCK and checked again once open, and read through a
//     reader bounded at Options.MaxManifestBytes+1, so neither a FIFO nor a
//     link to /dev/zero can block or exhaust the process; a larger file is
//     refused.
//   - Which objects a file contributes. A file that is empty (only white
//     space) while it had objects keeps them: `cmd > file` leaves a file
//     empty for a moment; remove the file to remove its objects. A file that
//     is not YAML or JSON (a syntax error anywhere: which documents it holds
//     is unknown) keeps its whole last good content. A file that parses but
//     has invalid documents (or List items: unknown fields, a bad address, no
//     name) contributes its valid documents, and for each invalid one the
//     last good version of the object it names (by apiVersion, kind,
//     namespace and name); if an invalid document does not say which object
//     it is, every object of the last good content that the valid documents
//     no longer define is kept, so deletions within that file wait until it
//     is valid again.
//
// Every refusal is logged once per file and distinct content or reason, as a
// warning naming the file and the reason, and counted in
// switchboard_watcher_manifest_refused_total{reason}; syntax errors and
// invalid documents are also counted by file in
// switchboard_watcher_manifest_errors_total. Nothing is published before the
// whole folder has been read once (files still settling included).
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
	return &ManifestSource{dir: filepath.Clean(dir), cfg: cfg}, nil
}

// maxDrain bounds how many queued inotify events are folded into one pass,
// so that a flood cannot starve the settle timers.
const maxDrain = 1024

// Run implements Source. It watches the folder, loads it, publishes a Full
// batch once every file has been read, then follows changes until ctx is
// done. It returns an error only if the folder cannot be watched or read at
// start; later errors are logged and the last state is kept.
func (m *ManifestSource) Run(ctx context.Context, sink model.Sink) error {
	dec, err := newManifestDecoder(m.cfg.log)
	if err != nil {
		return err
	}
	// Watch before the first listing, so no change falls between them.
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch manifests: %w", err)
	}
	defer w.Close()
	if err := w.Add(m.dir); err != nil {
		return fmt.Errorf("watch manifests %s: %w", m.dir, err)
	}
	// Files moved in from another folder are read at once (see moves);
	// without this watch they still are, after SettleTime.
	var movedIn <-chan string
	var movesLost <-chan struct{}
	if mv, err := watchMoves(m.dir); err != nil {
		m.cfg.log.Warn("files moved into the manifest folder will wait the settle time", "dir", m.dir, "error", err)
	} else {
		defer mv.Close()
		movedIn, movesLost = mv.Names, mv.Overflow
	}
	f := newFolder(m.dir, dec, m.cfg)
	if err := f.scan(); err != nil {
		return fmt.Errorf("read manifests: %w", err)
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

	l := loop{m: m, f: f, w: w}
	defer l.stopTimer()
	ticker := m.cfg.clock.NewTicker(m.cfg.pollInterval)
	defer ticker.Stop()
	synced := false
	for {
		if u := f.diff(); u.apply != nil && !c.send(ctx, u) {
			return nil
		}
		if _, waiting := f.nextDue(); !synced && !waiting {
			if !c.send(ctx, update{synced: true}) {
				return nil
			}
			synced = true
			m.cfg.metrics.setSynced(true)
			m.cfg.log.Info("manifests loaded", "dir", m.dir, "files", len(f.files), "objects", len(f.applied))
		}
		l.arm()
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			l.event(ev)
			l.drain()
		case name, ok := <-movedIn:
			if !ok {
				movedIn = nil // the folder went away; fsnotify reports it
				continue
			}
			l.movedIn(name)
		case <-movesLost:
			l.rescan = true
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			m.cfg.log.Warn("inotify error; re-reading the manifest folder", "dir", m.dir, "error", err)
			l.rescan = true
		case <-ticker.C():
			l.rescan = true
		case <-l.timerC():
			l.stopTimer()
			f.checkDue(m.cfg.clock.Now())
		}
		if l.rescan {
			l.scan()
		}
	}
}

// loop is Run's per-iteration state besides the folder.
type loop struct {
	m *ManifestSource
	f *folder
	w *fsnotify.Watcher
	// prevRename is set when the last event was a rename away from a name
	// in the folder: a create that follows it is the other half.
	prevRename bool
	rescan     bool
	lastErr    string
	timer      clock.Timer
	armedFor   time.Time
}

// event handles one inotify event.
func (l *loop) event(ev fsnotify.Event) {
	renamed := ev.Has(fsnotify.Create) && l.prevRename
	l.prevRename = ev.Has(fsnotify.Rename)
	if filepath.Dir(ev.Name) != l.m.dir {
		return
	}
	switch name := filepath.Base(ev.Name); {
	case isManifest(name):
		l.f.touch(name, renamed)
	case strings.HasPrefix(name, ".."):
		// Kubernetes' atomic writer (ConfigMap and Secret volumes) swaps
		// the ..data symlink: every file behind it may have changed.
		l.rescan = true
	}
}

// movedIn handles a file renamed into the folder (see moves): complete, so
// read at once.
func (l *loop) movedIn(name string) {
	if isManifest(name) {
		l.f.touch(name, true)
	}
}

// drain handles the events already queued, so a burst is one pass.
func (l *loop) drain() {
	for range maxDrain {
		select {
		case ev, ok := <-l.w.Events:
			if !ok {
				return
			}
			l.event(ev)
		default:
			return
		}
	}
}

func (l *loop) scan() {
	l.rescan = false
	err := l.f.scan()
	if err == nil {
		l.lastErr = ""
		return
	}
	if msg := err.Error(); msg != l.lastErr {
		l.m.cfg.log.Warn("cannot read manifest folder; keeping the last state", "dir", l.m.dir, "error", err)
		l.lastErr = msg
	}
}

// arm points the timer at the earliest pending check.
func (l *loop) arm() {
	due, ok := l.f.nextDue()
	if !ok {
		l.stopTimer()
		return
	}
	if l.timer != nil && due.Equal(l.armedFor) {
		return
	}
	l.stopTimer()
	l.timer = l.m.cfg.clock.NewTimer(max(due.Sub(l.m.cfg.clock.Now()), 0))
	l.armedFor = due
}

func (l *loop) timerC() <-chan time.Time {
	if l.timer == nil {
		return nil
	}
	return l.timer.C()
}

func (l *loop) stopTimer() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}

// Assert at compile time that both sources implement Source.
var (
	_ Source = (*ManifestSource)(nil)
	_ Source = (*InformerSource)(nil)
)
