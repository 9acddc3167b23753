package watcher

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// moves reports the names renamed into the manifest folder (IN_MOVED_TO),
// from inside it or from any other folder: a file that arrives by rename
// is complete, so it is read at once rather than after SettleTime.
//
// fsnotify reports both a created file and one moved in as Create; a
// rename inside the folder is told apart by the Rename (IN_MOVED_FROM) that
// comes just before, but a file moved in from another folder (mv from a
// staging folder, as scripts and sync tools do) has no such event. So the
// folder has a second inotify instance of its own that asks the kernel for
// IN_MOVED_TO only. A file copied in across filesystems is written in
// place (IN_CREATE and writes) and still waits to settle.
type moves struct {
	f *os.File
	// done is closed by Close: a reader blocked on a full Names gives up.
	done      chan struct{}
	closeOnce sync.Once
	// Names receives the base name of each file moved in; it is closed
	// when the watch ends (Close, or the folder itself went away).
	Names chan string
	// Overflow receives (without blocking) when the kernel dropped events:
	// the folder must be read again.
	Overflow chan struct{}
}

// watchMoves starts reporting the names moved into dir.
func watchMoves(dir string) (*moves, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify for moves into %s: %w", dir, err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_ONLYDIR); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("watch moves into %s: %w", dir, err)
	}
	// A non-blocking fd in an *os.File is read through the runtime's
	// poller, so Close ends a pending Read.
	m := &moves{f: os.NewFile(uintptr(fd), "inotify-moves"), done: make(chan struct{}), Names: make(chan string, 64), Overflow: make(chan struct{}, 1)}
	go m.read()
	return m, nil
}

// Close stops the watch; the reader ends even while Names is full and
// nobody reads it.
func (m *moves) Close() error {
	m.closeOnce.Do(func() { close(m.done) })
	return m.f.Close()
}

func (m *moves) read() {
	defer close(m.Names)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := m.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				m.overflow() // the watch broke: read the folder again
			}
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			end := off + unix.SizeofInotifyEvent + int(ev.Len)
			if end > n {
				break
			}
			name := buf[off+unix.SizeofInotifyEvent : end]
			off = end
			switch {
			case ev.Mask&unix.IN_Q_OVERFLOW != 0:
				m.overflow()
			case ev.Mask&unix.IN_IGNORED != 0:
				return // the folder is gone
			case ev.Mask&unix.IN_MOVED_TO != 0 && ev.Mask&unix.IN_ISDIR == 0:
				if i := bytes.IndexByte(name, 0); i >= 0 {
					name = name[:i]
				}
				select {
				case m.Names <- string(name):
				case <-m.done:
					return
				}
			}
		}
	}
}

func (m *moves) overflow() {
	select {
	case m.Overflow <- struct{}{}:
	default:
	}
}
