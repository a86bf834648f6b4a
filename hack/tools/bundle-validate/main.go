// Command bundle-validate checks an OLM bundle directory offline, with the
// same validators as `operator-sdk bundle validate --select-optional
// suite=operatorframework`, and the bundle format checks (metadata/
// annotations.yaml, and the labels of bundle.Dockerfile when given) that
// operator-sdk delegates to operator-registry. It never pulls an image and
// never needs a cluster.
//
//	bundle-validate [-dockerfile bundle.Dockerfile] [-strict] [-ignore-warning TEXT]... ./bundle
//
// It prints every error and warning and exits 1 on an error (with -strict,
// on a warning too, except those containing an -ignore-warning text, which
// it prints as ignored), 2 on bad usage.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	"github.com/operator-framework/api/pkg/validation/errors"
	"sigs.k8s.io/yaml"
)

const (
	mediaTypeKey      = "operators.operatorframework.io.bundle.mediatype.v1"
	manifestsKey      = "operators.operatorframework.io.bundle.manifests.v1"
	metadataKey       = "operators.operatorframework.io.bundle.metadata.v1"
	packageKey        = "operators.operatorframework.io.bundle.package.v1"
	channelsKey       = "operators.operatorframework.io.bundle.channels.v1"
	defaultChannelKey = "operators.operatorframework.io.bundle.channel.default.v1"
)

func main() {
	dockerfile := flag.String("dockerfile", "", "bundle.Dockerfile whose LABELs must match metadata/annotations.yaml")
	strict := flag.Bool("strict", false, "fail on warnings too")
	var ignore stringList
	flag.Var(&ignore, "ignore-warning", "with -strict, do not fail on warnings containing this text (repeatable)")
	k8sVersion := flag.String("k8s-version", "", "Kubernetes version to check for removed APIs (default: the CSV's minKubeVersion)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] BUNDLE_DIR\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	dir := flag.Arg(0)

	var errs, warns []string
	addResults := func(results []errors.ManifestResult) {
		for _, r := range results {
			for _, e := range r.Errors {
				errs = append(errs, e.Error())
			}
			for _, w := range r.Warnings {
				warns = append(warns, w.Error())
			}
		}
	}

	errs = append(errs, checkFormat(dir, *dockerfile)...)

	bundle, err := manifests.GetBundleFromDir(dir)
	if err != nil {
		errs = append(errs, fmt.Sprintf("loading the bundle from %s: %v", dir, err))
	}
	if bundle != nil {
		// The default validators, as `operator-sdk bundle validate`.
		addResults(validation.DefaultBundleValidators.Validate(bundle.ObjectsToValidate()...))
		// The operatorframework suite of optional validators.
		optional := map[string]string{}
		if *k8sVersion != "" {
			optional["k8s-version"] = *k8sVersion
		}
		addResults(validation.OperatorHubV2Validator.Validate(bundle, optional))
		addResults(validation.StandardCapabilitiesValidator.Validate(bundle))
		addResults(validation.StandardCategoriesValidator.Validate(bundle))
		addResults(validation.AlphaDeprecatedAPIsValidator.Validate(bundle, optional))
		addResults(validation.GoodPracticesValidator.Validate(bundle))
	}

	var failing []string
	for _, w := range warns {
		if ignore.matches(w) {
			fmt.Printf("WARNING (ignored): %s\n", w)
			continue
		}
		fmt.Printf("WARNING: %s\n", w)
		failing = append(failing, w)
	}
	for _, e := range errs {
		fmt.Printf("ERROR: %s\n", e)
	}
	switch {
	case len(errs) > 0:
		fmt.Printf("bundle %s: %d error(s), %d warning(s)\n", dir, len(errs), len(warns))
		os.Exit(1)
	case *strict && len(failing) > 0:
		fmt.Printf("bundle %s: %d warning(s), failing with -strict\n", dir, len(failing))
		os.Exit(1)
	}
	fmt.Printf("bundle %s is valid (%d warning(s))\n", dir, len(warns))
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ", ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func (l stringList) matches(s string) bool {
	for _, v := range l {
		if strings.Contains(s, v) {
			return true
		}
	}
	return false
}

// checkFormat checks the registry+v1 bundle layout: metadata/annotations.yaml
// names the manifests/ and metadata/ folders, a package and channels, the
// folders exist, and bundle.Dockerfile (when given) carries the same labels.
func checkFormat(dir, dockerfile string) []string {
	var errs []string
	data, err := os.ReadFile(filepath.Join(dir, "metadata", "annotations.yaml"))
	if err != nil {
		return []string{fmt.Sprintf("reading the bundle annotations: %v", err)}
	}
	var file struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := yaml.UnmarshalStrict(data, &file); err != nil {
		return []string{fmt.Sprintf("parsing metadata/annotations.yaml: %v", err)}
	}
	ann := file.Annotations
	want := map[string]string{mediaTypeKey: "registry+v1", manifestsKey: "manifests/", metadataKey: "metadata/"}
	for k, v := range want {
		if ann[k] != v {
			errs = append(errs, fmt.Sprintf("metadata/annotations.yaml: %s is %q, want %q", k, ann[k], v))
		}
	}
	for _, k := range []string{packageKey, channelsKey} {
		if ann[k] == "" {
			errs = append(errs, fmt.Sprintf("metadata/annotations.yaml: %s is missing", k))
		}
	}
	if def := ann[defaultChannelKey]; def != "" {
		found := false
		for _, c := range strings.Split(ann[channelsKey], ",") {
			found = found || strings.TrimSpace(c) == def
		}
		if !found {
			errs = append(errs, fmt.Sprintf("metadata/annotations.yaml: default channel %q is not among the channels %q", def, ann[channelsKey]))
		}
	}
	for _, sub := range []string{"manifests", "metadata"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Sprintf("the bundle has no %s/ folder", sub))
		}
	}
	if dockerfile == "" {
		return errs
	}
	labels, err := dockerfileLabels(dockerfile)
	if err != nil {
		return append(errs, err.Error())
	}
	keys := make([]string, 0, len(ann))
	for k := range ann {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if labels[k] != ann[k] {
			errs = append(errs, fmt.Sprintf("%s: LABEL %s is %q, metadata/annotations.yaml says %q", dockerfile, k, labels[k], ann[k]))
		}
	}
	return errs
}

// dockerfileLabels returns the `LABEL key=value` lines of a Dockerfile.
func dockerfileLabels(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	labels := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "LABEL ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(rest), "=")
		if !ok {
			return nil, fmt.Errorf("%s: cannot read %q", path, line)
		}
		labels[k] = strings.Trim(v, `"`)
	}
	return labels, sc.Err()
}
