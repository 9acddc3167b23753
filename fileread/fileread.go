// Package fileread reads files that someone else controls without letting
// the file decide what the read costs: only regular files are read (a FIFO
// would block the reader for good, a device such as /dev/zero would never
// end), opened so that even a FIFO swapped in between a check and the open
// cannot block, and never more than a limit. The manifest source
// (watcher) and the TLS file reloader (xds's credentials) share it; it
// imports nothing of Switchboard's.
package fileread

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// NotRegularError is returned for a path that is not a regular file (a
// device, FIFO, socket or folder; a symlink is followed).
type NotRegularError struct {
	Path string
	Mode fs.FileMode
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s: not a regular file (mode %s)", e.Path, e.Mode.Type())
}

// TooLargeError is returned for a file larger than the limit. Size is what
// was seen: the file's size, or limit+1 when it grew while being read.
type TooLargeError struct {
	Path        string
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s: larger than the limit of %d bytes", e.Path, e.Limit)
}

// Open opens path for reading and returns it with its fstat, or a
// *NotRegularError (the file is closed) if it is not a regular file. It
// opens with O_NONBLOCK, so that opening a FIFO does not wait for a
// writer, and checks the open file, so that what is read is what was
// checked. Other errors are os.OpenFile's and fstat's.
func Open(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, nil, &NotRegularError{Path: path, Mode: fi.Mode()}
	}
	return f, fi, nil
}

// ReadAll reads f to its end, or returns a *TooLargeError once it has read
// more than limit bytes: it never holds more than limit+1.
func ReadAll(f *os.File, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &TooLargeError{Path: f.Name(), Size: int64(len(data)), Limit: limit}
	}
	return data, nil
}

// ReadFile is os.ReadFile for a file that must be regular and at most
// limit bytes: Open, a size check on its fstat, then ReadAll.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, fi, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi.Size() > limit {
		return nil, &TooLargeError{Path: path, Size: fi.Size(), Limit: limit}
	}
	return ReadAll(f, limit)
}
