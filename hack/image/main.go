// Command image builds Switchboard's container image without a container
// engine: one layer holding a static switchboard binary at /switchboard and
// the /etc/passwd and /etc/group entries of its non-root user, on an empty
// base (no shell, no package manager, no libc), written as an OCI image
// layout and as a tarball that `docker load` and `kind load image-archive`
// read. `make image` runs it on the binary it builds.
//
//	go run ./hack/image --binary bin/linux_amd64/switchboard --arch amd64 \
//	    --tag switchboard:dev --created "$(git log -1 --format=%ct)" \
//	    --layout bin/image --tarball bin/switchboard-image.tar
//
// The image is reproducible: every timestamp in it (the layer's files, the
// config's created time and history) is --created, so the same binary and
// flags give the same digest. With a binary built reproducibly (-trimpath,
// no VCS stamp, the same toolchain) the same commit gives the same image.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

func run(_ context.Context, args []string, stdout io.Writer) error {
	opts, layoutDir, tarPath, err := parse(args)
	if err != nil {
		return err
	}
	img, err := Build(opts)
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	if layoutDir != "" {
		if err := WriteLayout(layoutDir, opts.Tag, img); err != nil {
			return err
		}
	}
	if tarPath != "" {
		if err := WriteTarball(tarPath, opts.Tag, img); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%s %s\n", opts.Tag, digest)
	return nil
}

func parse(args []string) (opts Options, layoutDir, tarPath string, err error) {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.StringVar(&opts.Binary, "binary", "", "the static linux switchboard binary to put at /switchboard (required)")
	fs.StringVar(&opts.Arch, "arch", "amd64", "the binary's GOARCH, written into the image config")
	fs.StringVar(&opts.Tag, "tag", "switchboard:dev", "the image's name and tag (OCI ref.name annotation, tarball repo tag)")
	fs.StringVar(&opts.Version, "version", "", "the org.opencontainers.image.version label (empty: no label)")
	created := fs.String("created", envOr("SOURCE_DATE_EPOCH", "0"), "every timestamp in the image, in Unix seconds (make image passes the commit time)")
	fs.StringVar(&layoutDir, "layout", "", "write an OCI image layout into this directory, replacing it")
	fs.StringVar(&tarPath, "tarball", "", "write a docker-style image tarball to this file")
	if err := fs.Parse(args); err != nil {
		return opts, "", "", err
	}
	if fs.NArg() > 0 {
		return opts, "", "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if opts.Binary == "" {
		return opts, "", "", errors.New("--binary is required")
	}
	if layoutDir == "" && tarPath == "" {
		return opts, "", "", errors.New("nothing to write: give --layout, --tarball or both")
	}
	secs, err := strconv.ParseInt(*created, 10, 64)
	if err != nil {
		return opts, "", "", fmt.Errorf("--created: %w", err)
	}
	opts.Created = time.Unix(secs, 0).UTC()
	return opts, layoutDir, tarPath, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
