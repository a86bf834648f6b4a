package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/operator-framework/api/pkg/operators/v1alpha1"
	"github.com/operator-framework/operator-registry/alpha/action"
	"github.com/operator-framework/operator-registry/alpha/action/migrations"
	"github.com/operator-framework/operator-registry/alpha/declcfg"
	"github.com/operator-framework/operator-registry/pkg/image"
	"github.com/operator-framework/operator-registry/pkg/lib/bundle"
	"sigs.k8s.io/yaml"
)

// csvMetadataMigration is the migration level of `opm render --migrate-level`
// that replaces the olm.bundle.object properties (every manifest, base64) by
// one olm.csv.metadata property, as catalogs are written today.
const csvMetadataMigration = "bundle-object-to-csv-metadata"

// skipRangeAnnotation is the CSV annotation OLM reads a skipRange from.
const skipRangeAnnotation = "olm.skipRange"

// renderInput is what a catalog is made from.
type renderInput struct {
	BundleDir string
	// ImageTemplate makes the bundle image reference, as opm's
	// --alpha-image-ref-template: {{.Package}}, {{.Name}} and {{.Version}}.
	ImageTemplate string
	// Replaces and SkipRange override the CSV's spec.replaces and olm.skipRange.
	Replaces  string
	SkipRange string
}

// annotations is the part of metadata/annotations.yaml a catalog needs.
type annotations struct {
	Package        string
	Channels       []string
	DefaultChannel string
}

// renderCatalog returns the catalog of the bundle in in.BundleDir: its
// olm.package, one olm.channel per channel of its annotations with the bundle
// as the entry, and its olm.bundle as `opm render` makes it. It reads only
// the bundle directory.
func renderCatalog(ctx context.Context, in renderInput) (*declcfg.DeclarativeConfig, error) {
	ann, err := readAnnotations(in.BundleDir)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New("image").Option("missingkey=error").Parse(in.ImageTemplate)
	if err != nil {
		return nil, fmt.Errorf("parsing the image reference template %q: %w", in.ImageTemplate, err)
	}
	migrate, err := migrations.NewMigrations(csvMetadataMigration)
	if err != nil {
		return nil, err
	}
	rendered, err := action.Render{
		Refs:             []string{in.BundleDir},
		Registry:         offlineRegistry{},
		AllowedRefMask:   action.RefBundleDir,
		ImageRefTemplate: tmpl,
		Migrations:       migrate,
	}.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("rendering the bundle: %w", err)
	}
	if n := len(rendered.Bundles); n != 1 {
		return nil, fmt.Errorf("rendering the bundle %s: got %d bundles, want 1", in.BundleDir, n)
	}
	b := rendered.Bundles[0]
	if b.Package != ann.Package {
		return nil, fmt.Errorf("the bundle %s is of package %q, its annotations say %q", b.Name, b.Package, ann.Package)
	}
	var csv v1alpha1.ClusterServiceVersion
	if err := json.Unmarshal([]byte(b.CsvJSON), &csv); err != nil {
		return nil, fmt.Errorf("reading the ClusterServiceVersion of %s: %w", b.Name, err)
	}

	pkg := declcfg.Package{
		Schema:         declcfg.SchemaPackage,
		Name:           ann.Package,
		DefaultChannel: ann.DefaultChannel,
		Description:    csv.Spec.Description,
	}
	if len(csv.Spec.Icon) > 0 {
		icon := csv.Spec.Icon[0]
		data, err := base64.StdEncoding.DecodeString(icon.Data)
		if err != nil {
			return nil, fmt.Errorf("decoding the icon of %s: %w", b.Name, err)
		}
		pkg.Icon = &declcfg.Icon{Data: data, MediaType: icon.MediaType}
	}

	entry := declcfg.ChannelEntry{
		Name:      b.Name,
		Replaces:  cmp.Or(in.Replaces, csv.Spec.Replaces),
		Skips:     csv.Spec.Skips,
		SkipRange: cmp.Or(in.SkipRange, csv.Annotations[skipRangeAnnotation]),
	}
	cfg := &declcfg.DeclarativeConfig{Packages: []declcfg.Package{pkg}, Bundles: []declcfg.Bundle{b}}
	for _, ch := range ann.Channels {
		cfg.Channels = append(cfg.Channels, declcfg.Channel{
			Schema:  declcfg.SchemaChannel,
			Name:    ch,
			Package: ann.Package,
			Entries: []declcfg.ChannelEntry{entry},
		})
	}
	return cfg, nil
}

// readAnnotations reads the package and channels of the bundle in dir.
func readAnnotations(dir string) (annotations, error) {
	path := filepath.Join(dir, bundle.MetadataDir, bundle.AnnotationsFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return annotations{}, fmt.Errorf("reading the bundle annotations: %w", err)
	}
	var file bundle.AnnotationMetadata
	if err := yaml.Unmarshal(data, &file); err != nil {
		return annotations{}, fmt.Errorf("parsing %s: %w", path, err)
	}
	a := annotations{
		Package:        file.Annotations[bundle.PackageLabel],
		DefaultChannel: file.Annotations[bundle.ChannelDefaultLabel],
	}
	for c := range strings.SplitSeq(file.Annotations[bundle.ChannelsLabel], ",") {
		if c = strings.TrimSpace(c); c != "" {
			a.Channels = append(a.Channels, c)
		}
	}
	var errs []error
	if a.Package == "" {
		errs = append(errs, fmt.Errorf("%s: %s is missing", path, bundle.PackageLabel))
	}
	if len(a.Channels) == 0 {
		errs = append(errs, fmt.Errorf("%s: %s is missing", path, bundle.ChannelsLabel))
	}
	if a.DefaultChannel == "" && len(a.Channels) == 1 {
		// OLM's rule for a bundle that names one channel and no default.
		a.DefaultChannel = a.Channels[0]
	}
	if a.DefaultChannel == "" {
		errs = append(errs, fmt.Errorf("%s: %s is missing and there is more than one channel", path, bundle.ChannelDefaultLabel))
	}
	return a, errors.Join(errs...)
}

// catalogYAML is the catalog file of cfg, as `opm render -o yaml` writes it.
func catalogYAML(cfg *declcfg.DeclarativeConfig) ([]byte, error) {
	var buf bytes.Buffer
	if err := declcfg.WriteYAML(*cfg, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// dockerfile is the catalog image's Dockerfile for the catalog directory
// indexDir, as `opm generate dockerfile` writes it.
func dockerfile(opmImage, indexDir string) ([]byte, error) {
	var buf bytes.Buffer
	err := action.GenerateDockerfile{
		BaseImage:    opmImage,
		BuilderImage: opmImage,
		IndexDir:     indexDir,
		Writer:       &buf,
	}.Run()
	return buf.Bytes(), err
}

// offlineRegistry refuses every image: the catalog is rendered from the
// bundle directory alone (action.Render needs a registry only for images).
type offlineRegistry struct{}

func (offlineRegistry) Pull(_ context.Context, ref image.Reference) error {
	return fmt.Errorf("not pulling %s: the catalog is rendered offline, from the bundle directory", ref)
}

func (offlineRegistry) Unpack(_ context.Context, ref image.Reference, _ string) error {
	return fmt.Errorf("not unpacking %s: the catalog is rendered offline", ref)
}

func (offlineRegistry) Labels(_ context.Context, ref image.Reference) (map[string]string, error) {
	return nil, fmt.Errorf("no labels for %s: the catalog is rendered offline", ref)
}

func (offlineRegistry) Destroy() error { return nil }
