package xds

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// Slots: the cache numbers the names of each type, and a stream keeps
// what it knows of a name (subscribed, sent, known) as bits at the name's
// number (state.go), not as an entry per name. A sidecar of a mesh of
// 10,000 Services knows about 40,000 names: a 32-byte entry each was
// 1.3 MB per sidecar, a few bits each are about 15 KB.
//
// A name keeps its slot while the cache holds it. When it goes, its slot
// is a tombstone: still the name's (a name that comes back gets it again),
// and given to another name only once no stream can hold bits for it.
// A stream holds bits only for names it watches, so every stream with bits
// for a name is told when it goes; it moves them off the slot when it
// takes that change (stream.handleChanges, under the cache's read lock).
// A tombstone of the change numbered seq is therefore free once no
// subscriber has a change of seq or older still to take (Cache.reclaim).

// slotTable numbers the names of one type. Its own lock lets streams read
// it without the cache's; it is written only by Cache.Apply, under the
// cache's lock.
type slotTable struct {
	mu    sync.RWMutex
	index map[string]uint32
	// names holds each slot's name ("" for a free slot); dead the seq of
	// the change that made it a tombstone (0 while the name is held).
	names []string
	dead  []uint64
	// tombs lists tombstones, oldest first (a slot may appear again after
	// it came back and went again: dead tells which entry is current).
	tombs []uint32
	free  []uint32
	// dead counts the tombstones, read without the lock: while there are
	// none, a stream has nothing to evict (typeState.evict).
	ndead atomic.Int64
}

func newSlotTable() *slotTable { return &slotTable{index: map[string]uint32{}} }

// lookup returns name's slot, and whether the cache holds the name now
// (false for a tombstone); ok is false when the name has no slot.
func (s *slotTable) lookup(name string) (slot uint32, alive, ok bool) {
	s.mu.RLock()
	slot, ok = s.index[name]
	alive = ok && s.dead[slot] == 0
	s.mu.RUnlock()
	return slot, alive, ok
}

// namesOf appends the names of the slots set in b to out.
func (s *slotTable) namesOf(b bitset, out []string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b.each(func(i uint32) { out = append(out, s.names[i]) })
	return out
}

// set records whether the cache holds name after the change seq: a name
// held gets a slot (its tombstone again, if it has one), a name gone
// becomes a tombstone. Must be called with the cache's lock held.
func (s *slotTable) set(name string, held bool, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, ok := s.index[name]
	switch {
	case held && ok:
		if s.dead[slot] != 0 {
			s.ndead.Add(-1)
		}
		s.dead[slot] = 0
	case held:
		if n := len(s.free); n > 0 {
			slot, s.free = s.free[n-1], s.free[:n-1]
			s.names[slot], s.dead[slot] = name, 0
		} else {
			slot = uint32(len(s.names))
			s.names = append(s.names, name)
			s.dead = append(s.dead, 0)
		}
		s.index[name] = slot
	case ok && s.dead[slot] == 0:
		s.ndead.Add(1)
		s.dead[slot] = seq
		s.tombs = append(s.tombs, slot)
	}
}

// oldestTomb returns the seq of the oldest tombstone, 0 for none.
func (s *slotTable) oldestTomb() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.tombs) > 0 && s.dead[s.tombs[0]] == 0 {
		s.tombs = s.tombs[1:]
	}
	if len(s.tombs) == 0 {
		return 0
	}
	return s.dead[s.tombs[0]]
}

// reclaim frees the tombstones of changes up to safe. Must be called with
// the cache's lock held.
func (s *slotTable) reclaim(safe uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := 0
	for ; i < len(s.tombs); i++ {
		slot := s.tombs[i]
		d := s.dead[slot]
		if d == 0 {
			continue // came back
		}
		if d > safe {
			break
		}
		delete(s.index, s.names[slot])
		s.names[slot], s.dead[slot] = "", 0
		s.ndead.Add(-1)
		s.free = append(s.free, slot)
	}
	s.tombs = append(s.tombs[:0], s.tombs[i:]...)
}

// bitset is a set of slots.
type bitset []uint64

func (b bitset) has(i uint32) bool {
	w := int(i / 64)
	return w < len(b) && b[w]&(1<<(i%64)) != 0
}

func (b *bitset) set(i uint32) {
	w := int(i / 64)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	(*b)[w] |= 1 << (i % 64)
}

func (b bitset) clear(i uint32) {
	if w := int(i / 64); w < len(b) {
		b[w] &^= 1 << (i % 64)
	}
}

func (b bitset) each(f func(uint32)) {
	for w, word := range b {
		for word != 0 {
			i := bits.TrailingZeros64(word)
			word &^= 1 << i
			f(uint32(w*64 + i))
		}
	}
}
