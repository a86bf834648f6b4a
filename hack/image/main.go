// Command image builds one of lbstack's container images as a reproducible
// OCI image layout tar archive, with no registry and no Docker daemon:
//
//	go run ./hack/image -image lbstack -ref ghcr.io/lbstack/lbstack:dev
//	go run ./hack/image -image echo
//
// It compiles the image's static binary for each architecture into -bin-dir
// and writes -out, which `ctr -n k8s.io images import` loads under the
// reference. Timestamps are Unix 0, or SOURCE_DATE_EPOCH when it is set.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/lbstack/lbstack/hack/image/images"
	"github.com/lbstack/lbstack/internal/ociimage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		name      = flag.String("image", "lbstack", "image to build: lbstack, echo or pause")
		ref       = flag.String("ref", "", "image reference (default: the image's own, e.g. ghcr.io/lbstack/lbstack:dev)")
		arches    = flag.String("arch", "", "comma-separated GOARCH values; \"host\" is this machine's (default: amd64,arm64 for lbstack, host for the test images)")
		goCmd     = flag.String("go", "go", "go command")
		moduleDir = flag.String("C", ".", "module root")
		binDir    = flag.String("bin-dir", "bin/image", "directory for the binaries, <image>-linux-<arch>")
		out       = flag.String("out", "", "archive to write (default: bin/images/<image>.tar)")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	img, err := images.Lookup(*name)
	if err != nil {
		return err
	}
	// SOURCE_DATE_EPOCH is the reproducible-builds convention, not a flag
	// default: it is the only setting read from the environment.
	epoch, err := ociimage.ParseSourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	req := images.Request{
		Image:     img,
		Ref:       *ref,
		Go:        *goCmd,
		ModuleDir: *moduleDir,
		BinDir:    *binDir,
		Out:       *out,
		Epoch:     epoch,
		Stderr:    os.Stderr,
	}
	if req.Ref == "" {
		req.Ref = img.Ref
	}
	if req.Out == "" {
		req.Out = filepath.Join("bin", "images", img.Name+".tar")
	}
	req.Arches = slices.Clone(img.Arches)
	if *arches != "" {
		req.Arches = strings.Split(*arches, ",")
	}
	if len(req.Arches) == 0 {
		req.Arches = []string{"host"}
	}
	for i, a := range req.Arches {
		if a == "host" {
			req.Arches[i] = runtime.GOARCH
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := images.Build(ctx, req); err != nil {
		return err
	}
	fmt.Printf("Wrote %s: %s for linux/%s\n", req.Out, req.Ref, strings.Join(req.Arches, ", linux/"))
	return nil
}
