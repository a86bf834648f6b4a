package version

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestVersionMatchesTheBundle: without -ldflags the binary says the
// version the OLM bundle (BUNDLE_VERSION in the Makefile) describes.
func TestVersionMatchesTheBundle(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^BUNDLE_VERSION \?= (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no BUNDLE_VERSION in the Makefile")
	}
	if want := "v" + string(m[1]); Version != want {
		t.Errorf("Version %q, the bundle's %q", Version, want)
	}
	if !strings.HasPrefix(String(), "lbstack "+Version+" (go") {
		t.Errorf("String() = %q", String())
	}
}

// TestBuildInfo: the gauge is 1 with the component and version labels.
func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(BuildInfo("speaker")); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "lbstack_build_info" || len(mfs[0].Metric) != 1 || mfs[0].Metric[0].GetGauge().GetValue() != 1 {
		t.Fatalf("gathered %v", mfs)
	}
	labels := map[string]string{}
	for _, l := range mfs[0].Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["component"] != "speaker" || labels["version"] != Version || labels["goversion"] == "" {
		t.Errorf("labels %v", labels)
	}
}
