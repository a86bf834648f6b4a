package realcluster

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ArchiveImageName returns the image name an OCI image archive's
// index.json gives its image (the annotation containerd names the
// image by on import).
func ArchiveImageName(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s has no index.json", path)
		}
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", path, err)
		}
		if h.Name != "index.json" && h.Name != "./index.json" {
			continue
		}
		var idx struct {
			Annotations map[string]string `json:"annotations"`
			Manifests   []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&idx); err != nil {
			return "", fmt.Errorf("parsing %s index.json: %w", path, err)
		}
		all := []map[string]string{idx.Annotations}
		for _, m := range idx.Manifests {
			all = append(all, m.Annotations)
		}
		for _, a := range all {
			for _, k := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
				if v := a[k]; v != "" {
					return v, nil
				}
			}
		}
		return "", fmt.Errorf("%s index.json names no image", path)
	}
}
