// Command catalog writes the file-based catalog (FBC) of the lbstack OLM
// package from the bundle directory, offline, and validates it:
//
//   - catalog/<package>/catalog.yaml: the olm.bundle exactly as `opm render
//     bundle --migrate-level bundle-object-to-csv-metadata
//     --alpha-image-ref-template IMAGE` renders it (operator-registry's own
//     render of a bundle directory, with the image reference from -image),
//     the olm.package (default channel from the bundle annotations,
//     description and icon from the ClusterServiceVersion) and one
//     olm.channel per channel of the bundle annotations with the bundle as
//     its entry;
//   - catalog.Dockerfile, as `opm generate dockerfile catalog` writes it.
//
// It then checks the catalog as `opm validate` does (load every file, build
// the model, validate it) and that it is the one the bundle renders, so a
// catalog left stale by a changed bundle fails. With -validate it writes
// nothing and only checks.
//
//	catalog [-bundle bundle] [-catalog catalog] [-dockerfile catalog.Dockerfile]
//	        [-image REF] [-replaces CSV] [-skip-range RANGE] [-validate]
//
// It never pulls an image and never needs a cluster. It exits 1 on an error,
// 2 on bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/sirupsen/logrus"
)

// defaultOPMImage is the opm image catalog.Dockerfile builds from: the opm of
// the operator-registry version this tool renders and validates with.
const defaultOPMImage = "quay.io/operator-framework/opm:v1.59.0"

func main() {
	var o options
	flag.StringVar(&o.bundleDir, "bundle", "bundle", "the registry+v1 bundle directory (manifests/, metadata/)")
	flag.StringVar(&o.catalogDir, "catalog", "catalog", "the catalog root directory; the package is written to <catalog>/<package>/catalog.yaml")
	flag.StringVar(&o.dockerfile, "dockerfile", "catalog.Dockerfile", "the catalog image's Dockerfile, next to the catalog directory (empty: none)")
	flag.StringVar(&o.opmImage, "opm-image", defaultOPMImage, "the opm image the catalog image is built from")
	flag.StringVar(&o.image, "image", "ghcr.io/lbstack/lbstack-bundle:v{{.Version}}",
		"the bundle image reference, a template as opm's --alpha-image-ref-template ({{.Package}}, {{.Name}}, {{.Version}})")
	flag.StringVar(&o.replaces, "replaces", "", "the bundle (CSV name) the channel entry replaces (default: the CSV's spec.replaces)")
	flag.StringVar(&o.skipRange, "skip-range", "", "the versions the channel entry skips (default: the CSV's olm.skipRange annotation)")
	flag.BoolVar(&o.validateOnly, "validate", false, "write nothing; check the catalog (and the Dockerfile) is valid and current with the bundle")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}

	// operator-registry's bundle parser logs through the global logrus
	// logger even when all goes well; errors come back as errors (opm render
	// discards these logs the same way).
	logrus.SetOutput(io.Discard)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	msg, err := run(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "catalog: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(msg)
}
