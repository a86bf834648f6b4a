package kubectlplugin

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/render"
	"github.com/lbstack/lbstack/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var (
	env *testenv.Env
	// kubeconfig is an administrator's kubeconfig for env.
	kubeconfig string
)

// now is the clock of every golden: testdata/cluster.yaml's times are
// relative to it.
var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{}, func(e *testenv.Env) {
		env = e
		dir, err := os.MkdirTemp("", "kubectl-lbstack-")
		if err != nil {
			panic(err)
		}
		if kubeconfig, err = e.WriteKubeconfig(dir); err != nil {
			panic(err)
		}
		if err := loadCluster(e.Client, "testdata/cluster.yaml"); err != nil {
			panic(err)
		}
	})
}

// loadCluster creates every object of file, then writes its status.
func loadCluster(c client.Client, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	ctx := context.Background()
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if len(u.Object) == 0 {
			continue
		}
		status, hasStatus := u.Object["status"]
		if err := c.Create(ctx, &u); err != nil {
			return err
		}
		if hasStatus {
			u.Object["status"] = status
			if err := c.Status().Update(ctx, &u); err != nil {
				return err
			}
		}
	}
}

// run runs the plugin as kubectl would, returning stdout, stderr and the
// exit code.
func run(t *testing.T, base Options, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	if base.Now == nil {
		base.Now = func() time.Time { return now }
	}
	code := Main(args, IO{In: strings.NewReader(""), Out: &out, Err: &errOut}, base)
	return out.String(), errOut.String(), code
}

// TestGolden runs every read command against the test cluster and
// compares its output with testdata/golden/<name>.
func TestGolden(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"status", []string{"status"}},
		{"status.json", []string{"status", "-o", "json"}},
		{"services", []string{"services"}},
		{"services-A", []string{"services", "-A"}},
		{"services-A.json", []string{"services", "-A", "-o", "json"}},
		{"services-team-b.yaml", []string{"services", "-n", "team-b", "-o", "yaml"}},
		{"services-empty-namespace", []string{"services", "-n", "lbstack-system"}},
		{"pools", []string{"pools"}},
		{"pools-services.yaml", []string{"pools", "--services", "-o", "yaml"}},
		{"peers", []string{"peers"}},
		{"peers-node-b.json", []string{"peers", "--node", "node-b", "-o", "json"}},
		{"explain-l2", []string{"explain-ip", "192.0.2.1"}},
		{"explain-l2.json", []string{"explain-ip", "192.0.2.1", "-o", "json"}},
		{"explain-bgp", []string{"explain-ip", "198.51.100.1"}},
		{"explain-local-v6", []string{"explain-ip", "2001:db8::5"}},
		{"explain-free", []string{"explain-ip", "192.0.2.9"}},
		{"explain-no-pool", []string{"explain-ip", "203.0.113.7"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--kubeconfig", kubeconfig, "--lbstack-namespace", "lbstack-system")
			out, errOut, code := run(t, Options{}, args...)
			if code != 0 {
				t.Fatalf("exit code %d, stderr:\n%s", code, errOut)
			}
			golden(t, filepath.Join("testdata", "golden", tc.name), out)
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/kubectlplugin -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

// TestFindsTheNamespace: without --lbstack-namespace the components are
// looked for where the speaker DaemonSet runs, and in lbstack-system when
// no DaemonSet is found.
func TestFindsTheNamespace(t *testing.T) {
	status := func() string {
		t.Helper()
		out, errOut, code := run(t, Options{}, "status", "--kubeconfig", kubeconfig, "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		return out
	}
	if out := status(); !strings.Contains(out, `"namespace": "lbstack-system"`) || !strings.Contains(out, `"leader": "lbstack-controller-6d4b9c7f8-x2x9q"`) {
		t.Errorf("no DaemonSet: want lbstack-system and its leader:\n%s", out)
	}
	labels := map[string]string{render.LabelName: render.AppName, render.LabelComponent: render.ComponentSpeaker}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: render.SpeakerName, Namespace: "team-b", Labels: labels},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "speaker", Image: "ghcr.io/lbstack/lbstack:v0.1.0"}}}}},
	}
	if err := env.Client.Create(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Client.Delete(context.Background(), ds) }()
	if out := status(); !strings.Contains(out, `"namespace": "team-b"`) {
		t.Errorf("speaker DaemonSet in team-b: want that namespace:\n%s", out)
	}
}

// TestErrors: what users get when the command line is wrong, the API
// server is unreachable, or RBAC forbids a read.
func TestErrors(t *testing.T) {
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{}, {"frobnicate"}, {"explain-ip"}, {"explain-ip", "not-an-ip"}, {"services", "-o", "xml"}, {"pools", "extra"}, {"migrate"}} {
			_, errOut, code := run(t, Options{}, args...)
			if code != 2 || errOut == "" {
				t.Errorf("%q: exit %d, stderr %q; want 2 with a message", args, code, errOut)
			}
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		cfg := &rest.Config{Host: "https://127.0.0.1:1"}
		_, errOut, code := run(t, Options{RESTConfig: cfg}, "services")
		if code != 1 || !strings.Contains(errOut, "cannot reach the Kubernetes API server at https://127.0.0.1:1") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("no kubeconfig", func(t *testing.T) {
		_, errOut, code := run(t, Options{}, "status", "--kubeconfig", filepath.Join(t.TempDir(), "missing"))
		if code != 1 || !strings.Contains(errOut, "loading the kubeconfig") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("forbidden", func(t *testing.T) {
		user, err := env.Environment().ControlPlane.AddUser(envtest.User{Name: "no-rights"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"status"}, {"services"}, {"pools"}, {"peers"}, {"explain-ip", "192.0.2.1"}} {
			_, errOut, code := run(t, Options{RESTConfig: user.Config()}, args...)
			if code != 1 || !strings.Contains(errOut, "RBAC forbids it") || !strings.Contains(errOut, `"no-rights"`) {
				t.Errorf("%q: exit %d, stderr %q; want the forbidden read named", args, code, errOut)
			}
		}
	})
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServicesWatch: --watch prints the Services, then a Service again
// when its announcement moves, and once more when it is deleted.
func TestServicesWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := env.Client
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName("watched")
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	svc := &unstructured.Unstructured{}
	svc.SetAPIVersion("v1")
	svc.SetKind("Service")
	svc.SetNamespace("watched")
	svc.SetName("watched")
	svc.Object["spec"] = map[string]any{"type": "LoadBalancer", "ports": []any{map[string]any{"port": int64(80)}}}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	done := make(chan int)
	go func() {
		done <- Main([]string{"services", "-n", "watched", "-w", "--kubeconfig", kubeconfig}, IO{Out: &out, Err: &out},
			Options{Context: ctx, Now: func() time.Time { return now }})
	}()
	waitFor := func(what string, cond func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond(out.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; output:\n%s", what, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("the first listing", func(s string) bool { return strings.Contains(s, "watched") && strings.Contains(s, "<pending>") })

	// The controller assigns an address, a speaker announces it.
	svc.Object["status"] = map[string]any{"loadBalancer": map[string]any{"ingress": []any{map[string]any{"ip": "2001:db8::7", "ipMode": "VIP"}}}}
	if err := c.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	waitFor("the assigned address", func(s string) bool { return strings.Contains(s, "2001:db8::7") })
	ann := &lbv1.ServiceAnnouncement{}
	ann.Namespace, ann.Name = "watched", "watched"
	if err := c.Create(ctx, ann); err != nil {
		t.Fatal(err)
	}
	ann.Status = lbv1.ServiceAnnouncementStatus{Service: "watched", Protocol: lbv1.ProtocolLayer2, IPs: []string{"2001:db8::7"},
		Nodes: []lbv1.AnnouncingNode{{Node: "node-b", Protocol: lbv1.ProtocolLayer2, Interface: "eth0", MAC: "02:00:00:00:00:0b", Since: metav1.NewTime(now)}}}
	if err := c.Status().Update(ctx, ann); err != nil {
		t.Fatal(err)
	}
	waitFor("the announcement", func(s string) bool { return strings.Contains(s, "node-b (eth0 02:00:00:00:00:0b)") })
	if err := c.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	waitFor("the deletion", func(s string) bool { return strings.Contains(s, "Deleted") })
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d after interrupt; output:\n%s", code, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--watch did not stop when interrupted")
	}
	// Each state once: no row printed twice in a row for the same content.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i := 1; i < len(lines); i++ {
		if lines[i] == lines[i-1] {
			t.Errorf("line printed twice: %q", lines[i])
		}
	}
	_ = c.Delete(context.Background(), ann)
}
