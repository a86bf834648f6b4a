// Package metrics_test keeps lbstack's metrics, their documentation and
// the monitoring configuration in step: every metric the code registers is
// documented in docs/metrics.md, and the documentation, the alerting rules
// and the Grafana dashboard of config/prometheus name only metrics that
// exist. It also checks that the ServiceMonitors and PodMonitors select
// what the operator renders and installs.
package metrics_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/render"
	"github.com/lbstack/lbstack/internal/testenv"
)

const promPkg = "github.com/prometheus/client_golang/prometheus"

// optsTypes are client_golang's option structs whose Name is a metric's.
var optsTypes = map[string]bool{
	"Opts": true, "CounterOpts": true, "GaugeOpts": true, "HistogramOpts": true, "SummaryOpts": true,
	"CounterVecOpts": true, "GaugeVecOpts": true, "HistogramVecOpts": true, "SummaryVecOpts": true,
}

// codeMetrics returns the names of the metrics the repository's Go code
// (tests and separate tool modules aside) registers: the Name of every
// client_golang option struct and the first argument of every NewDesc. A
// name must be a string literal starting with lbstack_, so that nothing
// escapes this test.
func codeMetrics(t *testing.T) map[string]string {
	t.Helper()
	root := testenv.RepoRoot()
	names := map[string]string{} // name → where
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == root {
				return nil
			}
			if n := d.Name(); strings.HasPrefix(n, ".") || n == "bin" || n == "testdata" || n == "vendor" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module (hack/tools/...)
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		prom := ""
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == promPkg {
				prom = "prometheus"
				if imp.Name != nil {
					prom = imp.Name.Name
				}
			}
		}
		if prom == "" {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		add := func(e ast.Expr, what string) {
			pos := fset.Position(e.Pos())
			where := rel + ":" + strconv.Itoa(pos.Line)
			lit, ok := e.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: the name of %s is not a string literal; write the metric's full name there, so that this test finds it", where, what)
				return
			}
			name, _ := strconv.Unquote(lit.Value)
			if !strings.HasPrefix(name, "lbstack_") {
				t.Errorf("%s: metric %q is not named lbstack_<component>_...", where, name)
			}
			names[name] = where
		}
		isProm := func(e ast.Expr) (string, bool) {
			sel, ok := e.(*ast.SelectorExpr)
			if !ok {
				return "", false
			}
			x, ok := sel.X.(*ast.Ident)
			return sel.Sel.Name, ok && x.Name == prom
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				typ, ok := isProm(n.Type)
				if !ok || !optsTypes[typ] {
					return true
				}
				var name ast.Expr
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					switch k := kv.Key.(*ast.Ident); {
					case k == nil:
					case k.Name == "Name":
						name = kv.Value
					case k.Name == "Namespace" || k.Name == "Subsystem":
						t.Errorf("%s:%d: %s.%s sets %s; put the metric's full name in Name", rel, fset.Position(kv.Pos()).Line, prom, typ, k.Name)
					}
				}
				if name == nil {
					if !strings.HasSuffix(typ, "VecOpts") {
						t.Errorf("%s:%d: %s.%s without a Name", rel, fset.Position(n.Pos()).Line, prom, typ)
					}
					return true
				}
				add(name, prom+"."+typ)
			case *ast.CallExpr:
				if fn, ok := isProm(n.Fun); ok && fn == "NewDesc" && len(n.Args) > 0 {
					add(n.Args[0], prom+".NewDesc")
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The scan must see the metrics of every component.
	for _, want := range []string{"lbstack_build_info", "lbstack_operator_children_applied_total",
		"lbstack_controller_pool_addresses_total", "lbstack_speaker_members", "lbstack_speaker_bgp_session_up"} {
		if _, ok := names[want]; !ok {
			t.Fatalf("the scan of the Go code did not find %s; found %v", want, sorted(names))
		}
	}
	return names
}

var metricName = regexp.MustCompile(`lbstack_[a-z0-9_]*[a-z0-9]`)

// known says whether name is a metric of code, counting a histogram's or
// a summary's _bucket, _sum and _count series as its.
func known(code map[string]string, name string) bool {
	if _, ok := code[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if _, ok := code[base]; ok {
				return true
			}
		}
	}
	return false
}

// checkNames fails for every lbstack_ name in text that no code registers.
func checkNames(t *testing.T, code map[string]string, what, text string) []string {
	t.Helper()
	var found []string
	for _, n := range metricName.FindAllString(text, -1) {
		if !known(code, n) {
			t.Errorf("%s names %s, which no component exports", what, n)
		}
		found = append(found, n)
	}
	return found
}

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMetricsDocumented: docs/metrics.md has a table row for every metric
// the code registers, and names no metric that does not exist.
func TestMetricsDocumented(t *testing.T) {
	code := codeMetrics(t)
	doc := string(readFile(t, "docs/metrics.md"))
	checkNames(t, code, "docs/metrics.md", doc)
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(lbstack_[a-z0-9_]+)` \\| (counter|gauge|histogram|summary) \\|").FindAllStringSubmatch(doc, -1) {
		rows[m[1]] = true
	}
	for _, name := range sorted(code) {
		if !rows[name] {
			t.Errorf("%s (registered at %s) has no row | `%s` | type | labels | meaning | in docs/metrics.md", name, code[name], name)
		}
	}
}

// rule is one alerting rule of a PrometheusRule.
type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type prometheusRule struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval,omitempty"`
			Rules    []rule `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// TestAlerts: alerts.yaml is a PrometheusRule whose every rule is a
// complete alert (name, expression, for, severity, summary, description)
// over metrics that exist.
func TestAlerts(t *testing.T) {
	code := codeMetrics(t)
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(readFile(t, "config/prometheus/alerts.yaml"), &pr); err != nil {
		t.Fatalf("config/prometheus/alerts.yaml: %v", err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name == "" {
		t.Fatalf("config/prometheus/alerts.yaml is a %s %s named %q, want a monitoring.coreos.com/v1 PrometheusRule", pr.APIVersion, pr.Kind, pr.Metadata.Name)
	}
	seen := map[string]bool{}
	used := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a group needs a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			switch {
			case r.Alert == "":
				t.Errorf("group %s: a rule without an alert name (expr %q)", g.Name, r.Expr)
				continue
			case seen[r.Alert]:
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" || strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") ||
				strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("alert %s: empty or unbalanced expr %q", r.Alert, r.Expr)
			}
			if !regexp.MustCompile(`^[0-9]+[smh]$`).MatchString(r.For) {
				t.Errorf("alert %s: for %q, want a duration like 5m", r.Alert, r.For)
			}
			if s := r.Labels["severity"]; !slices.Contains([]string{"info", "warning", "critical"}, s) {
				t.Errorf("alert %s: severity %q, want info, warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs annotations summary and description", r.Alert)
			}
			for _, n := range checkNames(t, code, "alert "+r.Alert, r.Expr) {
				used[n] = true
			}
		}
	}
	// What the alerts were written to catch.
	for _, want := range []string{"lbstack_controller_pool_addresses_available", "lbstack_speaker_bgp_session_up", "lbstack_speaker_bfd_session_up",
		"lbstack_speaker_l2_conflicts_reported_total", "lbstack_speaker_members", "lbstack_controller_allocation_failures_total", "lbstack_controller_leader"} {
		if !used[want] {
			t.Errorf("no alert uses %s", want)
		}
	}
}

// TestDashboard: dashboard.json is a Grafana dashboard whose every target
// queries the datasource variable with an expression over metrics that
// exist.
func TestDashboard(t *testing.T) {
	code := codeMetrics(t)
	raw := readFile(t, "config/prometheus/dashboard.json")
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr       string         `json:"expr"`
				Datasource map[string]any `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("config/prometheus/dashboard.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("the dashboard has no title, uid or panels")
	}
	checkNames(t, code, "config/prometheus/dashboard.json", string(raw))
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.Datasource["uid"] != "${datasource}" {
				t.Errorf("panel %q: target %q does not query the datasource variable", p.Title, tg.Expr)
			}
			for _, n := range metricName.FindAllString(tg.Expr, -1) {
				used[n] = true
			}
		}
	}
	for _, want := range []string{"lbstack_controller_pool_addresses_assigned", "lbstack_controller_allocation_failures_total", "lbstack_speaker_l2_owned_addresses",
		"lbstack_speaker_l2_handovers_total", "lbstack_speaker_bgp_session_up", "lbstack_speaker_bfd_session_up", "lbstack_speaker_bgp_prefixes_advertised",
		"lbstack_speaker_members", "lbstack_build_info"} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
}

// TestMonitorsSelectTheComponents: the ServiceMonitors of
// config/prometheus select the metrics Services the operator renders (and
// the operator's own, which config/prometheus adds) by their labels and
// port name, over HTTPS; the PodMonitors select the pods likewise, with a
// token of an identity bound to config/default's metrics-reader ClusterRole.
func TestMonitorsSelectTheComponents(t *testing.T) {
	stack := &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "s"}}
	p := render.Params{Namespace: "lbstack-system", Image: "x", MemberlistKey: make([]byte, render.MemberlistKeySize)}
	var services, pods []*unstructured.Unstructured
	for _, o := range render.MetricsServices(stack, p) {
		services = append(services, toUnstructured(t, o))
	}
	pods = append(pods, podTemplate(t, toUnstructured(t, render.ControllerDeployment(stack, p))),
		podTemplate(t, toUnstructured(t, render.SpeakerDaemonSet(stack, p))))
	def := testenv.Kustomize(t, "config/default")
	reader := ""
	for _, o := range def {
		switch {
		case o.GetKind() == "Deployment":
			pods = append(pods, podTemplate(t, o))
		case o.GetKind() == "ClusterRole" && strings.HasSuffix(o.GetName(), "metrics-reader"):
			reader = o.GetName()
		}
	}
	if reader == "" {
		t.Fatal("config/default installs no metrics-reader ClusterRole")
	}
	prom := testenv.Kustomize(t, "config/prometheus")
	for _, o := range prom {
		if o.GetKind() == "Service" {
			services = append(services, o)
		}
		if o.GetNamespace() != "lbstack-system" {
			t.Errorf("config/prometheus: %s %s is in namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	var podmon []*unstructured.Unstructured
	for _, doc := range strings.Split(string(readFile(t, "config/prometheus/podmonitor.yaml")), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		podmon = append(podmon, u)
	}
	checkMonitors(t, "config/prometheus (ServiceMonitor)", prom, "ServiceMonitor", "endpoints", services, 3)
	checkMonitors(t, "podmonitor.yaml (PodMonitor)", podmon, "PodMonitor", "podMetricsEndpoints", pods, 3)
	for _, o := range podmon {
		if o.GetKind() == "ClusterRoleBinding" {
			if name, _, _ := unstructured.NestedString(o.Object, "roleRef", "name"); name != reader {
				t.Errorf("podmonitor.yaml binds ClusterRole %q, config/default installs %q", name, reader)
			}
		}
	}
}

// checkMonitors: each monitor of kind in objs selects at least one of
// targets (Services or pod templates) by its labels, scrapes a port the
// target names over HTTPS with a bearer token, and every target is
// selected; want is the number of monitors.
func checkMonitors(t *testing.T, what string, objs []*unstructured.Unstructured, kind, endpointsField string, targets []*unstructured.Unstructured, want int) {
	t.Helper()
	selected := make([]bool, len(targets))
	n := 0
	for _, m := range objs {
		if m.GetKind() != kind {
			continue
		}
		n++
		sel, _, _ := unstructured.NestedStringMap(m.Object, "spec", "selector", "matchLabels")
		eps, _ := field(m.Object, "spec", endpointsField).([]any)
		if len(sel) == 0 || len(eps) == 0 {
			t.Errorf("%s %s: no selector or endpoints", what, m.GetName())
			continue
		}
		for _, e := range eps {
			ep, _ := e.(map[string]any)
			if ep["scheme"] != "https" {
				t.Errorf("%s %s: scheme %v, want https (the components serve HTTPS)", what, m.GetName(), ep["scheme"])
			}
			_, file := ep["bearerTokenFile"]
			_, auth := ep["authorization"]
			if !file && !auth {
				t.Errorf("%s %s: no bearer token (the components answer 401 without one)", what, m.GetName())
			}
		}
		matched := false
		for i, tg := range targets {
			match := true
			for k, v := range sel {
				match = match && tg.GetLabels()[k] == v
			}
			if !match {
				continue
			}
			matched, selected[i] = true, true
			for _, e := range eps {
				if port, _ := e.(map[string]any)["port"].(string); !slices.Contains(portNames(tg), port) {
					t.Errorf("%s %s: scrapes port %q, the target's are %v", what, m.GetName(), port, portNames(tg))
				}
			}
		}
		if !matched {
			t.Errorf("%s %s selects nothing lbstack runs (%v)", what, m.GetName(), sel)
		}
	}
	if n != want {
		t.Errorf("%s: %d %ss, want %d (operator, controller, speaker)", what, n, kind, want)
	}
	for i, ok := range selected {
		if !ok {
			t.Errorf("%s: nothing scrapes %s %v", what, targets[i].GetKind(), targets[i].GetLabels())
		}
	}
}

// portNames are the names of a Service's ports or of a pod template's
// containers' ports.
func portNames(o *unstructured.Unstructured) []string {
	var names []string
	ports, _ := field(o.Object, "spec", "ports").([]any)
	containers, _ := field(o.Object, "spec", "containers").([]any)
	for _, c := range containers {
		cp, _ := field(c.(map[string]any), "ports").([]any)
		ports = append(ports, cp...)
	}
	for _, p := range ports {
		if name, ok := p.(map[string]any)["name"].(string); ok {
			names = append(names, name)
		}
	}
	return names
}

// field reads a field of a decoded object without copying it (kustomize's
// objects hold Go ints, which the unstructured helpers' deep copy refuses).
func field(obj map[string]any, path ...string) any {
	v, _, _ := unstructured.NestedFieldNoCopy(obj, path...)
	return v
}

func toUnstructured(t *testing.T, o any) *unstructured.Unstructured {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(b, &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// podTemplate returns a workload's pod template (labels and spec).
func podTemplate(t *testing.T, workload *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	tmpl, ok := field(workload.Object, "spec", "template").(map[string]any)
	if !ok {
		t.Fatalf("%s %s has no pod template", workload.GetKind(), workload.GetName())
	}
	return &unstructured.Unstructured{Object: tmpl}
}

func sorted(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
