// Package certs gives the operator's webhook server a serving certificate
// without cert-manager: it keeps a CA and a serving certificate in a
// Secret, renews them before they expire, writes them where the webhook
// server reads them (which reloads changed files by itself), and injects
// the CA into the webhook configurations. Under OLM, which provides and
// injects certificates itself, the operator turns it off.
//
// Every replica of the operator runs a Rotator and serves the webhooks, so
// the injected caBundle must trust whatever certificate any replica may
// still serve. When the CA is renewed, the previous CA stays in the Secret
// and in the caBundle, after the new one, for an overlap period (see
// [Rotator.Overlap]); a replica injects the bundle before it serves a
// certificate of a new CA. The Rotator watches the Secret and the webhook
// configurations, so a caBundle someone blanked or a configuration
// recreated gets the bundle again at once, and a renewal by one replica
// reaches the others' files at once.
package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Secret data keys.
const (
	// KeyCACert is the CA certificate (PEM) that signs the serving certificate.
	KeyCACert = "ca.crt"
	// KeyCAKey is the CA's private key (PEM).
	KeyCAKey = "ca.key"
	// KeyCert is the serving certificate (PEM).
	KeyCert = corev1.TLSCertKey
	// KeyKey is the serving certificate's private key (PEM).
	KeyKey = corev1.TLSPrivateKeyKey
	// KeyPreviousCACert is the CA certificate (PEM) that KeyCACert
	// replaced, kept in the injected bundle until KeyPreviousCAUntil so
	// that the serving certificates it signed, which other replicas may
	// still serve, stay trusted. Absent outside an overlap.
	KeyPreviousCACert = "ca-previous.crt"
	// KeyPreviousCAUntil is when (RFC 3339) KeyPreviousCACert leaves the
	// Secret and the bundle.
	KeyPreviousCAUntil = "ca-previous-until"
)

// minOverlap is the shortest time the previous CA stays trusted after a
// renewal: several of the webhook server's certificate reload polls (10 s)
// and failed syncs.
const minOverlap = 5 * time.Minute

// minSyncGap is the shortest time between two syncs that watch events
// trigger, so that another writer fighting over the caBundle cannot make
// the Rotator write in a tight loop.
const minSyncGap = time.Second

// maxAttempts bounds the retries of a sync that lost a race with another
// replica.
const maxAttempts = 5

// Rotator keeps the webhook serving certificate valid.
type Rotator struct {
	// Client reads and writes the Secret and the webhook configurations;
	// it should be uncached. When it is also a client.WithWatch
	// (client.NewWithWatch), Start watches the Secret and the webhook
	// configurations and syncs as soon as either changes; otherwise it
	// only syncs every InjectInterval.
	Client client.Client
	// Secret holds the CA and the serving certificate.
	Secret types.NamespacedName
	// CertDir receives tls.crt and tls.key for the webhook server.
	CertDir string
	// DNSNames and IPs the serving certificate is valid for (the webhook
	// Service's names, e.g. lbstack-webhook-service.lbstack-system.svc).
	DNSNames []string
	IPs      []net.IP
	// Webhooks are the ValidatingWebhookConfigurations whose caBundle is kept current.
	Webhooks []string
	// CAValidity and CertValidity are the lifetimes; a certificate is
	// renewed when less than a third of its lifetime is left.
	CAValidity, CertValidity time.Duration
	// Interval is the longest time between two checks of the certificates'
	// lifetimes (0: InjectInterval).
	Interval time.Duration
	// InjectInterval is how often Start syncs at the latest (default
	// 10 s). With a watching Client, Start also syncs within about a
	// second of a change of the Secret or of a webhook configuration
	// (created after the operator started, as Helm does, recreated by
	// `helm upgrade --force` or a re-apply, caBundle blanked or changed);
	// the periodic sync is the backstop. A sync that finds everything
	// current costs a GET of the Secret and one per configuration, and
	// writes nothing.
	InjectInterval time.Duration

	// missing names the configurations reported missing, so the frequent
	// checks do not repeat it.
	missing sync.Map
	// syncMu serializes syncs.
	syncMu sync.Mutex
	// Clock is the time source; nil means the real clock.
	Clock clock.Clock
	// Log receives what the rotator does.
	Log logr.Logger
}

func (r *Rotator) clock() clock.Clock {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
}

func (r *Rotator) now() time.Time { return r.clock().Now() }

// period is the longest time between two syncs of Start.
func (r *Rotator) period() time.Duration {
	every := r.InjectInterval
	if every <= 0 {
		every = 10 * time.Second
	}
	if r.Interval > 0 && r.Interval < every {
		every = r.Interval
	}
	return every
}

// Overlap is how long the previous CA stays in the Secret and the injected
// bundle after a renewal: three sync periods, and at least five minutes,
// so that every replica has moved to a serving certificate of the new CA
// before the old CA is no longer trusted.
func (r *Rotator) Overlap() time.Duration { return max(minOverlap, 3*r.period()) }

// Sync makes the Secret, the files and the caBundles current. Run it once
// before the webhook server starts, so the server finds its files.
func (r *Rotator) Sync(ctx context.Context) error { return r.sync(ctx, false) }

// Rotate issues a new serving certificate now, whatever the old one's age.
func (r *Rotator) Rotate(ctx context.Context) error { return r.sync(ctx, true) }

// Start syncs until ctx ends: within about a second of a change of the
// Secret or of a webhook configuration (when Client can watch), and at
// least every InjectInterval (or Interval, if shorter). It is a
// manager.Runnable that runs on every replica, leader or not, since every
// replica serves the webhooks.
func (r *Rotator) Start(ctx context.Context) error {
	clk := r.clock()
	every := r.period()
	kick := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if wc, ok := r.Client.(client.WithWatch); ok {
		for _, t := range r.watchTargets() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.watch(ctx, wc, t, kick)
			}()
		}
	} else {
		r.Log.Info("Client cannot watch; syncing the webhook certificate periodically only", "interval", every)
	}
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-clk.After(every):
		case <-kick:
			// Our own writes come back as events too; the sync they
			// trigger finds everything current and writes nothing. The
			// gap only bounds a fight with another writer.
			if wait := minSyncGap - clk.Since(last); wait > 0 && !last.IsZero() {
				select {
				case <-ctx.Done():
					return nil
				case <-clk.After(wait):
				}
			}
		}
		last = clk.Now()
		if err := r.Sync(ctx); err != nil {
			r.Log.Error(err, "Refreshing webhook certificate")
		}
	}
}

// NeedLeaderElection reports false: every replica needs current files.
func (r *Rotator) NeedLeaderElection() bool { return false }

// Reasons for syncOnce to be tried again.
var (
	// errRenewedElsewhere: another replica wrote the Secret first.
	errRenewedElsewhere = errors.New("another replica wrote the Secret")
	// errStaleView: a webhook configuration trusts a CA newer than the
	// Secret as read, so another replica renewed since.
	errStaleView = errors.New("the webhook configuration trusts a newer CA than the Secret as read")
	// errInjectConflict: the webhook configuration changed between read
	// and patch.
	errInjectConflict = errors.New("the webhook configuration changed while injecting")
)

func (r *Rotator) sync(ctx context.Context, force bool) error {
	// One sync at a time: Start's and a caller's (Rotate) would otherwise
	// write the key and certificate files over each other, and the server
	// could load a key of one with the certificate of the other (seen as a
	// failed rename of the shared temporary file in CI).
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	trustNewer := false
	for attempt := 1; ; attempt++ {
		err := r.syncOnce(ctx, force, trustNewer)
		switch {
		case err == nil:
			return nil
		case attempt == maxAttempts:
			return err
		case errors.Is(err, errRenewedElsewhere):
			// Take the other replica's result.
			force = false
		case errors.Is(err, errStaleView):
			// The Secret read again is at least as new as the bundle
			// seen; a newer CA still missing from it is not ours.
			trustNewer = true
		case errors.Is(err, errInjectConflict):
		default:
			return err
		}
	}
}

// syncOnce brings the Secret up to date, then injects its bundle, then
// writes the files: a replica serves a certificate of a new CA only once
// the bundle trusts it. With trustNewer false it refuses to replace a
// caBundle that trusts a CA issued after the Secret's (errStaleView).
func (r *Rotator) syncOnce(ctx context.Context, force, trustNewer bool) error {
	var sec corev1.Secret
	err := r.Client.Get(ctx, r.Secret, &sec)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading Secret %s: %w", r.Secret, err)
	}
	data := sec.Data
	if data == nil {
		data = map[string][]byte{}
	}
	changed := false
	now := r.now()
	ca, caKey, err := parsePair(data[KeyCACert], data[KeyCAKey])
	if err != nil || r.expiring(ca) {
		why := "expiring"
		if err != nil {
			why = err.Error()
		}
		r.Log.Info("Issuing webhook CA", "secret", r.Secret, "reason", why)
		delete(data, KeyPreviousCACert)
		delete(data, KeyPreviousCAUntil)
		// Certificates the old CA signed stay trusted for the overlap.
		if old, err := parseCert(data[KeyCACert]); err == nil && now.Before(old.NotAfter) {
			data[KeyPreviousCACert] = data[KeyCACert]
			data[KeyPreviousCAUntil] = []byte(now.Add(r.Overlap()).UTC().Format(time.RFC3339))
		}
		ca, caKey, data[KeyCACert], data[KeyCAKey], err = r.issue(nil, nil, r.CAValidity)
		if err != nil {
			return err
		}
		// A new CA invalidates the serving certificate.
		delete(data, KeyCert)
		changed = true
	} else if hasPrevious(data) && !keepPrevious(data, now) {
		r.Log.Info("Dropping the previous webhook CA from the bundle", "secret", r.Secret)
		delete(data, KeyPreviousCACert)
		delete(data, KeyPreviousCAUntil)
		changed = true
	}
	cert, _, err := parsePair(data[KeyCert], data[KeyKey])
	if err == nil {
		err = cert.CheckSignatureFrom(ca)
	}
	if force || err != nil || r.expiring(cert) || !r.covers(cert) {
		r.Log.Info("Issuing webhook serving certificate", "secret", r.Secret, "reason", reason(err), "forced", force)
		_, _, data[KeyCert], data[KeyKey], err = r.issue(ca, caKey, r.CertValidity)
		if err != nil {
			return err
		}
		changed = true
	}
	if changed {
		sec.Data = data
		sec.Type = corev1.SecretTypeOpaque
		if exists {
			err = r.Client.Update(ctx, &sec)
		} else {
			sec.Name, sec.Namespace = r.Secret.Name, r.Secret.Namespace
			err = r.Client.Create(ctx, &sec)
		}
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("writing Secret %s: %w", r.Secret, errRenewedElsewhere)
		}
		if err != nil {
			return fmt.Errorf("writing Secret %s: %w", r.Secret, err)
		}
	}
	if err := r.inject(ctx, Bundle(data), ca, trustNewer); err != nil {
		return err
	}
	return r.writeFiles(data[KeyCert], data[KeyKey])
}

// Bundle is the caBundle for the Secret's data: the CA, then the previous
// CA while it is kept.
func Bundle(data map[string][]byte) []byte {
	b := withNewline(data[KeyCACert])
	if prev := data[KeyPreviousCACert]; len(prev) > 0 {
		b = append(b, withNewline(prev)...)
	}
	return b
}

func withNewline(b []byte) []byte {
	out := bytes.Clone(b)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out
}

func hasPrevious(data map[string][]byte) bool {
	_, cert := data[KeyPreviousCACert]
	_, until := data[KeyPreviousCAUntil]
	return cert || until
}

// keepPrevious reports whether the previous CA is still in its overlap
// and unexpired; an unreadable one is dropped.
func keepPrevious(data map[string][]byte, now time.Time) bool {
	prev, err := parseCert(data[KeyPreviousCACert])
	if err != nil {
		return false
	}
	until, err := time.Parse(time.RFC3339, string(data[KeyPreviousCAUntil]))
	if err != nil {
		return false
	}
	return now.Before(until) && now.Before(prev.NotAfter)
}

func reason(err error) string {
	if err != nil {
		return err.Error()
	}
	return "expiring or not covering the names"
}

func (r *Rotator) expiring(c *x509.Certificate) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return r.now().After(c.NotAfter.Add(-life / 3))
}

func (r *Rotator) covers(c *x509.Certificate) bool {
	for _, n := range r.DNSNames {
		if c.VerifyHostname(n) != nil {
			return false
		}
	}
	for _, ip := range r.IPs {
		if c.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

// issue makes a CA (parent nil) or a serving certificate signed by parent.
func (r *Rotator) issue(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	now := r.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(validity),
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.Subject = pkix.Name{CommonName: "lbstack-webhook-ca"}
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.Subject = pkix.Name{CommonName: firstOr(r.DNSNames, "lbstack-webhook")}
		tmpl.DNSNames = r.DNSNames
		tmpl.IPAddresses = r.IPs
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("signing certificate: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// parseCert reads the first certificate of a PEM bundle.
func parseCert(certPEM []byte) (*x509.Certificate, error) {
	certs := parseCerts(certPEM)
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs[0], nil
}

// parseCerts reads the certificates of a PEM bundle, skipping what is not one.
func parseCerts(bundle []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return out
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, nil, errors.New("missing")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("unreadable: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("unreadable: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("not an ECDSA key")
	}
	return cert, key, nil
}

// writeFiles replaces tls.crt and tls.key atomically when they differ.
func (r *Rotator) writeFiles(cert, key []byte) error {
	if err := os.MkdirAll(r.CertDir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", r.CertDir, err)
	}
	old, _ := os.ReadFile(filepath.Join(r.CertDir, KeyCert))
	if bytes.Equal(old, cert) {
		return nil
	}
	// Key first: the server reloads on the certificate's change.
	for _, f := range []struct {
		name string
		data []byte
	}{{KeyKey, key}, {KeyCert, cert}} {
		tmp := filepath.Join(r.CertDir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, filepath.Join(r.CertDir, f.name)); err != nil {
			return fmt.Errorf("installing %s: %w", f.name, err)
		}
	}
	r.Log.Info("Installed webhook serving certificate", "dir", r.CertDir)
	return nil
}

// inject sets caBundle to bundle on every webhook of the named
// configurations. Unless trustNewer, it refuses (errStaleView) to replace a
// caBundle that trusts a CA issued no earlier than ca and missing from
// bundle: another replica renewed the CA after this sync read the Secret,
// and may already serve a certificate of that CA.
func (r *Rotator) inject(ctx context.Context, bundle []byte, ca *x509.Certificate, trustNewer bool) error {
	for _, name := range r.Webhooks {
		var cfg admissionregistrationv1.ValidatingWebhookConfiguration
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &cfg); apierrors.IsNotFound(err) {
			if _, seen := r.missing.LoadOrStore(name, true); !seen {
				r.Log.Info("ValidatingWebhookConfiguration not installed yet; will inject the CA when it is", "ValidatingWebhookConfiguration", name)
			}
			continue
		} else if err != nil {
			return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", name, err)
		}
		r.missing.Delete(name)
		patch := client.MergeFromWithOptions(cfg.DeepCopy(), client.MergeFromWithOptimisticLock{})
		dirty := false
		for i := range cfg.Webhooks {
			have := cfg.Webhooks[i].ClientConfig.CABundle
			if bytes.Equal(have, bundle) {
				continue
			}
			if !trustNewer && trustsNewer(have, bundle, ca) {
				return fmt.Errorf("injecting CA into ValidatingWebhookConfiguration %s: %w", name, errStaleView)
			}
			cfg.Webhooks[i].ClientConfig.CABundle = bundle
			dirty = true
		}
		if !dirty {
			continue
		}
		if err := r.Client.Patch(ctx, &cfg, patch); apierrors.IsConflict(err) {
			return fmt.Errorf("injecting CA into ValidatingWebhookConfiguration %s: %w", name, errInjectConflict)
		} else if err != nil {
			return fmt.Errorf("injecting CA into ValidatingWebhookConfiguration %s: %w", name, err)
		}
		r.Log.Info("Injected webhook CA", "ValidatingWebhookConfiguration", name, "cas", len(parseCerts(bundle)))
	}
	return nil
}

// trustsNewer reports whether have holds a CA certificate missing from
// bundle and issued no earlier than ca.
func trustsNewer(have, bundle []byte, ca *x509.Certificate) bool {
	ours := parseCerts(bundle)
	for _, c := range parseCerts(have) {
		if c.NotBefore.Before(ca.NotBefore) {
			continue
		}
		if !slices.ContainsFunc(ours, c.Equal) {
			return true
		}
	}
	return false
}
