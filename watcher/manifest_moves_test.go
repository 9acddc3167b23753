package watcher

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-xds/switchboard/internal/poll"
)

// TestMovesCloseWithNobodyReading: more files moved in than Names holds,
// nobody reading, then Close: the reader ends (Names is closed) rather than
// block for good on a send.
func TestMovesCloseWithNobodyReading(t *testing.T) {
	dir, staging := t.TempDir(), t.TempDir()
	m, err := watchMoves(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := cap(m.Names) + 16
	for i := range n {
		p := filepath.Join(staging, strconv.Itoa(i)+".yaml")
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p, filepath.Join(dir, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	// The reader has filled Names and waits to send one more (a channel's
	// length: no event to wait on).
	poll.Until(t, 10*time.Second, "the moves to fill Names", func() bool { return len(m.Names) == cap(m.Names) })
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// The reader gave up its pending send at Close: draining Names now
	// finds only what it held, then its end. A reader still blocked
	// would deliver the rest as Names empties.
	got := 0
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-m.Names:
			if !ok {
				if got != cap(m.Names) {
					t.Fatalf("%d names after Close, want the %d Names held: the reader went on sending", got, cap(m.Names))
				}
				return
			}
			got++
		case <-timeout:
			t.Fatal("the reader did not end after Close")
		}
	}
}
