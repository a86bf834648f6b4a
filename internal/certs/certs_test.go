package certs_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/internal/certs"
	"github.com/lbstack/lbstack/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{}, func(e *testenv.Env) { env = e })
}

// rotator returns a Rotator for the Secret "webhook-cert" in a new
// namespace named after prefix and the configuration "<namespace>-webhooks"
// (deleted when the test ends), with its own CertDir.
func rotator(t *testing.T, ctx context.Context, prefix string, kube client.Client) *certs.Rotator {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	name := ns.Name + "-webhooks"
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), &admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
	return &certs.Rotator{
		Client:         kube,
		Secret:         types.NamespacedName{Namespace: ns.Name, Name: "webhook-cert"},
		CertDir:        t.TempDir(),
		DNSNames:       []string{"lbstack-webhook-service." + ns.Name + ".svc"},
		Webhooks:       []string{name},
		CAValidity:     time.Hour,
		CertValidity:   time.Hour,
		Interval:       time.Hour,
		InjectInterval: time.Hour,
		Log:            testr.New(t),
	}
}

// replica is another operator replica: the same Secret and configurations,
// its own files.
func replica(t *testing.T, r *certs.Rotator) *certs.Rotator {
	return &certs.Rotator{
		Client: r.Client, Secret: r.Secret, CertDir: t.TempDir(), DNSNames: r.DNSNames, Webhooks: r.Webhooks,
		CAValidity: r.CAValidity, CertValidity: r.CertValidity, Interval: r.Interval, InjectInterval: r.InjectInterval,
		Log: testr.New(t),
	}
}

// start runs r.Start until the test ends.
func start(t *testing.T, ctx context.Context, r *certs.Rotator) {
	ctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
}

// TestInjectsIntoLateConfiguration: a webhook configuration created after
// the operator started (Helm creates it after the Deployment), or deleted
// and created again, gets the CA within InjectInterval, not at the next
// hourly Interval, even with a client that cannot watch.
func TestInjectsIntoLateConfiguration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kube := env.Client
	rot := rotator(t, ctx, "late", kube)
	rot.InjectInterval = 100 * time.Millisecond
	if err := rot.Sync(ctx); err != nil {
		t.Fatalf("first sync without a webhook configuration: %v", err)
	}
	start(t, ctx, rot)

	var secret corev1.Secret
	if err := kube.Get(ctx, rot.Secret, &secret); err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"created after the operator started", "deleted and created again"} {
		cfg := webhookConfiguration(rot.Webhooks[0])
		if err := kube.Create(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "configuration "+when, func() error {
			return hasBundle(ctx, kube, cfg.Name, secret.Data[certs.KeyCACert])
		})
		if err := kube.Delete(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReinjectsAtOnce: with a watching client and an hourly periodic sync,
// the Rotator restores a blanked, changed or recreated caBundle within 2 s,
// brings its files in line within 2 s of another replica's renewal, and
// writes nothing while everything is current (its own writes come back as
// watch events and must not start a loop).
func TestReinjectsAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kube, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	rot := rotator(t, ctx, "reinject", kube)
	if err := rot.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	start(t, ctx, rot)
	name := rot.Webhooks[0]
	var secret corev1.Secret
	if err := kube.Get(ctx, rot.Secret, &secret); err != nil {
		t.Fatal(err)
	}
	bundle := certs.Bundle(secret.Data)
	if err := kube.Create(ctx, webhookConfiguration(name)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "configuration created after the start", func() error {
		return hasBundle(ctx, kube, name, bundle)
	})
	quiet(t, ctx, kube, rot, 3*time.Second)

	setBundle := func(b []byte) {
		t.Helper()
		var cfg admissionregv1.ValidatingWebhookConfiguration
		if err := kube.Get(ctx, types.NamespacedName{Name: name}, &cfg); err != nil {
			t.Fatal(err)
		}
		cfg.Webhooks[0].ClientConfig.CABundle = b
		if err := kube.Update(ctx, &cfg); err != nil {
			t.Fatal(err)
		}
	}
	for when, change := range map[string]func(){
		"blanked": func() { setBundle(nil) },
		// A CA issued after the Rotator's own, not in its Secret: not a
		// renewal by another replica, so it is replaced too.
		"replaced by a foreign CA": func() { setBundle(foreignCA(t)) },
		"recreated": func() {
			if err := kube.Delete(ctx, &admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
				t.Fatal(err)
			}
			if err := kube.Create(ctx, webhookConfiguration(name)); err != nil {
				t.Fatal(err)
			}
		},
	} {
		change()
		eventually(t, 2*time.Second, "caBundle "+when, func() error { return hasBundle(ctx, kube, name, bundle) })
		quiet(t, ctx, kube, rot, 2*time.Second)
	}

	// Another replica renews the serving certificate: the Secret's watch
	// brings it into this replica's files.
	if err := replica(t, rot).Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := kube.Get(ctx, rot.Secret, &secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "files after another replica's renewal", func() error {
		if got := readFile(t, rot, certs.KeyCert); !bytes.Equal(got, secret.Data[certs.KeyCert]) {
			return errors.New("this replica still serves the old certificate")
		}
		return nil
	})
}

// TestCARenewalOverlap: two replicas share the Secret; the CA expires on
// the first one's clock. After the renewal the injected bundle trusts both
// the old serving certificate (still in the second replica's files) and
// the new one; a replica that read the Secret just before the renewal does
// not take the new CA out of the bundle; a restarted replica keeps the
// overlap; after it the bundle holds the new CA only; and two replicas
// renewing at once agree.
func TestCARenewalOverlap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kube := env.Client
	t0 := time.Now()
	clk1, clk2 := clocktesting.NewFakeClock(t0), clocktesting.NewFakeClock(t0)
	rot1 := rotator(t, ctx, "renewal", kube)
	rot1.CAValidity, rot1.CertValidity, rot1.InjectInterval = 3*time.Hour, 10*time.Hour, 10*time.Second
	rot2 := replica(t, rot1)
	rot1.Clock, rot2.Clock = clk1, clk2
	name, host := rot1.Webhooks[0], rot1.DNSNames[0]
	if err := kube.Create(ctx, webhookConfiguration(name)); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*certs.Rotator{rot1, rot2} {
		if err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before := getSecret(t, ctx, kube, rot1)
	ca0, cert0 := before.Data[certs.KeyCACert], readFile(t, rot2, certs.KeyCert)
	if err := hasBundle(ctx, kube, name, ca0); err != nil {
		t.Fatalf("before the renewal: %v", err)
	}

	// The CA has less than a third of its life left on replica 1's clock.
	clk1.Step(2*time.Hour + time.Minute)
	if err := rot1.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	renewed := getSecret(t, ctx, kube, rot1)
	ca1, cert1 := renewed.Data[certs.KeyCACert], readFile(t, rot1, certs.KeyCert)
	if bytes.Equal(ca1, ca0) {
		t.Fatal("the CA was not renewed")
	}
	if !bytes.Equal(renewed.Data[certs.KeyPreviousCACert], ca0) {
		t.Fatalf("Secret %s = %q, want the old CA", certs.KeyPreviousCACert, renewed.Data[certs.KeyPreviousCACert])
	}
	if want := clk1.Now().Add(5 * time.Minute).UTC().Format(time.RFC3339); string(renewed.Data[certs.KeyPreviousCAUntil]) != want {
		t.Errorf("Secret %s = %q, want %s", certs.KeyPreviousCAUntil, renewed.Data[certs.KeyPreviousCAUntil], want)
	}
	if !bytes.Equal(cert1, renewed.Data[certs.KeyCert]) {
		t.Error("replica 1 does not serve the renewed certificate")
	}
	bundle := append(append([]byte{}, ca1...), ca0...)
	if err := hasBundle(ctx, kube, name, bundle); err != nil {
		t.Fatalf("after the renewal: %v", err)
	}
	for what, cert := range map[string][]byte{"old certificate (replica 2)": cert0, "new certificate (replica 1)": cert1} {
		if err := verify(bundle, cert, host, clk1.Now()); err != nil {
			t.Errorf("bundle after the renewal does not trust the %s: %v", what, err)
		}
	}
	if verify(ca1, cert0, host, clk1.Now()) == nil {
		t.Fatal("the new CA alone trusts the old certificate; the test proves nothing")
	}

	// Replica 2 read the Secret just before replica 1 renewed it: it must
	// not inject the old CA alone, and it then serves the new certificate.
	rv := resourceVersions(t, ctx, kube, rot1)
	rot2.Client = &staleSecretOnce{Client: kube, secret: before}
	if err := rot2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rot2.Client = kube
	if got := resourceVersions(t, ctx, kube, rot1); got != rv {
		t.Errorf("replica 2 with a stale Secret wrote %v, was %v", got, rv)
	}
	if !bytes.Equal(readFile(t, rot2, certs.KeyCert), cert1) {
		t.Error("replica 2 does not serve the renewed certificate after its sync")
	}
	// Nothing left to do for either.
	for _, r := range []*certs.Rotator{rot1, rot2} {
		if err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := resourceVersions(t, ctx, kube, rot1); got != rv {
		t.Errorf("syncs with everything current wrote %v, was %v", got, rv)
	}

	// A restarted replica reads the overlap from the Secret.
	restarted := replica(t, rot1)
	restarted.Clock = clocktesting.NewFakeClock(clk1.Now().Add(4 * time.Minute))
	if err := restarted.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := resourceVersions(t, ctx, kube, rot1); got != rv {
		t.Errorf("a restarted replica within the overlap wrote %v, was %v", got, rv)
	}
	if err := hasBundle(ctx, kube, name, bundle); err != nil {
		t.Errorf("after a restart within the overlap: %v", err)
	}

	// After the overlap the old CA leaves the Secret and the bundle.
	clk1.Step(6 * time.Minute)
	if err := rot1.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	after := getSecret(t, ctx, kube, rot1)
	for _, k := range []string{certs.KeyPreviousCACert, certs.KeyPreviousCAUntil} {
		if _, ok := after.Data[k]; ok {
			t.Errorf("Secret keeps %s after the overlap", k)
		}
	}
	if err := hasBundle(ctx, kube, name, ca1); err != nil {
		t.Errorf("after the overlap: %v", err)
	}
	if verify(ca1, cert1, host, clk1.Now()) != nil {
		t.Error("the new CA does not trust the new certificate")
	}
	// Replica 2, its clock behind, neither brings the old CA back nor
	// writes anything.
	rv = resourceVersions(t, ctx, kube, rot1)
	if err := rot2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := resourceVersions(t, ctx, kube, rot1); got != rv {
		t.Errorf("replica 2 after the overlap wrote %v, was %v", got, rv)
	}

	// Both replicas find the CA expiring and renew at once: one wins, the
	// other takes its result.
	clk1.Step(2 * time.Hour)
	clk2.SetTime(clk1.Now())
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, r := range []*certs.Rotator{rot1, rot2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.Sync(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent renewal: %v", err)
	}
	final := getSecret(t, ctx, kube, rot1)
	ca2 := final.Data[certs.KeyCACert]
	if bytes.Equal(ca2, ca1) || !bytes.Equal(final.Data[certs.KeyPreviousCACert], ca1) {
		t.Fatal("the concurrent renewal did not keep the CA it replaced as the previous one")
	}
	if err := hasBundle(ctx, kube, name, append(append([]byte{}, ca2...), ca1...)); err != nil {
		t.Errorf("after the concurrent renewal: %v", err)
	}
	for i, r := range []*certs.Rotator{rot1, rot2} {
		if !bytes.Equal(readFile(t, r, certs.KeyCert), final.Data[certs.KeyCert]) {
			t.Errorf("replica %d does not serve the Secret's certificate after the concurrent renewal", i+1)
		}
	}
}

// TestFilesFollowTheBundle: a replica serves a certificate of a new CA
// only once the bundle trusts that CA; while the injection fails it keeps
// serving the old certificate, which the bundle still trusts.
func TestFilesFollowTheBundle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kube := env.Client
	clk := clocktesting.NewFakeClock(time.Now())
	rot := rotator(t, ctx, "order", kube)
	rot.Clock = clk
	if err := kube.Create(ctx, webhookConfiguration(rot.Webhooks[0])); err != nil {
		t.Fatal(err)
	}
	if err := rot.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	old := readFile(t, rot, certs.KeyCert)
	clk.Step(50 * time.Minute) // the CA expires
	rot.Client = failingPatch{kube}
	if err := rot.Sync(ctx); err == nil {
		t.Fatal("Sync succeeded though the injection failed")
	}
	if !bytes.Equal(readFile(t, rot, certs.KeyCert), old) {
		t.Fatal("the replica serves a certificate of the new CA before the bundle trusts it")
	}
	rot.Client = kube
	if err := rot.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	sec := getSecret(t, ctx, kube, rot)
	if err := hasBundle(ctx, kube, rot.Webhooks[0], certs.Bundle(sec.Data)); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, rot, certs.KeyCert); !bytes.Equal(got, sec.Data[certs.KeyCert]) || bytes.Equal(got, old) {
		t.Fatal("the replica does not serve the new certificate once the bundle trusts its CA")
	}
}

// failingPatch fails every patch, as an API server refusing the
// injection would.
type failingPatch struct{ client.Client }

func (failingPatch) Patch(context.Context, client.Object, client.Patch, ...client.PatchOption) error {
	return errors.New("patch refused")
}

// staleSecretOnce answers the first Get of a Secret with secret: a read
// that happened just before another replica's write.
type staleSecretOnce struct {
	client.Client
	secret *corev1.Secret
}

func (c *staleSecretOnce) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if s, ok := obj.(*corev1.Secret); ok && c.secret != nil {
		c.secret.DeepCopyInto(s)
		c.secret = nil
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// eventually polls check until it succeeds, failing t after within.
func eventually(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	began := time.Now()
	deadline := began.Add(within)
	for {
		err := check()
		if err == nil {
			t.Logf("%s: done after %s", what, time.Since(began).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v after %s", what, err, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quiet fails t if the Secret or the configuration is written within d.
func quiet(t *testing.T, ctx context.Context, kube client.Client, r *certs.Rotator, d time.Duration) {
	t.Helper()
	was := resourceVersions(t, ctx, kube, r)
	time.Sleep(d)
	if now := resourceVersions(t, ctx, kube, r); now != was {
		t.Errorf("written while everything was current: resourceVersions %v, were %v", now, was)
	}
}

// resourceVersions are those of r's Secret and first configuration.
func resourceVersions(t *testing.T, ctx context.Context, kube client.Client, r *certs.Rotator) [2]string {
	t.Helper()
	var cfg admissionregv1.ValidatingWebhookConfiguration
	if err := kube.Get(ctx, types.NamespacedName{Name: r.Webhooks[0]}, &cfg); err != nil {
		t.Fatal(err)
	}
	return [2]string{getSecret(t, ctx, kube, r).ResourceVersion, cfg.ResourceVersion}
}

func getSecret(t *testing.T, ctx context.Context, kube client.Client, r *certs.Rotator) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := kube.Get(ctx, r.Secret, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func readFile(t *testing.T, r *certs.Rotator, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.CertDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hasBundle checks that every webhook of the configuration has caBundle want.
func hasBundle(ctx context.Context, kube client.Client, name string, want []byte) error {
	var got admissionregv1.ValidatingWebhookConfiguration
	if err := kube.Get(ctx, types.NamespacedName{Name: name}, &got); err != nil {
		return err
	}
	for _, w := range got.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, want) {
			return fmt.Errorf("webhook %s has caBundle of %d CAs, not the %d wanted", w.Name, countCerts(w.ClientConfig.CABundle), countCerts(want))
		}
	}
	return nil
}

func countCerts(bundle []byte) int {
	n := 0
	for {
		var b *pem.Block
		if b, bundle = pem.Decode(bundle); b == nil {
			return n
		}
		n++
	}
}

// verify checks certPEM for host against the CAs of bundle, as the API
// server does when it calls the webhook.
func verify(bundle, certPEM []byte, host string, at time.Time) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return errors.New("no CA in the bundle")
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return errors.New("no certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, CurrentTime: at})
	return err
}

// foreignCA is a CA certificate (PEM) the Rotator did not issue.
func foreignCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "someone else's CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func webhookConfiguration(name string) *admissionregv1.ValidatingWebhookConfiguration {
	fail, none := admissionregv1.Fail, admissionregv1.SideEffectClassNone
	return &admissionregv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregv1.ValidatingWebhook{{
			Name:                    "vipaddresspool.lbstack.io",
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			ClientConfig: admissionregv1.WebhookClientConfig{Service: &admissionregv1.ServiceReference{
				Namespace: "lbstack-system", Name: "lbstack-webhook-service", Path: ptr.To("/validate"),
			}},
			Rules: []admissionregv1.RuleWithOperations{{
				Operations: []admissionregv1.OperationType{admissionregv1.Create},
				Rule:       admissionregv1.Rule{APIGroups: []string{"lbstack.io"}, APIVersions: []string{"v1alpha1"}, Resources: []string{"ipaddresspools"}},
			}},
		}},
	}
}
