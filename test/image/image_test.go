// Package image tests the lbstack image archive that `make image` writes,
// built through hack/image's code path: its index, its config, its one
// layer, and that it is byte for byte reproducible.
package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/lbstack/lbstack/hack/image/images"
	"github.com/lbstack/lbstack/internal/ociimage"
)

const moduleDir = "../.."

func TestLbstackImage(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles lbstack for two architectures")
	}
	const ref = "ghcr.io/lbstack/lbstack:test"
	img, err := images.Lookup("lbstack")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	req := images.Request{
		Image:     img,
		Ref:       ref,
		ModuleDir: moduleDir,
		BinDir:    filepath.Join(dir, "bin"),
		Out:       filepath.Join(dir, "first.tar"),
	}
	if err := images.Build(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	// The same binaries give the same archive. (A second images.Build would
	// also recompile, and pick up any edit made to the tree meanwhile.)
	binaries := map[string]string{}
	for _, arch := range img.Arches {
		binaries[arch] = filepath.Join(req.BinDir, "lbstack-linux-"+arch)
	}
	if err := ociimage.WriteFile(filepath.Join(dir, "second.tar"), img.Index(ref, moduleDir, binaries)); err != nil {
		t.Fatal(err)
	}
	first, second := sha256File(t, filepath.Join(dir, "first.tar")), sha256File(t, filepath.Join(dir, "second.tar"))
	if first != second {
		t.Errorf("two builds differ: sha256 %x and %x", first, second)
	}

	p, err := layout.FromPath(extract(t, filepath.Join(dir, "first.tar")))
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(topManifest.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1 image index", len(topManifest.Manifests))
	}
	desc := topManifest.Manifests[0]
	for _, key := range []string{ociimage.AnnotationRefName, ociimage.AnnotationContainerdImageName} {
		if got := desc.Annotations[key]; got != ref {
			t.Errorf("annotation %s = %q, want %q", key, got, ref)
		}
	}
	index, err := top.ImageIndex(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(index); err != nil {
		t.Errorf("validate.Index: %v", err)
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}

	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	var platforms []string
	for _, m := range manifest.Manifests {
		platforms = append(platforms, m.Platform.String())
		t.Run(m.Platform.String(), func(t *testing.T) {
			img, err := index.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, img, m.Platform, machines[m.Platform.Architecture])
		})
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, platforms); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
}

func checkImage(t *testing.T, img v1.Image, p *v1.Platform, machine elf.Machine) {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != p.OS || cf.Architecture != p.Architecture {
		t.Errorf("config is for %s/%s", cf.OS, cf.Architecture)
	}
	if diff := cmp.Diff([]string{"/lbstack"}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", cf.Config.User)
	}
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

	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
			t.Errorf("%s: uid %d gid %d mtime %v, want 0, 0, Unix 0", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch h.Name {
		case "lbstack":
			if h.Typeflag != tar.TypeReg || h.Mode != 0o755 {
				t.Errorf("/lbstack: type %c mode %o, want a file with mode 755", h.Typeflag, h.Mode)
			}
			f, err := elf.NewFile(bytes.NewReader(content))
			if err != nil {
				t.Fatalf("/lbstack: %v", err)
			}
			if f.Machine != machine {
				t.Errorf("/lbstack is for %v, want %v", f.Machine, machine)
			}
			if slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }) {
				t.Error("/lbstack is dynamically linked")
			}
		case "etc/passwd":
			if !hasLine(content, "nonroot:x:65532:65532:") || !hasLine(content, "root:x:0:0:") {
				t.Errorf("/etc/passwd lacks root or nonroot (65532):\n%s", content)
			}
		case "etc/group":
			if !hasLine(content, "nonroot:x:65532:") {
				t.Errorf("/etc/group lacks nonroot (65532):\n%s", content)
			}
		case "tmp/":
			if h.Typeflag != tar.TypeDir || h.Mode != 0o1777 {
				t.Errorf("/tmp: type %c mode %o, want a directory with mode 1777", h.Typeflag, h.Mode)
			}
		}
	}
	// Nothing else: no shell, no libc.
	if diff := cmp.Diff([]string{"etc/", "etc/group", "etc/passwd", "lbstack", "tmp/"}, names); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}
}

// TestDockerfileMatches checks that the Dockerfile's final stage is the
// same image: FROM scratch, the shared /etc files, the same user and
// entrypoint.
func TestDockerfileMatches(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(moduleDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var final []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "FROM ") {
			final = nil
		}
		if line != "" && !strings.HasPrefix(line, "#") {
			final = append(final, line)
		}
	}
	idx := images.Lbstack("x", moduleDir, map[string]string{"amd64": "/lbstack"})
	for _, want := range []string{
		"FROM scratch",
		"USER " + idx.Config.User,
		`ENTRYPOINT ["` + idx.Config.Entrypoint[0] + `"]`,
	} {
		if !slices.Contains(final, want) {
			t.Errorf("the Dockerfile's final stage lacks %q:\n%s", want, strings.Join(final, "\n"))
		}
	}
	if !hasLine(b, "COPY "+images.RootFS) {
		t.Errorf("the Dockerfile does not copy %s into the image", images.RootFS)
	}
}

func hasLine(content []byte, prefix string) bool {
	s := bufio.NewScanner(bytes.NewReader(content))
	for s.Scan() {
		if strings.HasPrefix(s.Text(), prefix) {
			return true
		}
	}
	return false
}

func sha256File(t *testing.T, name string) [sha256.Size]byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// extract unpacks an archive into a new directory, for layout.FromPath.
func extract(t *testing.T, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
