package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/internal/version"
)

var (
	env    *testenv.Env
	binary string
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{}, func(e *testenv.Env) {
		env = e
		dir, err := os.MkdirTemp("", "lbstack-bin")
		if err != nil {
			panic(err)
		}
		binary = filepath.Join(dir, "lbstack")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			panic(fmt.Sprintf("building lbstack: %v\n%s", err, out))
		}
	})
}

func TestHelp(t *testing.T) {
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("lbstack --help: %v\n%s", err, out)
	}
	for _, c := range []string{"operator", "controller", "speaker"} {
		if !strings.Contains(string(out), c) {
			t.Errorf("usage does not list %s:\n%s", c, out)
		}
		out, err := exec.Command(binary, c, "--help").CombinedOutput()
		if err != nil {
			t.Errorf("lbstack %s --help: %v\n%s", c, err, out)
		}
		for _, f := range []string{"-log-level", "-log-format", "-kubeconfig", "-metrics-bind-address", "-metrics-secure", "-metrics-cert-dir", "-health-probe-bind-address"} {
			if !strings.Contains(string(out), f) {
				t.Errorf("lbstack %s --help does not document %s", c, f)
			}
		}
	}
}

// TestVersion: `lbstack version` prints the version on stdout.
func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").Output()
	if err != nil {
		t.Fatalf("lbstack version: %v", err)
	}
	if want := "lbstack " + version.Version + " (go"; !strings.HasPrefix(string(out), want) {
		t.Errorf("lbstack version printed %q, want %q...", out, want)
	}
}

func TestBadUsage(t *testing.T) {
	for name, args := range map[string][]string{
		"no command":             nil,
		"unknown command":        {"frobnicate"},
		"bad log level":          {"controller", "--log-level=loud"},
		"bad log format":         {"controller", "--log-format=xml"},
		"unknown flag":           {"speaker", "--no-such-flag"},
		"version with arguments": {"version", "--short"},
	} {
		t.Run(name, func(t *testing.T) {
			err := exec.Command(binary, args...).Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("lbstack %v: got %v, want exit code 2", args, err)
			}
		})
	}
}

func portOf(t *testing.T, addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestComponentsStopOnSIGTERM runs each component against the real API
// server, waits until it reports ready, reads its metrics as Prometheus
// would (HTTPS, the token of a ServiceAccount bound to the metrics-reader
// ClusterRole: every component serves them securely by default), sends
// SIGTERM and expects a clean exit with JSON logs.
func TestComponentsStopOnSIGTERM(t *testing.T) {
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	token := env.MetricsToken(t, "default", "prometheus", true)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"operator", []string{"--leader-election-namespace=default", "--namespace=default", "--webhook-port=" + portOf(t, testenv.FreeAddr(t)), "--webhook-cert-dir=" + t.TempDir()}},
		{"controller", []string{"--leader-election-namespace=default"}},
		{"speaker", []string{"--node-name=node-a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			probe, metrics := testenv.FreeAddr(t), testenv.FreeAddr(t)
			args := append([]string{c.name, "--kubeconfig", kubeconfig, "--metrics-bind-address=" + metrics, "--health-probe-bind-address=" + probe}, c.args...)
			cmd := exec.Command(binary, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() { _ = cmd.Process.Kill() })

			deadline := time.Now().Add(30 * time.Second)
			for {
				resp, err := http.Get("http://" + probe + "/readyz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
				}
				select {
				case err := <-done:
					t.Fatalf("%s exited before becoming ready: %v\n%s", c.name, err, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s not ready after 30s\n%s", c.name, stderr.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			// Every component says what it is on its metrics endpoint
			// (which may open a moment after the readiness endpoint).
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code, body, err := testenv.ScrapeMetrics(ctx, metrics, token)
			for err != nil && ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
				code, body, err = testenv.ScrapeMetrics(ctx, metrics, token)
			}
			if err != nil || code != http.StatusOK {
				t.Fatalf("scraping %s's metrics with a metrics-reader token: status %d, %v\n%s", c.name, code, err, body)
			}
			if want := `lbstack_build_info{component="` + c.name + `",goversion="`; !strings.Contains(body, want) {
				t.Errorf("%s's metrics have no %s...", c.name, want)
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s exited with %v after SIGTERM\n%s", c.name, err, stderr.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s still running 20s after SIGTERM\n%s", c.name, stderr.String())
			}
			// Every log line is JSON with a level and a message.
			sc := bufio.NewScanner(&stderr)
			lines := 0
			for sc.Scan() {
				var entry map[string]any
				if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
					t.Fatalf("log line is not JSON: %q", sc.Text())
				}
				if entry["level"] == nil || entry["msg"] == nil {
					t.Fatalf("log line lacks level or msg: %q", sc.Text())
				}
				lines++
			}
			if lines == 0 {
				t.Fatalf("%s logged nothing", c.name)
			}
		})
	}
}
