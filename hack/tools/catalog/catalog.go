package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/operator-framework/operator-registry/alpha/declcfg"
	"github.com/operator-framework/operator-registry/alpha/model"
	"github.com/operator-framework/operator-registry/alpha/property"
)

// catalogFileName is the file of a package in the catalog, as
// <catalog>/<package>/catalog.yaml, the layout `opm` documents.
const catalogFileName = "catalog.yaml"

// options are the command line.
type options struct {
	bundleDir    string
	catalogDir   string
	dockerfile   string
	opmImage     string
	image        string
	replaces     string
	skipRange    string
	validateOnly bool
}

// run renders the catalog of the bundle, writes it (unless validating only)
// and checks what is on disk, returning a one-line summary.
func run(ctx context.Context, o options) (string, error) {
	want, err := renderCatalog(ctx, renderInput{
		BundleDir:     o.bundleDir,
		ImageTemplate: o.image,
		Replaces:      o.replaces,
		SkipRange:     o.skipRange,
	})
	if err != nil {
		return "", err
	}
	wantYAML, err := catalogYAML(want)
	if err != nil {
		return "", err
	}
	pkg, b := want.Packages[0], want.Bundles[0]
	catalogFile := filepath.Join(o.catalogDir, pkg.Name, catalogFileName)

	var wantDockerfile []byte
	if o.dockerfile != "" {
		// As `opm generate dockerfile`: ADD the catalog directory, relative to
		// the Dockerfile's directory (the build context).
		indexDir, err := filepath.Rel(filepath.Dir(o.dockerfile), o.catalogDir)
		if err != nil {
			return "", err
		}
		if wantDockerfile, err = dockerfile(o.opmImage, filepath.ToSlash(indexDir)); err != nil {
			return "", err
		}
	}

	if !o.validateOnly {
		if err := os.MkdirAll(filepath.Dir(catalogFile), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(catalogFile, wantYAML, 0o644); err != nil {
			return "", err
		}
		if o.dockerfile != "" {
			if err := os.WriteFile(o.dockerfile, wantDockerfile, 0o644); err != nil {
				return "", err
			}
		}
	}

	var errs []error
	if err := validateCatalog(ctx, o.catalogDir, want, wantYAML); err != nil {
		errs = append(errs, err)
	}
	if o.dockerfile != "" {
		got, err := os.ReadFile(o.dockerfile)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !bytes.Equal(got, wantDockerfile):
			errs = append(errs, fmt.Errorf("%s is not what `opm generate dockerfile` writes for %s from %s: %s",
				o.dockerfile, o.catalogDir, o.opmImage, firstDiff(got, wantDockerfile)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("%w\n(regenerate with `make catalog`)", err)
	}
	return fmt.Sprintf("catalog %s is valid and current with %s: package %s, bundle %s (image %s) in channel(s) %s, default %s",
		o.catalogDir, o.bundleDir, pkg.Name, b.Name, b.Image, strings.Join(channelNames(want), ","), pkg.DefaultChannel), nil
}

// validateCatalog checks the catalog in dir as `opm validate` does (every file
// loads, the model converts and validates) and that it is want, the catalog
// the current bundle renders (wantYAML), so that a stale catalog fails.
func validateCatalog(ctx context.Context, dir string, want *declcfg.DeclarativeConfig, wantYAML []byte) error {
	cfg, err := declcfg.LoadFS(ctx, os.DirFS(dir))
	if err != nil {
		return fmt.Errorf("loading the catalog %s: %w", dir, err)
	}
	m, err := declcfg.ConvertToModel(*cfg)
	if err != nil {
		return fmt.Errorf("the catalog %s is invalid: %w", dir, err)
	}
	if err := checkBundle(m, want); err != nil {
		return fmt.Errorf("the catalog %s is stale: %w", dir, err)
	}
	// Anything else that differs (a manifest, an image, another file).
	got, err := catalogYAML(cfg)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, wantYAML) {
		return fmt.Errorf("the catalog %s is stale: it is not what the bundle renders: %s", dir, firstDiff(got, wantYAML))
	}
	return nil
}

// checkBundle checks that the catalog m has the package, default channel,
// bundle version and channels of want, with messages that say which.
func checkBundle(m model.Model, want *declcfg.DeclarativeConfig) error {
	pkg, b := want.Packages[0], want.Bundles[0]
	props, err := property.Parse(b.Properties)
	if err != nil || len(props.Packages) != 1 {
		return fmt.Errorf("reading the package property of %s: %v", b.Name, err)
	}
	version := props.Packages[0].Version

	mpkg, ok := m[pkg.Name]
	if !ok {
		return fmt.Errorf("it has no package %q (it has %s)", pkg.Name, strings.Join(slices.Sorted(maps.Keys(m)), ", "))
	}
	var errs []error
	if mpkg.DefaultChannel.Name != pkg.DefaultChannel {
		errs = append(errs, fmt.Errorf("the default channel is %q, the bundle's is %q", mpkg.DefaultChannel.Name, pkg.DefaultChannel))
	}
	var in []string
	all := map[string]bool{}
	for name, ch := range mpkg.Channels {
		for bn, mb := range ch.Bundles {
			all[fmt.Sprintf("%s (%s)", bn, mb.Version)] = true
		}
		mb, ok := ch.Bundles[b.Name]
		if !ok {
			continue
		}
		in = append(in, name)
		if mb.Version.String() != version {
			errs = append(errs, fmt.Errorf("bundle %s in channel %s has version %s, the bundle's is %s", b.Name, name, mb.Version, version))
		}
	}
	slices.Sort(in)
	switch wantIn := channelNames(want); {
	case len(in) == 0:
		errs = append(errs, fmt.Errorf("it has no bundle %s (version %s); it has %s", b.Name, version, strings.Join(slices.Sorted(maps.Keys(all)), ", ")))
	case !slices.Equal(in, wantIn):
		errs = append(errs, fmt.Errorf("bundle %s is in channel(s) %s, the bundle's are %s", b.Name, strings.Join(in, ","), strings.Join(wantIn, ",")))
	}
	return errors.Join(errs...)
}

// channelNames returns the sorted names of the channels of cfg.
func channelNames(cfg *declcfg.DeclarativeConfig) []string {
	var names []string
	for _, c := range cfg.Channels {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return names
}

// firstDiff describes the first line where got and want differ.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		if gl, wl := lineAt(g, i), lineAt(w, i); gl != wl {
			return fmt.Sprintf("line %d is %s, want %s", i+1, gl, wl)
		}
	}
	return "they differ"
}

// lineAt returns line i of lines quoted and shortened to fit a message, or
// "the end".
func lineAt(lines []string, i int) string {
	if i >= len(lines) {
		return "the end"
	}
	const maxLen = 120
	l := lines[i]
	if len(l) > maxLen {
		l = l[:maxLen] + "..."
	}
	return fmt.Sprintf("%q", l)
}
