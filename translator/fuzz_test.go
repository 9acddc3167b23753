package translator

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard-xds/switchboard/watcher"
)

// FuzzTranslateManifest mutates the golden inputs and runs them through the
// real manifest decoder and watcher.Store into the translator, as
// `switchboard serve --manifests` would: whatever the decoder accepts must
// translate without a panic into resources that pass ValidateAll, the gRPC
// client rules and the Envoy rules. The seeds run in every `go test`;
// `make fuzz` searches further.
func FuzzTranslateManifest(f *testing.F) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "in", "*.yaml"))
	if err != nil || len(inputs) == 0 {
		f.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		views, err := watcher.ManifestViews("fuzz.yaml", data, watcher.Options{})
		if err != nil {
			return // refused input: the decoder's own fuzz target covers it
		}
		byKey, _ := translateAll(t, goldenOptions, views)
		for _, res := range byKey {
			validateAll(t, res)
			checkGRPCRules(t, res)
			checkEnvoyRules(t, res)
		}
	})
}
