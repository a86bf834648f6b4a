package certs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/lbstack/lbstack/internal/certs"
	"github.com/lbstack/lbstack/internal/testenv"
)

// TestInjectsIntoLateConfiguration: a webhook configuration created after
// the operator started (Helm creates it after the Deployment), or deleted
// and created again, gets the CA within InjectInterval, not at the next
// hourly Interval.
func TestInjectsIntoLateConfiguration(t *testing.T) {
	env, err := testenv.Start(testenv.Options{})
	if errors.Is(err, testenv.ErrNoAssets) {
		testenv.Skip(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kube := env.Client
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lbstack-system"}}); err != nil {
		t.Fatal(err)
	}
	rot := &certs.Rotator{
		Client:         kube,
		Secret:         types.NamespacedName{Namespace: "lbstack-system", Name: "lbstack-webhook-server-cert"},
		CertDir:        t.TempDir(),
		DNSNames:       []string{"lbstack-webhook-service.lbstack-system.svc"},
		Webhooks:       []string{"lbstack-validating-webhook-configuration"},
		CAValidity:     time.Hour,
		CertValidity:   time.Hour,
		Interval:       time.Hour,
		InjectInterval: 100 * time.Millisecond,
		Log:            testr.New(t),
	}
	if err := rot.Sync(ctx); err != nil {
		t.Fatalf("first sync without a webhook configuration: %v", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rot.Start(runCtx) }()
	defer func() { stop(); <-done }()

	var secret corev1.Secret
	if err := kube.Get(ctx, rot.Secret, &secret); err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"created after the operator started", "deleted and created again"} {
		cfg := webhookConfiguration(rot.Webhooks[0])
		if err := kube.Create(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			var got admissionregv1.ValidatingWebhookConfiguration
			if err := kube.Get(ctx, types.NamespacedName{Name: cfg.Name}, &got); err != nil {
				t.Fatal(err)
			}
			err := func() error {
				for _, w := range got.Webhooks {
					if !bytes.Equal(w.ClientConfig.CABundle, secret.Data[certs.KeyCACert]) {
						return fmt.Errorf("webhook %s has no CA", w.Name)
					}
				}
				return nil
			}()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("configuration %s: %v after 5 s", when, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := kube.Delete(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
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
