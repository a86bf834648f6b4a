// Package certs gives the operator's webhook server a serving certificate
// without cert-manager: it keeps a CA and a serving certificate in a
// Secret, renews them before they expire, writes them where the webhook
// server reads them (which reloads changed files by itself), and injects
// the CA into the webhook configurations. Under OLM, which provides and
// injects certificates itself, the operator turns it off.
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
	KeyCACert = "ca.crt"
	KeyCAKey  = "ca.key"
	KeyCert   = corev1.TLSCertKey
	KeyKey    = corev1.TLSPrivateKeyKey
)

// Rotator keeps the webhook serving certificate valid.
type Rotator struct {
	// Client reads and writes the Secret and the webhook configurations;
	// it should be uncached.
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
	// InjectInterval is how often Start syncs (default 10 s): a webhook
	// configuration created after the operator started (Helm creates it
	// after the Deployment) or recreated (`helm upgrade --force`, a
	// re-apply) gets the CA within this time. A sync that finds everything
	// current costs a GET of the Secret and one per configuration, and
	// writes nothing.
	InjectInterval time.Duration

	// missing names the configurations reported missing, so the frequent
	// checks do not repeat it.
	missing sync.Map
	// Clock is the time source; nil means the real clock.
	Clock clock.Clock
	// Log receives what the rotator does.
	Log logr.Logger
}

func (r *Rotator) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// Sync makes the Secret, the files and the caBundles current. Run it once
// before the webhook server starts, so the server finds its files.
func (r *Rotator) Sync(ctx context.Context) error { return r.sync(ctx, false) }

// Rotate issues a new serving certificate now, whatever the old one's age.
func (r *Rotator) Rotate(ctx context.Context) error { return r.sync(ctx, true) }

// Start runs Sync every Interval until ctx ends. It is a manager.Runnable
// that runs on every replica, leader or not, since every replica serves
// the webhooks.
func (r *Rotator) Start(ctx context.Context) error {
	clk := r.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	// Sync does nothing when all agrees (two GETs and a comparison of the
	// files), so the short interval also brings this replica's files in
	// line soon after another replica renewed the certificate.
	every := r.InjectInterval
	if every <= 0 {
		every = 10 * time.Second
	}
	if r.Interval > 0 && r.Interval < every {
		every = r.Interval
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-clk.After(every):
			if err := r.Sync(ctx); err != nil {
				r.Log.Error(err, "Refreshing webhook certificate")
			}
		}
	}
}

// NeedLeaderElection reports false: every replica needs current files.
func (r *Rotator) NeedLeaderElection() bool { return false }

func (r *Rotator) sync(ctx context.Context, force bool) error {
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
	ca, caKey, err := parsePair(data[KeyCACert], data[KeyCAKey])
	if err != nil || r.expiring(ca) {
		r.Log.Info("Issuing webhook CA", "secret", r.Secret, "reason", reason(err))
		ca, caKey, data[KeyCACert], data[KeyCAKey], err = r.issue(nil, nil, r.CAValidity)
		if err != nil {
			return err
		}
		// A new CA invalidates the serving certificate.
		delete(data, KeyCert)
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
			// Another replica rotated at the same time; take its result.
			return r.sync(ctx, false)
		}
		if err != nil {
			return fmt.Errorf("writing Secret %s: %w", r.Secret, err)
		}
	}
	if err := r.writeFiles(data[KeyCert], data[KeyKey]); err != nil {
		return err
	}
	return r.inject(ctx, data[KeyCACert])
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

// inject sets caBundle on every webhook of the named configurations.
func (r *Rotator) inject(ctx context.Context, ca []byte) error {
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
			if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, ca) {
				cfg.Webhooks[i].ClientConfig.CABundle = ca
				dirty = true
			}
		}
		if !dirty {
			continue
		}
		if err := r.Client.Patch(ctx, &cfg, patch); err != nil {
			return fmt.Errorf("injecting CA into ValidatingWebhookConfiguration %s: %w", name, err)
		}
		r.Log.Info("Injected webhook CA", "ValidatingWebhookConfiguration", name)
	}
	return nil
}
