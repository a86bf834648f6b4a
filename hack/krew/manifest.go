package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// defaultPlatforms are the platforms a release ships the plugin for.
var defaultPlatforms = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"}

// ReleaseURL is where a release's archive is downloaded from.
const ReleaseURL = "https://github.com/lbstack/lbstack/releases/download/v%s/%s"

// Archive is one platform's release archive.
type Archive struct {
	OS, Arch string
	// File is the archive's file name.
	File string
	Data []byte
}

func binaryName(goos string) string {
	if goos == "windows" {
		return "kubectl-lbstack.exe"
	}
	return "kubectl-lbstack"
}

// Pack makes the reproducible archive of one platform: the binary and
// LICENSE, modification time 0, root-owned, no gzip name or time.
func Pack(goos, goarch string, binary, license []byte) (Archive, error) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return Archive{}, err
	}
	tw := tar.NewWriter(gz)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{binaryName(goos), 0o755, binary}, {"LICENSE", 0o644, license}} {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return Archive{}, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return Archive{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return Archive{}, err
	}
	if err := gz.Close(); err != nil {
		return Archive{}, err
	}
	return Archive{OS: goos, Arch: goarch, File: fmt.Sprintf("kubectl-lbstack_%s_%s.tar.gz", goos, goarch), Data: buf.Bytes()}, nil
}

// Manifest is the krew plugin manifest (krew.googlecontainertools.github.com/v1alpha2)
// for the archives of one version.
func Manifest(version string, archives []Archive) ([]byte, error) {
	type selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	}
	type file struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	type platform struct {
		Selector selector `json:"selector"`
		URI      string   `json:"uri"`
		Sha256   string   `json:"sha256"`
		Files    []file   `json:"files"`
		Bin      string   `json:"bin"`
	}
	var ps []platform
	for _, a := range archives {
		sum := sha256.Sum256(a.Data)
		bin := binaryName(a.OS)
		ps = append(ps, platform{
			Selector: selector{MatchLabels: map[string]string{"os": a.OS, "arch": a.Arch}},
			URI:      fmt.Sprintf(ReleaseURL, version, a.File),
			Sha256:   hex.EncodeToString(sum[:]),
			Files:    []file{{From: bin, To: "."}, {From: "LICENSE", To: "."}},
			Bin:      bin,
		})
	}
	m := map[string]any{
		"apiVersion": "krew.googlecontainertools.github.com/v1alpha2",
		"kind":       "Plugin",
		"metadata":   map[string]any{"name": "lbstack"},
		"spec": map[string]any{
			"version":          "v" + version,
			"homepage":         "https://github.com/lbstack/lbstack",
			"shortDescription": "Which node announces a LoadBalancer IP, and why",
			"description": strings.Join([]string{
				"Reads what the lbstack load balancer records in the API and answers",
				"which node announces a Service's IP and why it moved (explain-ip,",
				"services --watch), how full the address pools are, how the BGP",
				"sessions are and whether the components are healthy; migrate turns",
				"a MetalLB configuration into a LoadBalancerStack.",
			}, "\n"),
			"platforms": ps,
		},
	}
	return yaml.Marshal(m)
}
