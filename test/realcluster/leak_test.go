package realcluster_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/internal/render"
	"github.com/lbstack/lbstack/test/realcluster"
)

// secretWatch remembers the secret values the test configured (BGP
// passwords, memberlist keys) and collects everything lbstack wrote while
// they were in force — every container's log in the operator's namespace
// (current and previous), every event, the status of every lbstack object
// and Service — so that check can fail on any of them appearing there.
type secretWatch struct {
	secrets map[string][]byte // what → value
	output  map[string]string // where → text
}

func newSecretWatch() *secretWatch {
	return &secretWatch{secrets: map[string][]byte{}, output: map[string]string{}}
}

// remember adds a secret value to look for.
func (w *secretWatch) remember(what string, value []byte) {
	if len(value) > 0 {
		w.secrets[what] = value
	}
}

// rememberMemberlistKey adds the speakers' memberlist key in force.
func (w *secretWatch) rememberMemberlistKey(t *testing.T, ctx context.Context, c *realcluster.Cluster) {
	t.Helper()
	var s corev1.Secret
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: render.MemberlistSecretName}, &s); err != nil {
		t.Fatalf("reading the memberlist key: %v", err)
	}
	w.remember("memberlist key "+string(s.UID), s.Data[render.MemberlistSecretKey])
}

// collect reads what lbstack wrote so far; call it before the pods that
// wrote it go (a deleted stack takes the speakers' logs with it).
func (w *secretWatch) collect(t *testing.T, ctx context.Context, c *realcluster.Cluster, phase string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.InNamespace(operatorNamespace)); err != nil {
		t.Fatalf("listing pods: %v", err)
	}
	for _, p := range pods.Items {
		for _, ct := range p.Spec.Containers {
			for _, previous := range []bool{false, true} {
				args := []string{"logs", "-n", operatorNamespace, p.Name, "-c", ct.Name, fmt.Sprintf("--previous=%t", previous)}
				out, err := c.KubectlOutput(ctx, args...)
				if err != nil {
					if !previous {
						t.Errorf("reading the log of %s/%s: %v", p.Name, ct.Name, err)
					}
					continue
				}
				w.output[fmt.Sprintf("%s: log of %s/%s (previous=%t)", phase, p.Name, ct.Name, previous)] = out
			}
		}
	}
	for _, what := range []string{
		"events.v1.events.k8s.io",
		"loadbalancerstacks,ipaddresspools,l2advertisements,bgpadvertisements,bgppeers,bfdprofiles,communities,serviceannouncements",
		"services",
	} {
		out, err := c.KubectlOutput(ctx, "get", what, "-A", "-o", "yaml")
		if err != nil {
			t.Errorf("reading %s: %v", what, err)
			continue
		}
		w.output[phase+": "+what] = out
	}
}

// encodings are the forms a leaked secret could take in text.
func encodings(v []byte) map[string]string {
	return map[string]string{
		"as is":        string(v),
		"base64":       base64.StdEncoding.EncodeToString(v),
		"base64 (raw)": base64.RawStdEncoding.EncodeToString(v),
		"hex":          hex.EncodeToString(v),
		"Go %v":        strings.Trim(fmt.Sprint(v), "[]"),
	}
}

// leaks names every secret value found in what was collected, and where.
func (w *secretWatch) leaks() []string {
	var wheres []string
	for where := range w.output {
		wheres = append(wheres, where)
	}
	sort.Strings(wheres)
	var out []string
	for what, v := range w.secrets {
		seen := map[string]bool{}
		for enc, s := range encodings(v) {
			if len(s) < 8 || seen[s] {
				continue // too short to mean anything
			}
			seen[s] = true
			for _, where := range wheres {
				if strings.Contains(w.output[where], s) {
					out = append(out, fmt.Sprintf("the %s (%s) appears in %s", what, enc, where))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// check fails for every leak; it also fails when there is nothing to look
// for or through (a check of nothing).
func (w *secretWatch) check(t *testing.T) {
	t.Helper()
	total := 0
	for _, text := range w.output {
		total += len(text)
	}
	if len(w.secrets) == 0 || total == 0 {
		t.Fatalf("the leak check has %d secrets and %d bytes of output to look through", len(w.secrets), total)
	}
	for _, l := range w.leaks() {
		t.Error(l)
	}
	t.Logf("looked for %d secret values in %d outputs (%d bytes of logs, events and statuses)", len(w.secrets), len(w.output), total)
}

// TestSecretWatchFindsLeaks: the leak check finds a secret in each form.
func TestSecretWatchFindsLeaks(t *testing.T) {
	key := []byte{0x8f, 0x01, 0x77, 0x3a, 0xc4, 0x19, 0x00, 0xfe, 0x42, 0x42, 0x10, 0x20}
	for enc, s := range encodings(key) {
		w := newSecretWatch()
		w.remember("key", key)
		w.remember("password", []byte("s3cr3t-bgp-password"))
		w.output["log of speaker"] = "level=info msg=\"joined\" something=" + s + " more"
		w.output["events"] = "reason: Announced\n"
		if got := w.leaks(); len(got) != 1 || !strings.Contains(got[0], "log of speaker") {
			t.Errorf("a key leaked %s: found %v, want exactly the speaker's log", enc, got)
		}
	}
	w := newSecretWatch()
	w.remember("password", []byte("s3cr3t-bgp-password"))
	w.output["events"] = "message: BGP session to 192.0.2.254 established with password from Secret lbstack-system/router-md5"
	if got := w.leaks(); len(got) != 0 {
		t.Errorf("naming the Secret is no leak, found %v", got)
	}
}
