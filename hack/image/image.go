package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// UID and GID are the image's user: not root, and the ids the Deployment in
// deploy/kubernetes runs as (runAsUser/runAsGroup), which distroless calls
// "nonroot".
const (
	UID = 65532
	GID = 65532
)

// Options describe the image Build makes.
type Options struct {
	// Binary is the path of a static linux switchboard binary
	// (CGO_ENABLED=0); it becomes /switchboard, the entrypoint.
	Binary string
	// Arch is the binary's GOARCH; the config says it.
	Arch string
	// Tag is the image's name and tag, for the writers.
	Tag string
	// Version, when set, is the org.opencontainers.image.version label.
	Version string
	// Created is every timestamp in the image: the files' mtimes, the
	// config's created time and its history's. A fixed value (the commit
	// time, or the epoch) makes the digest depend on the contents only.
	Created time.Time
}

// Build returns the image: an empty base plus one layer of the binary and
// the user's passwd and group entries, running /switchboard as UID:GID with
// "serve" as its default argument. It reads the binary once; the same
// binary and Options give the same digest.
func Build(opts Options) (v1.Image, error) {
	bin, err := os.ReadFile(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	layerTar, err := layerArchive(bin, opts.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	created := v1.Time{Time: opts.Created}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: created, CreatedBy: "hack/image: /switchboard, /etc/passwd, /etc/group", Comment: "switchboard"},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = opts.Arch
	cf.OS = "linux"
	cf.Created = created
	cf.Config = v1.Config{
		Entrypoint: []string{"/switchboard"},
		Cmd:        []string{"serve"},
		User:       fmt.Sprintf("%d:%d", UID, GID),
		WorkingDir: "/",
		// 18000: xDS (gRPC); 9090: admin (/metrics, /healthz, /readyz).
		ExposedPorts: map[string]struct{}{"18000/tcp": {}, "9090/tcp": {}},
		Labels:       labels(opts),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return img, nil
}

func labels(opts Options) map[string]string {
	l := map[string]string{"org.opencontainers.image.source": "https://github.com/switchboard-xds/switchboard"}
	if opts.Version != "" {
		l["org.opencontainers.image.version"] = opts.Version
	}
	return l
}

// layerArchive is the layer's tar: files in a fixed order, owned by root
// and read-only but for the binary's execute bits, every mtime t.
func layerArchive(bin []byte, t time.Time) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
	entries := []struct {
		name string
		mode int64
		dir  bool
		data []byte
	}{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "switchboard", mode: 0o755, data: bin},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: t, Format: tar.FormatPAX, Typeflag: tar.TypeReg, Size: int64(len(e.data))}
		if e.dir {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteLayout writes img as the only image of an OCI image layout at dir
// (what `crane push DIR REF` and skopeo's oci: transport read), annotated
// with tag as its ref name. An existing dir is replaced.
func WriteLayout(dir, tag string, img v1.Image) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	return nil
}

// WriteTarball writes img to path as a docker-style tarball tagged tag
// (`docker load -i`, `kind load image-archive`, `crane push FILE REF`).
func WriteTarball(path, tag string, img v1.Image) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tarball: tag: %w", err)
	}
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		return fmt.Errorf("tarball: %w", err)
	}
	return nil
}
