package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/lbstack/lbstack/internal/version"
)

// TestPackIsReproducible: the same input gives the same bytes, and the
// archive holds the executable binary and the licence.
func TestPackIsReproducible(t *testing.T) {
	a, err := Pack("linux", "amd64", []byte("binary"), []byte("license"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Pack("linux", "amd64", []byte("binary"), []byte("license"))
	if !bytes.Equal(a.Data, b.Data) {
		t.Fatal("two packs of the same input differ")
	}
	gz, err := gzip.NewReader(bytes.NewReader(a.Data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		got[h.Name] = string(data)
		if h.Name == "kubectl-lbstack" && h.Mode&0o111 == 0 {
			t.Errorf("binary mode %o is not executable", h.Mode)
		}
	}
	if got["kubectl-lbstack"] != "binary" || got["LICENSE"] != "license" {
		t.Errorf("archive holds %v", got)
	}
}

type manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		ShortDescription string `json:"shortDescription"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			Sha256 string `json:"sha256"`
			Bin    string `json:"bin"`
			Files  []struct {
				From, To string
			} `json:"files"`
		} `json:"platforms"`
	} `json:"spec"`
}

// checkManifest checks what krew requires of a manifest.
func checkManifest(t *testing.T, data []byte, wantVersion string) manifest {
	t.Helper()
	var m manifest
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "lbstack" {
		t.Errorf("header: %+v", m)
	}
	if m.Spec.Version != "v"+wantVersion {
		t.Errorf("version %q, want v%s", m.Spec.Version, wantVersion)
	}
	if m.Spec.ShortDescription == "" || len(m.Spec.Platforms) == 0 {
		t.Errorf("short description or platforms missing")
	}
	hexSum := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for _, p := range m.Spec.Platforms {
		os, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		if os == "" || arch == "" || !hexSum.MatchString(p.Sha256) || p.Bin != "kubectl-lbstack" {
			t.Errorf("platform %+v", p)
		}
		if !strings.HasSuffix(p.URI, "/v"+wantVersion+"/kubectl-lbstack_"+os+"_"+arch+".tar.gz") {
			t.Errorf("uri %q does not name the version and platform", p.URI)
		}
	}
	return m
}

// TestManifest: the manifest names each archive with its real sha256.
func TestManifest(t *testing.T) {
	a, _ := Pack("linux", "arm64", []byte("x"), []byte("l"))
	data, err := Manifest("1.2.3", []Archive{a})
	if err != nil {
		t.Fatal(err)
	}
	m := checkManifest(t, data, "1.2.3")
	sum := sha256.Sum256(a.Data)
	if m.Spec.Platforms[0].Sha256 != hex.EncodeToString(sum[:]) {
		t.Errorf("sha256 %s is not the archive's", m.Spec.Platforms[0].Sha256)
	}
}

// TestCommittedManifest: plugins/lbstack.yaml is a valid manifest of the
// current version for every release platform (make krew writes it).
func TestCommittedManifest(t *testing.T) {
	data, err := os.ReadFile("../../plugins/lbstack.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimPrefix(version.Version, "v")
	m := checkManifest(t, data, want)
	if len(m.Spec.Platforms) != len(defaultPlatforms) {
		t.Errorf("%d platforms, want %d", len(m.Spec.Platforms), len(defaultPlatforms))
	}
}
