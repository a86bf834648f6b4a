package ociimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func testIndex(t *testing.T) Index {
	t.Helper()
	src := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(src, []byte("#!binary\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files := func(arch string) []File {
		return []File{
			{Path: "/usr/bin/tool", Mode: 0o755, Source: src},
			{Path: "/etc/arch", Content: []byte(arch + "\n")},
			{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
			{Path: "/etc/empty"},
		}
	}
	return Index{
		Name: "example.test/tools/tool:v1",
		Config: Config{
			Entrypoint:   []string{"/usr/bin/tool"},
			Cmd:          []string{"serve"},
			User:         "65532:65532",
			Env:          []string{"A=b"},
			WorkingDir:   "/tmp",
			Labels:       map[string]string{"x": "y"},
			ExposedPorts: []string{"8080/tcp"},
		},
		Images: []Image{
			{Platform: "linux/amd64", Files: files("amd64")},
			{Platform: "linux/arm64", Files: files("arm64")},
		},
	}
}

// tarEntry is the part of a tar header the tests compare.
type tarEntry struct {
	Name     string
	Typeflag byte
	Mode     int64
	Uid, Gid int
	Uname    string
	ModTime  int64
	Content  string
}

func readTar(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Uname, h.ModTime.Unix(), string(b)})
	}
}

// extract unpacks an archive into a new directory, for layout.FromPath.
func extract(t *testing.T, archive []byte) string {
	t.Helper()
	dir := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(archive))
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

func write(t *testing.T, idx Index) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, idx); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriteLayout(t *testing.T) {
	archive := write(t, testIndex(t))

	var names []string
	for _, e := range readTar(t, bytes.NewReader(archive)) {
		names = append(names, e.Name)
		if e.Uid != 0 || e.Gid != 0 || e.ModTime != 0 {
			t.Errorf("%s: uid %d gid %d mtime %d, want 0 0 0", e.Name, e.Uid, e.Gid, e.ModTime)
		}
	}
	if !strings.HasSuffix(strings.Join(names, " "), " index.json oci-layout") || names[0] != "blobs/" {
		t.Errorf("archive entries %v, want blobs/ first and index.json, oci-layout last", names)
	}

	p, err := layout.FromPath(extract(t, archive))
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
		t.Fatalf("index.json has %d manifests, want 1", len(topManifest.Manifests))
	}
	desc := topManifest.Manifests[0]
	wantAnnotations := map[string]string{
		AnnotationRefName:             "example.test/tools/tool:v1",
		AnnotationContainerdImageName: "example.test/tools/tool:v1",
	}
	if diff := cmp.Diff(wantAnnotations, desc.Annotations); diff != "" {
		t.Errorf("index.json annotations (-want +got):\n%s", diff)
	}
	if desc.MediaType != types.OCIImageIndex {
		t.Errorf("index.json names a %s, want an image index", desc.MediaType)
	}
	ii, err := top.ImageIndex(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(ii); err != nil {
		t.Errorf("validate.Index: %v", err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, m := range im.Manifests {
		platforms = append(platforms, m.Platform.String())
		if m.MediaType != types.OCIManifestSchema1 {
			t.Errorf("%s: media type %s", m.Platform, m.MediaType)
		}
		img, err := ii.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS+"/"+cf.Architecture != m.Platform.String() {
			t.Errorf("config of %s says %s/%s", m.Platform, cf.OS, cf.Architecture)
		}
		if !cf.Created.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: created %v, want Unix 0", m.Platform, cf.Created)
		}
		wantConfig := v1.Config{
			Entrypoint:   []string{"/usr/bin/tool"},
			Cmd:          []string{"serve"},
			User:         "65532:65532",
			Env:          []string{"A=b"},
			WorkingDir:   "/tmp",
			Labels:       map[string]string{"x": "y"},
			ExposedPorts: map[string]struct{}{"8080/tcp": {}},
		}
		if diff := cmp.Diff(wantConfig, cf.Config); diff != "" {
			t.Errorf("%s config (-want +got):\n%s", m.Platform, diff)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if len(layers) != 1 {
			t.Fatalf("%s: %d layers, want 1", m.Platform, len(layers))
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		got := readTar(t, rc)
		rc.Close()
		want := []tarEntry{
			{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "etc/arch", Typeflag: tar.TypeReg, Mode: 0o644, Content: m.Platform.Architecture + "\n"},
			{Name: "etc/empty", Typeflag: tar.TypeReg, Mode: 0o644},
			{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
			{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "usr/bin/tool", Typeflag: tar.TypeReg, Mode: 0o755, Content: "#!binary\n"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s layer (-want +got):\n%s", m.Platform, diff)
		}
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, platforms); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
}

func TestWriteIsReproducible(t *testing.T) {
	idx := testIndex(t)
	first := write(t, idx)
	if second := write(t, idx); !bytes.Equal(first, second) {
		t.Error("two writes of the same index differ")
	}

	// The order of the files does not matter.
	for i := range idx.Images {
		files := idx.Images[i].Files
		files[0], files[len(files)-1] = files[len(files)-1], files[0]
	}
	if reordered := write(t, idx); !bytes.Equal(first, reordered) {
		t.Error("reordering the files changed the archive")
	}

	// The epoch moves every timestamp, and only them.
	idx.Epoch = time.Unix(1700000000, 0)
	moved := write(t, idx)
	if bytes.Equal(first, moved) {
		t.Error("the epoch did not change the archive")
	}
	for _, e := range readTar(t, bytes.NewReader(moved)) {
		if e.ModTime != 1700000000 {
			t.Errorf("%s: mtime %d, want 1700000000", e.Name, e.ModTime)
		}
	}
}

func TestWriteFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "out", "tool.tar")
	idx := testIndex(t)
	if err := WriteFile(name, idx); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1000, 0)
	if err := os.Chtimes(name, old, old); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(name, idx); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(old) {
		t.Errorf("an unchanged archive was rewritten")
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, write(t, idx)) {
		t.Errorf("WriteFile and Write differ")
	}
	entries, err := os.ReadDir(filepath.Dir(name))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("WriteFile left %d files, want 1", len(entries))
	}
}

func TestWriteRejects(t *testing.T) {
	tests := map[string]func(*Index){
		"no name":            func(i *Index) { i.Name = "" },
		"no platform":        func(i *Index) { i.Images = nil },
		"bad platform":       func(i *Index) { i.Images[0].Platform = "" },
		"duplicate platform": func(i *Index) { i.Images[1].Platform = i.Images[0].Platform },
		"relative path":      func(i *Index) { i.Images[0].Files[0].Path = "etc/x" },
		"root path":          func(i *Index) { i.Images[0].Files[0].Path = "/" },
		"duplicate path":     func(i *Index) { i.Images[0].Files[1].Path = "/usr/bin/tool" },
		"file as parent":     func(i *Index) { i.Images[0].Files[1].Path = "/usr/bin/tool/x" },
		"directory content":  func(i *Index) { i.Images[0].Files[2].Content = []byte("x") },
		"missing source":     func(i *Index) { i.Images[0].Files[0].Source = "/nonexistent" },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			idx := testIndex(t)
			mutate(&idx)
			if err := Write(io.Discard, idx); err == nil {
				t.Error("Write succeeded")
			}
		})
	}
}

func TestParseSourceDateEpoch(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    int64
		wantErr bool
	}{
		"unset":    {in: "", want: 0},
		"seconds":  {in: "1700000000", want: 1700000000},
		"negative": {in: "-1", wantErr: true},
		"date":     {in: "2024-01-01", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseSourceDateEpoch(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (got.Unix() != tc.want || got.Location() != time.UTC) {
				t.Errorf("got %v, want Unix %d in UTC", got, tc.want)
			}
		})
	}
}
