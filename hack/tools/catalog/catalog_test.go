package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/operator-framework/operator-registry/alpha/action"
	"github.com/operator-framework/operator-registry/alpha/declcfg"
	"github.com/operator-framework/operator-registry/alpha/property"
	"github.com/sirupsen/logrus"
)

// repoBundle is the operator's bundle, rendered by every test (copied when
// a test changes it).
const repoBundle = "../../../bundle"

func TestMain(m *testing.M) {
	logrus.SetOutput(io.Discard) // as main: the bundle parser's chatter
	os.Exit(m.Run())
}

func testOptions(t *testing.T, bundleDir string) options {
	t.Helper()
	root := t.TempDir()
	return options{
		bundleDir:  bundleDir,
		catalogDir: filepath.Join(root, "catalog"),
		dockerfile: filepath.Join(root, "catalog.Dockerfile"),
		opmImage:   defaultOPMImage,
		image:      "example.com/lbstack-bundle:v{{.Version}}",
	}
}

func TestGenerate(t *testing.T) {
	ctx := context.Background()
	o := testOptions(t, repoBundle)
	o.replaces = "lbstack.v0.0.9"
	if _, err := run(ctx, o); err != nil {
		t.Fatalf("generating: %v", err)
	}
	cfg, err := declcfg.LoadFS(ctx, os.DirFS(o.catalogDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Packages) != 1 || len(cfg.Bundles) != 1 || len(cfg.Channels) == 0 {
		t.Fatalf("got %d packages, %d channels, %d bundles; want 1, at least 1, 1", len(cfg.Packages), len(cfg.Channels), len(cfg.Bundles))
	}
	pkg, b := cfg.Packages[0], cfg.Bundles[0]
	if pkg.Name != "lbstack" || pkg.Icon == nil || pkg.Description == "" {
		t.Errorf("package %s: want lbstack with the CSV's icon and description, got icon %v, description %q", pkg.Name, pkg.Icon, pkg.Description)
	}
	for _, c := range cfg.Channels {
		if len(c.Entries) != 1 || c.Entries[0].Name != b.Name || c.Entries[0].Replaces != o.replaces {
			t.Errorf("channel %s: entries %+v, want %s replacing %s", c.Name, c.Entries, b.Name, o.replaces)
		}
	}

	props, err := property.Parse(b.Properties)
	if err != nil {
		t.Fatal(err)
	}
	if len(props.Packages) != 1 {
		t.Fatalf("bundle %s: %d olm.package properties, want 1", b.Name, len(props.Packages))
	}
	if want := "example.com/lbstack-bundle:v" + props.Packages[0].Version; b.Image != want {
		t.Errorf("bundle image %q, want %q", b.Image, want)
	}
	if len(props.GVKs) == 0 || len(props.CSVMetadatas) != 1 || len(props.BundleObjects) != 0 {
		t.Errorf("bundle %s: %d olm.gvk, %d olm.csv.metadata, %d olm.bundle.object properties; want some, 1, 0",
			b.Name, len(props.GVKs), len(props.CSVMetadatas), len(props.BundleObjects))
	}
	if !slices.Contains(b.RelatedImages, declcfg.RelatedImage{Image: b.Image}) {
		t.Errorf("relatedImages %+v do not have the bundle image %s", b.RelatedImages, b.Image)
	}

	df, err := os.ReadFile(o.dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM " + defaultOPMImage, "ADD catalog /configs", "LABEL operators.operatorframework.io.index.configs.v1=/configs"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("catalog.Dockerfile has no %q:\n%s", want, df)
		}
	}
}

// TestValidate generates a catalog from the bundle, then validates it
// against a changed bundle or a changed catalog.
func TestValidate(t *testing.T) {
	// The bundle's name and version, whatever bundle/ is at.
	cur, err := renderCatalog(context.Background(), renderInput{BundleDir: repoBundle, ImageTemplate: "example.com/b"})
	if err != nil {
		t.Fatal(err)
	}
	props, err := property.Parse(cur.Bundles[0].Properties)
	if err != nil || len(props.Packages) != 1 {
		t.Fatalf("reading the bundle's version: %v", err)
	}
	name, version := cur.Bundles[0].Name, props.Packages[0].Version

	tests := map[string]struct {
		// edit changes the copy of the bundle, or the generated files.
		edit    func(t *testing.T, o options)
		wantErr string
	}{
		"current": {edit: func(*testing.T, options) {}},
		"new version": {
			edit: func(t *testing.T, o options) {
				replaceIn(t, filepath.Join(o.bundleDir, "manifests", "lbstack.clusterserviceversion.yaml"), version, "99.0.0")
			},
			wantErr: "it has no bundle lbstack.v99.0.0 (version 99.0.0); it has " + name + " (" + version + ")",
		},
		"new channel": {
			edit: func(t *testing.T, o options) {
				replaceIn(t, filepath.Join(o.bundleDir, "metadata", "annotations.yaml"), "channels.v1: alpha", "channels.v1: alpha,beta")
			},
			wantErr: "bundle " + name + " is in channel(s) alpha, the bundle's are alpha,beta",
		},
		"new default channel": {
			edit: func(t *testing.T, o options) {
				path := filepath.Join(o.bundleDir, "metadata", "annotations.yaml")
				replaceIn(t, path, "channels.v1: alpha", "channels.v1: alpha,stable")
				replaceIn(t, path, "default.v1: alpha", "default.v1: stable")
			},
			wantErr: `the default channel is "alpha", the bundle's is "stable"`,
		},
		"changed CSV": {
			edit: func(t *testing.T, o options) {
				replaceIn(t, filepath.Join(o.bundleDir, "manifests", "lbstack.clusterserviceversion.yaml"), "minKubeVersion:", "minKubeVersion: 1.99.0\n  x:")
			},
			wantErr: "it is not what the bundle renders",
		},
		"extra bundle in the catalog": {
			edit: func(t *testing.T, o options) {
				replaceIn(t, filepath.Join(o.catalogDir, "lbstack", catalogFileName),
					"entries:\n- name: "+name+"\n", "entries:\n- name: lbstack.v0.0.9\n- name: "+name+"\n  replaces: lbstack.v0.0.9\n")
				extra := `{"schema": "olm.bundle", "name": "lbstack.v0.0.9", "package": "lbstack", "image": "example.com/old",
					"properties": [{"type": "olm.package", "value": {"packageName": "lbstack", "version": "0.0.9"}}]}`
				if err := os.WriteFile(filepath.Join(o.catalogDir, "lbstack", "old.json"), []byte(extra), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "it is not what the bundle renders",
		},
		"invalid catalog": {
			edit: func(t *testing.T, o options) {
				replaceIn(t, filepath.Join(o.catalogDir, "lbstack", catalogFileName), "defaultChannel: alpha", "defaultChannel: nowhere")
			},
			wantErr: "is invalid",
		},
		"edited Dockerfile": {
			edit: func(t *testing.T, o options) {
				replaceIn(t, o.dockerfile, defaultOPMImage, "quay.io/operator-framework/opm:latest")
			},
			wantErr: "catalog.Dockerfile is not what `opm generate dockerfile` writes",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			bundleDir := filepath.Join(t.TempDir(), "bundle")
			if err := os.CopyFS(bundleDir, os.DirFS(repoBundle)); err != nil {
				t.Fatal(err)
			}
			o := testOptions(t, bundleDir)
			if _, err := run(ctx, o); err != nil {
				t.Fatalf("generating: %v", err)
			}
			tc.edit(t, o)
			o.validateOnly = true
			_, err := run(ctx, o)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("validating: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("validating: got error %v, want one with %q", err, tc.wantErr)
			}
		})
	}
}

// TestOffline checks that the registry refuses an image reference rather
// than pulling it.
func TestOffline(t *testing.T) {
	_, err := action.Render{Refs: []string{"example.com/lbstack-bundle:v0.1.0"}, Registry: offlineRegistry{}}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not pulling example.com/lbstack-bundle:v0.1.0") {
		t.Fatalf("rendering an image reference: got error %v, want a refusal to pull", err)
	}
}

func replaceIn(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(data), old, new)), 0o644); err != nil {
		t.Fatal(err)
	}
}
