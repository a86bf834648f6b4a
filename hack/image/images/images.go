// Package images defines lbstack's container images and builds them as
// reproducible OCI archives with internal/ociimage: the lbstack image itself
// (the layout the Dockerfile's final stage also produces) and the two tiny
// images the real-cluster tests run. It is the code behind hack/image, in a
// package of its own so that tests can call it.
package images

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lbstack/lbstack/internal/ociimage"
)

// RootFS is the directory, relative to the module root, with the files the
// lbstack image shares with the Dockerfile (etc/passwd, etc/group).
const RootFS = "hack/image/rootfs"

// defaultPath is the PATH BuildKit gives an image built FROM scratch.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Image is an image hack/image can build: one static Go binary and the
// files around it.
type Image struct {
	// Name is the image's short name: the binary's name and the archive's.
	Name string
	// Ref is the reference the image gets by default.
	Ref string
	// Package is the main package of the binary, relative to the module root.
	Package string
	// Arches are the GOARCH values built by default; empty means the host's.
	Arches []string
	// Index lays out the image for a reference, the module root and the
	// binaries by GOARCH.
	Index func(ref, moduleDir string, binaries map[string]string) ociimage.Index
}

// Known returns the images hack/image builds: lbstack, echo and pause.
func Known() []Image {
	return []Image{
		{Name: "lbstack", Ref: "ghcr.io/lbstack/lbstack:dev", Package: "./cmd/lbstack", Arches: []string{"amd64", "arm64"}, Index: Lbstack},
		{Name: "echo", Ref: "lbstack.test/echo:v1", Package: "./test/images/echo", Index: Echo},
		{Name: "pause", Ref: "lbstack.test/pause:v1", Package: "./test/images/pause", Index: Pause},
	}
}

// Lookup returns the known image called name.
func Lookup(name string) (Image, error) {
	var names []string
	for _, img := range Known() {
		if img.Name == name {
			return img, nil
		}
		names = append(names, img.Name)
	}
	return Image{}, fmt.Errorf("unknown image %q (want one of %s)", name, strings.Join(names, ", "))
}

// Lbstack lays out the lbstack image like the Dockerfile's final stage:
// /lbstack, /etc/passwd and /etc/group with root and nonroot (65532), /tmp
// (1777), user 65532:65532, entrypoint /lbstack, no shell.
func Lbstack(ref, moduleDir string, binaries map[string]string) ociimage.Index {
	etc := filepath.Join(moduleDir, RootFS, "etc")
	return index(ref, binaries, ociimage.Config{
		Entrypoint: []string{"/lbstack"},
		User:       "65532:65532",
		Env:        []string{defaultPath},
		WorkingDir: "/",
	}, func(bin string) []ociimage.File {
		return []ociimage.File{
			{Path: "/lbstack", Mode: 0o755, Source: bin},
			{Path: "/etc/passwd", Mode: 0o644, Source: filepath.Join(etc, "passwd")},
			{Path: "/etc/group", Mode: 0o644, Source: filepath.Join(etc, "group")},
			{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		}
	})
}

// Echo lays out the test HTTP server (test/images/echo): /echo, run as
// 65532:65532, listening on 8080.
func Echo(ref, _ string, binaries map[string]string) ociimage.Index {
	return index(ref, binaries, ociimage.Config{
		Entrypoint:   []string{"/echo"},
		User:         "65532:65532",
		Env:          []string{defaultPath},
		ExposedPorts: []string{"8080/tcp"},
	}, func(bin string) []ociimage.File {
		return []ociimage.File{{Path: "/echo", Mode: 0o755, Source: bin}}
	})
}

// Pause lays out the pod sandbox image (test/images/pause): /pause, run as
// 65535:65535 like registry.k8s.io/pause.
func Pause(ref, _ string, binaries map[string]string) ociimage.Index {
	return index(ref, binaries, ociimage.Config{
		Entrypoint: []string{"/pause"},
		User:       "65535:65535",
	}, func(bin string) []ociimage.File {
		return []ociimage.File{{Path: "/pause", Mode: 0o755, Source: bin}}
	})
}

func index(ref string, binaries map[string]string, c ociimage.Config, files func(bin string) []ociimage.File) ociimage.Index {
	idx := ociimage.Index{Name: ref, Config: c}
	arches := make([]string, 0, len(binaries))
	for arch := range binaries {
		arches = append(arches, arch)
	}
	slices.Sort(arches)
	for _, arch := range arches {
		idx.Images = append(idx.Images, ociimage.Image{Platform: "linux/" + arch, Files: files(binaries[arch])})
	}
	return idx
}

// Compilation is one static build of a main package for Linux.
type Compilation struct {
	// Go is the go command; empty means "go".
	Go string
	// ModuleDir is the module root the build runs in.
	ModuleDir string
	// Package is the main package, relative to ModuleDir.
	Package string
	// Arch is the GOARCH.
	Arch string
	// Output is the binary's path.
	Output string
	// Stderr receives the go command's output; nil discards it unless the
	// build fails, when it is part of the error.
	Stderr io.Writer
}

// Compile builds c.Package like the Dockerfile does: CGO_ENABLED=0,
// -trimpath, -ldflags "-s -w", GOFLAGS=-buildvcs=false. The go command
// reuses its build cache, and leaves an up-to-date Output alone.
func Compile(ctx context.Context, c Compilation) error {
	goCmd := c.Go
	if goCmd == "" {
		goCmd = "go"
	}
	out, err := filepath.Abs(c.Output)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags", "-s -w", "-o", out, c.Package)
	cmd.Dir = c.ModuleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+c.Arch, "GOFLAGS=-buildvcs=false")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if c.Stderr != nil {
		cmd.Stdout, cmd.Stderr = c.Stderr, c.Stderr
	}
	if err := cmd.Run(); err != nil {
		if output.Len() > 0 {
			err = fmt.Errorf("%w\n%s", err, bytes.TrimSpace(output.Bytes()))
		}
		return fmt.Errorf("building %s for linux/%s: %w", c.Package, c.Arch, err)
	}
	return nil
}

// Request asks Build for one image archive.
type Request struct {
	// Image is what to build.
	Image Image
	// Ref names the image; empty means Image.Ref.
	Ref string
	// Arches are the GOARCH values; empty means Image.Arches.
	Arches []string
	// Go is the go command; empty means "go".
	Go string
	// ModuleDir is the module root.
	ModuleDir string
	// BinDir receives the binaries, named <image>-linux-<arch>.
	BinDir string
	// Out is the archive's path.
	Out string
	// Epoch is every timestamp in the archive; zero means Unix 0.
	Epoch time.Time
	// Stderr receives the go command's output.
	Stderr io.Writer
}

// Build compiles the image's binary for each architecture into r.BinDir
// and writes the archive r.Out, leaving it untouched when its content would
// not change.
func Build(ctx context.Context, r Request) error {
	ref := r.Ref
	if ref == "" {
		ref = r.Image.Ref
	}
	arches := r.Arches
	if len(arches) == 0 {
		arches = r.Image.Arches
	}
	if len(arches) == 0 {
		return fmt.Errorf("image %s: no architecture", r.Image.Name)
	}
	binaries := map[string]string{}
	for _, arch := range arches {
		bin := filepath.Join(r.BinDir, r.Image.Name+"-linux-"+arch)
		if err := Compile(ctx, Compilation{
			Go: r.Go, ModuleDir: r.ModuleDir, Package: r.Image.Package, Arch: arch, Output: bin, Stderr: r.Stderr,
		}); err != nil {
			return err
		}
		binaries[arch] = bin
	}
	idx := r.Image.Index(ref, r.ModuleDir, binaries)
	idx.Epoch = r.Epoch
	return ociimage.WriteFile(r.Out, idx)
}
