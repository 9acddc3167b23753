package model

import (
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// BenchmarkContentVersion: the digest every resource of every change gets
// (FNV-1a), against XXH64, at the sizes resources have:
// an api_listener (~200 B), an assignment of 100 endpoints (~6 KB), a
// sidecar route configuration of 1000 virtual hosts (~300 KB).
func BenchmarkContentVersion(b *testing.B) {
	for _, n := range []int{200, 6 << 10, 300 << 10} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 7)
		}
		b.Run("bytes="+strconv.Itoa(n)+"/fnv1a", func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				_ = ContentVersion(data)
			}
		})
		// The alternative, which would change every version on the wire
		// (TestVersionsOnTheWire pins them): not adopted yet.
		b.Run("bytes="+strconv.Itoa(n)+"/xxh64", func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				_ = xxhash.Sum64(data)
			}
		})
	}
}
