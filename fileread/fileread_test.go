package fileread

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(good, 5); err != nil || string(b) != "hello" {
		t.Fatalf("ReadFile(good, 5) = %q, %v", b, err)
	}
	var tl *TooLargeError
	if _, err := ReadFile(good, 4); !errors.As(err, &tl) || tl.Size != 5 {
		t.Fatalf("ReadFile(good, 4) = %v, want a TooLargeError of size 5", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, zero, dir} {
		done := make(chan error, 1)
		go func() { _, err := ReadFile(p, 1<<20); done <- err }()
		select {
		case err := <-done:
			var nr *NotRegularError
			if !errors.As(err, &nr) || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("ReadFile(%s) = %v, want a NotRegularError", p, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("ReadFile(%s) blocked", p)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "none"), 1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(none) = %v, want ErrNotExist", err)
	}
}
