package watcher

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// FuzzManifestDecode feeds arbitrary bytes to the manifest decoder and the
// Store, as a file in the folder would: it must never panic, a stream that
// does not parse yields no objects at all, and whatever the Store publishes
// follows the one endpoint order. Seeds are the translator's golden inputs
// and the demo's manifests; `make fuzz` searches further.
func FuzzManifestDecode(f *testing.F) {
	for _, glob := range []string{"../translator/testdata/in/*.yaml", "../deploy/examples/*.yaml"} {
		files, err := filepath.Glob(glob)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("{\"kind\":\"List\",\"apiVersion\":\"v1\",\"items\":[{\"kind\":\"List\",\"apiVersion\":\"v1\",\"items\":[]}]}"))
	dec, err := newManifestDecoder(slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, bad, err := dec.decodeFile("f.yaml", data)
		if err != nil && (len(objs) > 0 || len(bad) > 0) {
			t.Fatalf("a stream that does not parse gave %d objects and %d bad documents", len(objs), len(bad))
		}
		s := newTestStore(t)
		for _, o := range objs {
			o.upsert(s, true)
		}
		for _, v := range s.TakeAll() {
			for _, p := range v.Ports {
				checkEndpointOrder(t, p.Endpoints)
			}
		}
	})
}
