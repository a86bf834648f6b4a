// Package version is lbstack's version: what `lbstack version` prints and
// what every component exports as lbstack_build_info.
package version

import (
	"fmt"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// Version is lbstack's release. A release build sets it with
//
//	-ldflags "-X github.com/lbstack/lbstack/internal/version.Version=v1.2.3"
//
// and otherwise it is the version the repository's bundle describes
// (BUNDLE_VERSION in the Makefile; a test keeps them equal).
var Version = "v0.1.0"

// String is the one line `lbstack version` prints.
func String() string {
	return fmt.Sprintf("lbstack %s (%s %s/%s)", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// BuildInfo is the gauge lbstack_build_info of a component (always 1; the
// labels carry the facts), as kube-state-metrics and Prometheus's own
// build_info gauges do.
func BuildInfo(component string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lbstack_build_info",
		Help: "Always 1: the component, lbstack version and Go version of this process",
		ConstLabels: prometheus.Labels{"component": component, "version": Version, "goversion": runtime.Version(),
			"platform": runtime.GOOS + "/" + runtime.GOARCH},
	})
	g.Set(1)
	return g
}
