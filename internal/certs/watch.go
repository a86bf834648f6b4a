package certs

import (
	"context"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apiwatch "k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Backoff between failed attempts to watch.
const (
	minWatchBackoff = time.Second
	maxWatchBackoff = time.Minute
)

// watchTarget is one object Start watches.
type watchTarget struct {
	kind string
	name string
	list func() client.ObjectList
	opts []client.ListOption
}

// watchTargets are the Secret and each webhook configuration, each
// selected by name.
func (r *Rotator) watchTargets() []watchTarget {
	ts := []watchTarget{{
		kind: "Secret",
		name: r.Secret.String(),
		list: func() client.ObjectList { return &corev1.SecretList{} },
		opts: []client.ListOption{client.InNamespace(r.Secret.Namespace), client.MatchingFields{"metadata.name": r.Secret.Name}},
	}}
	for _, name := range r.Webhooks {
		ts = append(ts, watchTarget{
			kind: "ValidatingWebhookConfiguration",
			name: name,
			list: func() client.ObjectList { return &admissionregistrationv1.ValidatingWebhookConfigurationList{} },
			opts: []client.ListOption{client.MatchingFields{"metadata.name": name}},
		})
	}
	return ts
}

// watch sends on kick whenever t changes, until ctx ends. It watches
// without a resourceVersion, so every (re)start of the watch first reports
// the object as it is, and the sync that follows makes up for events
// missed while no watch ran.
func (r *Rotator) watch(ctx context.Context, wc client.WithWatch, t watchTarget, kick chan<- struct{}) {
	clk := r.clock()
	log := r.Log.WithValues("watchedKind", t.kind, "watchedName", t.name)
	backoff := minWatchBackoff
	for ctx.Err() == nil {
		started := clk.Now()
		w, err := wc.Watch(ctx, t.list(), t.opts...)
		if err == nil {
			err = drain(ctx, w, kick)
			w.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil && clk.Since(started) >= maxWatchBackoff {
			// The API server ended a watch that worked (they time out
			// after a while): watch again at once.
			backoff = minWatchBackoff
			log.V(1).Info("Watch ended; watching again")
			continue
		}
		if err != nil {
			log.Error(err, "Watching for webhook certificate changes; retrying", "retryIn", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-clk.After(backoff):
		}
		backoff = min(2*backoff, maxWatchBackoff)
	}
}

// drain kicks on every event of w until w ends (nil) or reports an error.
func drain(ctx context.Context, w apiwatch.Interface, kick chan<- struct{}) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil
			}
			switch ev.Type {
			case apiwatch.Error:
				return apierrors.FromObject(ev.Object)
			case apiwatch.Bookmark:
				continue
			}
			select {
			case kick <- struct{}{}:
			default: // a sync is pending already
			}
		}
	}
}
