// Package ociimage writes container images as OCI image layout tar archives
// (oci-layout, index.json, blobs/sha256/...) with no registry and no daemon.
//
// An archive holds one image index with one manifest per platform, each
// image of a single layer. The output is byte for byte reproducible: every
// timestamp is the given epoch (Unix 0 by default), every file belongs to
// uid/gid 0, tar entries are sorted, and gzip runs with a fixed header. The
// image is named by annotations on the index's descriptor in index.json, so
// `ctr images import` gives it the full reference.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Annotations on the index's descriptor in index.json that name the image.
const (
	// AnnotationRefName is the OCI image layout's name for a manifest in
	// index.json. containerd's import keeps a full reference unchanged.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationContainerdImageName is the name containerd's import uses
	// before any other, unchanged by ctr's --base-name and prefix logic.
	AnnotationContainerdImageName = "io.containerd.image.name"
)

// File is one entry of an image's file system.
type File struct {
	// Path is where the entry lives in the image, absolute ("/etc/passwd").
	Path string
	// Mode holds the permission bits with fs.ModeSetuid, fs.ModeSetgid and
	// fs.ModeSticky; fs.ModeDir makes the entry a directory. The default is
	// 0644 for a file and 0755 for a directory.
	Mode fs.FileMode
	// Content is the file's content, used when Source is empty.
	Content []byte
	// Source is a host file to read the content from.
	Source string
}

// Config is the run configuration of every image in an index.
type Config struct {
	// Entrypoint is the command that runs in the container.
	Entrypoint []string
	// Cmd holds the default arguments to Entrypoint.
	Cmd []string
	// User is "uid", "uid:gid" or a name in the image's /etc/passwd.
	User string
	// Env holds "KEY=value" pairs.
	Env []string
	// WorkingDir is the working directory of the entrypoint.
	WorkingDir string
	// Labels are the image's labels.
	Labels map[string]string
	// ExposedPorts lists "port/protocol" pairs, such as "8080/tcp".
	ExposedPorts []string
}

// Image is the image of one platform.
type Image struct {
	// Platform is the OS and architecture ("linux/arm64", optionally with a
	// variant: "linux/arm/v7").
	Platform string
	// Files make up the image's only layer. Missing parent directories are
	// added with mode 0755.
	Files []File
}

// Index describes a multi-platform image.
type Index struct {
	// Name is the full reference, such as "ghcr.io/lbstack/lbstack:dev".
	Name string
	// Config applies to every platform.
	Config Config
	// Images holds one image per platform.
	Images []Image
	// Epoch is every timestamp in the archive: file mtimes and the created
	// times of the image configs. The zero value means Unix 0.
	Epoch time.Time
}

// Write writes idx to w as an OCI image layout tar archive.
func Write(w io.Writer, idx Index) error {
	if idx.Name == "" {
		return errors.New("image name is empty")
	}
	if len(idx.Images) == 0 {
		return fmt.Errorf("%s: no platform", idx.Name)
	}
	epoch := time.Unix(0, 0).UTC()
	if !idx.Epoch.IsZero() {
		epoch = idx.Epoch.UTC().Truncate(time.Second)
	}

	images := make([]v1.Image, len(idx.Images))
	platforms := make([]*v1.Platform, len(idx.Images))
	seen := map[string]bool{}
	for i, im := range idx.Images {
		p, err := v1.ParsePlatform(im.Platform)
		if err == nil && (p.OS == "" || p.Architecture == "") {
			err = errors.New("want os/arch[/variant]")
		}
		if err != nil {
			return fmt.Errorf("%s: platform %q: %w", idx.Name, im.Platform, err)
		}
		if seen[p.String()] {
			return fmt.Errorf("%s: platform %s given twice", idx.Name, p)
		}
		seen[p.String()] = true
		platforms[i] = p
	}
	// The layers are compressed in parallel: a Go binary takes a while.
	var g errgroup.Group
	for i, im := range idx.Images {
		g.Go(func() error {
			img, err := image(im.Files, idx.Config, platforms[i], epoch)
			if err != nil {
				return fmt.Errorf("%s for %s: %w", idx.Name, platforms[i], err)
			}
			images[i] = img
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}

	adds := make([]mutate.IndexAddendum, len(images))
	for i, img := range images {
		adds[i] = mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: platforms[i]}}
	}
	platformIndex := mutate.AppendManifests(empty.Index, adds...)
	top := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add: platformIndex,
		Descriptor: v1.Descriptor{Annotations: map[string]string{
			AnnotationRefName:             idx.Name,
			AnnotationContainerdImageName: idx.Name,
		}},
	})

	blobs := map[string][]byte{}
	if err := addBlob(blobs, platformIndex); err != nil {
		return err
	}
	for _, img := range images {
		if err := addBlob(blobs, img); err != nil {
			return err
		}
		cfg, err := img.RawConfigFile()
		if err != nil {
			return err
		}
		blobs[digestHex(cfg)] = cfg
		layers, err := img.Layers()
		if err != nil {
			return err
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			blobs[digestHex(b)] = b
		}
	}
	indexJSON, err := top.RawManifest()
	if err != nil {
		return err
	}

	entries := []entry{
		{name: "blobs/", mode: 0o755, dir: true},
		{name: "blobs/sha256/", mode: 0o755, dir: true},
		{name: "index.json", mode: 0o644, content: indexJSON},
		{name: "oci-layout", mode: 0o644, content: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
	}
	for hex, b := range blobs {
		entries = append(entries, entry{name: "blobs/sha256/" + hex, mode: 0o644, content: b})
	}
	return writeTar(w, entries, epoch)
}

// WriteFile writes idx as an archive to the file name. It replaces the file
// atomically, and leaves it untouched (with its mtime) when its content
// would not change.
func WriteFile(name string, idx Index) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if err := Write(io.MultiWriter(tmp, h), idx); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if old, err := fileSHA256(name); err == nil && bytes.Equal(old, h.Sum(nil)) {
		return nil
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// ParseSourceDateEpoch parses a SOURCE_DATE_EPOCH value
// (https://reproducible-builds.org/specs/source-date-epoch/): seconds since
// the Unix epoch. An empty value gives Unix 0.
func ParseSourceDateEpoch(s string) (time.Time, error) {
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// image builds the single-layer OCI image of one platform.
func image(files []File, c Config, p *v1.Platform, epoch time.Time) (v1.Image, error) {
	entries, err := layerEntries(files)
	if err != nil {
		return nil, err
	}
	var tarBuf bytes.Buffer
	if err := writeTar(&tarBuf, entries, epoch); err != nil {
		return nil, err
	}
	// compress/gzip writes no name and the zero mtime when the header is
	// left empty, so the bytes depend only on the input.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	compressed := gz.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}

	cfg := v1.Config{
		Entrypoint: slices.Clone(c.Entrypoint),
		Cmd:        slices.Clone(c.Cmd),
		User:       c.User,
		Env:        slices.Clone(c.Env),
		WorkingDir: c.WorkingDir,
		Labels:     c.Labels,
	}
	if len(c.ExposedPorts) > 0 {
		cfg.ExposedPorts = map[string]struct{}{}
		for _, port := range c.ExposedPorts {
			cfg.ExposedPorts[port] = struct{}{}
		}
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.ConfigFile(base, &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "ociimage"},
	})
}

// entry is one tar entry.
type entry struct {
	name    string
	mode    fs.FileMode
	dir     bool
	content []byte
}

// layerEntries turns files into sorted tar entries named relative to the
// root ("etc/passwd", "tmp/"), adding the parent directories they lack.
func layerEntries(files []File) ([]entry, error) {
	byName := map[string]entry{}
	for _, f := range files {
		if !strings.HasPrefix(f.Path, "/") {
			return nil, fmt.Errorf("path %q is not absolute", f.Path)
		}
		clean := path.Clean(f.Path)
		if clean == "/" {
			return nil, fmt.Errorf("path %q is the root", f.Path)
		}
		name := strings.TrimPrefix(clean, "/")
		dir := f.Mode.IsDir()
		e := entry{name: name, mode: f.Mode &^ fs.ModeDir, dir: dir}
		if dir {
			e.name += "/"
			if e.mode == 0 {
				e.mode = 0o755
			}
			if f.Content != nil || f.Source != "" {
				return nil, fmt.Errorf("directory %s has content", f.Path)
			}
		} else {
			if e.mode == 0 {
				e.mode = 0o644
			}
			e.content = f.Content
			if f.Source != "" {
				b, err := os.ReadFile(f.Source)
				if err != nil {
					return nil, err
				}
				e.content = b
			}
			if e.content == nil {
				e.content = []byte{}
			}
		}
		if _, ok := byName[strings.TrimSuffix(e.name, "/")]; ok {
			return nil, fmt.Errorf("path %s given twice", f.Path)
		}
		byName[strings.TrimSuffix(e.name, "/")] = e
	}
	for key := range byName {
		for d := path.Dir(key); d != "."; d = path.Dir(d) {
			if e, ok := byName[d]; ok {
				if !e.dir {
					return nil, fmt.Errorf("/%s is a file and a parent directory", d)
				}
				continue
			}
			byName[d] = entry{name: d + "/", mode: 0o755, dir: true}
		}
	}
	entries := make([]entry, 0, len(byName))
	for _, e := range byName {
		entries = append(entries, e)
	}
	return entries, nil
}

// writeTar writes entries sorted by name, owned by root, with mtime epoch.
func writeTar(w io.Writer, entries []entry, epoch time.Time) error {
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    tarMode(e.mode),
			ModTime: epoch,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.content))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(e.content); err != nil {
			return err
		}
	}
	return tw.Close()
}

// tarMode converts an fs.FileMode's permission and special bits to the
// mode field of a tar header.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// addBlob stores the raw manifest of m under its digest.
func addBlob(blobs map[string][]byte, m interface{ RawManifest() ([]byte, error) }) error {
	b, err := m.RawManifest()
	if err != nil {
		return err
	}
	blobs[digestHex(b)] = b
	return nil
}

func digestHex(b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum)
}

func fileSHA256(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
