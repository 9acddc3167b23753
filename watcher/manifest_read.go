package watcher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/switchboard-xds/switchboard/fileread"
)

// Reasons a manifest file's content is refused: the label values of
// switchboard_watcher_manifest_refused_total.
const (
	refuseNotRegular      = "not_regular"      // a device, FIFO, socket or folder
	refuseDangling        = "dangling_symlink" // a symlink to nothing
	refuseLoop            = "symlink_loop"     // a symlink that never ends
	refuseTooLarge        = "too_large"        // over Options.MaxManifestBytes
	refuseUnreadable      = "unreadable"       // stat, open or read failed
	refuseEmpty           = "empty"            // nothing but white space
	refuseSyntax          = "syntax"           // not YAML or JSON: the whole file is refused
	refuseInvalidDocument = "invalid_document" // a document that is not a valid object
)

// refusalReasons lists every reason, so the metric starts at zero for each.
var refusalReasons = []string{
	refuseNotRegular, refuseDangling, refuseLoop, refuseTooLarge,
	refuseUnreadable, refuseEmpty, refuseSyntax, refuseInvalidDocument,
}

// refusal is why a file, as it is now, cannot be used.
type refusal struct {
	reason string
	// detail tells one refused state from another, so each is logged
	// once: the file type, the size, a content hash.
	detail string
	err    error
}

func (r *refusal) Error() string { return r.reason + ": " + r.err.Error() }

func (r *refusal) Unwrap() error { return r.err }

// errGone: the file is not there (any more); errMoved: it changed while
// being looked at, so look again once it settles.
// errFolder: a folder is where the file was; the file's objects are
// removed at once (a folder never turns back into the file by itself, as
// a FIFO or a half-written file might be a moment in a file's update).
var (
	errGone   = errors.New("no such file")
	errMoved  = errors.New("changed while being read")
	errFolder = errors.New("a folder, not a manifest file")
)

// stamp is what stat says about one version of a file. Two equal stamps are
// taken as the same content (within the file system's timestamp
// granularity; see racyWindow).
type stamp struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

func stampOf(fi fs.FileInfo) stamp {
	st := stamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.dev, st.ino = uint64(sys.Dev), sys.Ino //nolint:unconvert // Dev is not uint64 everywhere
	}
	return st
}

// statManifest looks at path without reading it: os.Lstat, and for a
// symlink one os.Stat of what it points to. Anything but a regular file is
// refused, and so is one over limit. It returns errGone if nothing is there.
func statManifest(path string, limit int64) (stamp, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return stamp{}, errGone
	}
	if err != nil {
		return stamp{}, &refusal{refuseUnreadable, "lstat", err}
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		fi, err = os.Stat(path)
		switch {
		case errors.Is(err, syscall.ELOOP):
			return stamp{}, &refusal{refuseLoop, "", err}
		case errors.Is(err, fs.ErrNotExist):
			return stamp{}, &refusal{refuseDangling, "", err}
		case err != nil:
			return stamp{}, &refusal{refuseUnreadable, "stat", err}
		}
	}
	if fi.IsDir() {
		t := fi.Mode().Type().String()
		return stamp{}, &refusal{refuseNotRegular, t, errFolder}
	}
	if !fi.Mode().IsRegular() {
		t := fi.Mode().Type().String()
		return stamp{}, &refusal{refuseNotRegular, t, fmt.Errorf("not a regular file (mode %s)", t)}
	}
	st := stampOf(fi)
	if st.size > limit {
		return stamp{}, tooLarge(st.size, limit)
	}
	return st, nil
}

func tooLarge(size, limit int64) error {
	return &refusal{refuseTooLarge, fmt.Sprint(size), fmt.Errorf("larger than the limit of %d bytes", limit)}
}

// readManifest reads the file at path if it still is the version want, and
// returns errMoved if it is not or if it changed while being read. It
// opens and reads with fileread: O_NONBLOCK, so a FIFO swapped in since the
// stat cannot block; the open file checked regular before a byte is read;
// at most limit+1 bytes read, so a file that grows past the limit is
// refused, not loaded.
func readManifest(path string, want stamp, limit int64) ([]byte, error) {
	f, fi, err := fileread.Open(path)
	var notRegular *fileread.NotRegularError
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.As(err, &notRegular):
		return nil, errMoved // renamed, removed or replaced since the stat: look again
	case errors.Is(err, syscall.ELOOP):
		return nil, &refusal{refuseLoop, "", err}
	case err != nil:
		return nil, &refusal{refuseUnreadable, "open", err}
	}
	defer f.Close()
	if stampOf(fi) != want {
		return nil, errMoved
	}
	data, err := fileread.ReadAll(f, limit)
	var big *fileread.TooLargeError
	switch {
	case errors.As(err, &big):
		return nil, tooLarge(big.Size, limit)
	case err != nil:
		return nil, &refusal{refuseUnreadable, "read", err}
	}
	fi, err = f.Stat()
	if err != nil {
		return nil, &refusal{refuseUnreadable, "fstat", err}
	}
	if stampOf(fi) != want || int64(len(data)) != want.size {
		return nil, errMoved
	}
	return data, nil
}
