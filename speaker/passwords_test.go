package speaker

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// TestPasswordBook: a password is read once per refresh, not per lookup;
// a failed read keeps the last good password and retries with backoff; a
// peer whose password was never read, or whose Secret is missing,
// malformed or of the wrong type, is unusable (never configured without
// its password), and becomes usable once the Secret is fixed.
func TestPasswordBook(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	secret := func(name string, typ corev1.SecretType, data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "lbstack", Name: name}, Type: typ, Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	var gets int
	var failing bool
	c := fake.NewClientBuilder().WithObjects(
		secret("good", corev1.SecretTypeOpaque, map[string]string{"password": "s3cret"}),
		secret("basic", corev1.SecretTypeBasicAuth, map[string]string{"username": "u", "password": "b4sic"}),
		secret("nokey", corev1.SecretTypeOpaque, map[string]string{"pw": "x"}),
		secret("tls", corev1.SecretTypeTLS, map[string]string{"password": "x", "tls.crt": "c", "tls.key": "k"}),
	).WithInterceptorFuncs(interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		gets++
		if failing {
			return apierrors.NewServerTimeout(corev1.Resource("secrets"), "get", 1)
		}
		return c.Get(ctx, key, obj, opts...)
	}}).Build()
	book := newPasswordBook(c, "lbstack", clk)
	refs := map[string]lbv1.SecretReference{
		"good":    {Name: "good"},
		"basic":   {Name: "basic", Namespace: "lbstack", Key: "password"},
		"nokey":   {Name: "nokey"},
		"tls":     {Name: "tls"},
		"missing": {Name: "missing"},
	}
	res := book.lookup(ctx, refs)
	if res.passwords["good"] != "s3cret" || res.passwords["basic"] != "b4sic" || len(res.passwords) != 2 {
		t.Fatalf("passwords = %v", res.passwords)
	}
	for peer, want := range map[string]string{"nokey": `has no key "password"`, "tls": "is of type kubernetes.io/tls", "missing": "lbstack/missing does not exist"} {
		if why := res.unusable[peer]; !strings.Contains(why, want) {
			t.Errorf("peer %s: unusable = %q, want it to say %q", peer, why, want)
		}
	}
	if gets != 5 {
		t.Fatalf("%d reads for 5 Secrets", gets)
	}
	// Passes before anything is due read nothing.
	book.lookup(ctx, refs)
	book.lookup(ctx, refs)
	if gets != 5 {
		t.Fatalf("%d reads after two more lookups; want none", gets-5)
	}

	// The API server fails after the refresh: the good passwords stay,
	// reported stale; the retries back off.
	only := map[string]lbv1.SecretReference{"good": refs["good"]}
	clk.Step(passwordRefresh)
	failing, gets = true, 0
	res = book.lookup(ctx, only)
	if res.passwords["good"] != "s3cret" || !strings.Contains(res.stale["good"], "using the value read before") {
		t.Fatalf("after a failed read: passwords %v, stale %v", res.passwords, res.stale)
	}
	var waits []time.Duration
	for range 4 {
		wait := res.next.Sub(clk.Now())
		waits = append(waits, wait)
		clk.Step(wait)
		res = book.lookup(ctx, only)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}; !slices.Equal(waits, want) || gets != 5 {
		t.Fatalf("retry waits %v (%d reads), want %v", waits, gets, want)
	}
	failing = false
	clk.Step(res.next.Sub(clk.Now()))
	if res = book.lookup(ctx, only); res.passwords["good"] != "s3cret" || len(res.stale) != 0 || res.next.Sub(clk.Now()) != passwordRefresh {
		t.Fatalf("after recovery: %+v", res)
	}

	// A peer whose first read fails is not configured.
	failing = true
	res = book.lookup(ctx, map[string]lbv1.SecretReference{"new": {Name: "basic"}})
	if _, ok := res.passwords["new"]; ok || !strings.Contains(res.unusable["new"], "(retrying)") {
		t.Fatalf("never-read peer: %+v", res)
	}
	failing = false

	// The missing Secret appears: picked up at the next retry.
	if err := c.Create(ctx, secret("missing", "", map[string]string{"password": "late"})); err != nil {
		t.Fatal(err)
	}
	clk.Step(passwordRetryMax)
	if res = book.lookup(ctx, refs); res.passwords["missing"] != "late" {
		t.Fatalf("created Secret not picked up: %+v", res.unusable)
	}
	if len(book.entries) != 5 {
		t.Fatalf("%d entries for 5 Secret references", len(book.entries))
	}
}
