package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImage builds the real binary as `make image` does, builds the image
// twice through the command, and checks what a runtime would run: the
// entrypoint, the user, the platform, the files (no shell), the digest
// (the same both times), and that the binary taken out of the layer runs.
func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image holds a linux binary, which this test runs")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "switchboard")
	const version = "v0.0.0-imagetest"
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", bin, "../../cmd/switchboard")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	created := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	digests := make([]string, 2)
	for i := range digests {
		var out bytes.Buffer
		args := []string{
			"--binary", bin, "--arch", runtime.GOARCH, "--tag", "registry.example/switchboard:test",
			"--version", version, "--created", "1796644800",
			"--layout", filepath.Join(dir, "layout"), "--tarball", filepath.Join(dir, "image.tar"),
		}
		if err := run(t.Context(), args, &out); err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		digests[i] = strings.Fields(out.String())[1]
		img := layoutImage(t, filepath.Join(dir, "layout"))
		if d, _ := img.Digest(); d.String() != digests[i] {
			t.Fatalf("layout holds %s, the command printed %s", d, digests[i])
		}
		tb, err := tarball.ImageFromPath(filepath.Join(dir, "image.tar"), nil)
		if err != nil {
			t.Fatal(err)
		}
		// A docker tarball keeps the config and layers, not the OCI
		// manifest (a reader makes up a docker one): compare the config.
		tc, _ := tb.ConfigName()
		if lc, _ := img.ConfigName(); tc != lc {
			t.Errorf("tarball's config %s, the layout's %s", tc, lc)
		}
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds of the same binary: digests %s and %s", digests[0], digests[1])
	}

	img := layoutImage(t, filepath.Join(dir, "layout"))
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Entrypoint; !slices.Equal(got, []string{"/switchboard"}) {
		t.Errorf("entrypoint %q, want [/switchboard]", got)
	}
	if got := cf.Config.User; got != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", got)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if !cf.Created.Equal(created) {
		t.Errorf("created %v, want %v", cf.Created.Time, created)
	}

	files := layerFiles(t, img, created)
	want := []string{"etc/", "etc/group", "etc/passwd", "switchboard"}
	if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, want) {
		t.Errorf("layer files %q, want %q (no shell, nothing else)", got, want)
	}
	if !strings.Contains(string(files["etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("etc/passwd has no user 65532:\n%s", files["etc/passwd"])
	}

	extracted := filepath.Join(dir, "extracted")
	if err := os.WriteFile(extracted, files["switchboard"], 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(extracted, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("switchboard version from the image: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "switchboard "+version; got != want {
		t.Errorf("version printed %q, want %q", got, want)
	}
}

// layoutImage opens the one image of the OCI layout at dir.
func layoutImage(t *testing.T, dir string) v1.Image {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("layout has %d manifests, want 1", len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// layerFiles returns the contents of each entry of the image's one layer,
// failing on an entry whose mtime is not created or that root does not own.
func layerFiles(t *testing.T, img v1.Image, created time.Time) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(created) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d, want %v and root", h.Name, h.ModTime, h.Uid, h.Gid, created)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
	return files
}
