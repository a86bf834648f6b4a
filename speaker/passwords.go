package speaker

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
)

// Password Secrets are read from the API server by name (the speaker may
// get exactly those Secrets, not list or watch them). Each is read when a
// peer first refers to it, again every passwordRefresh (a rotated
// password), and after a failed read with a backoff from
// passwordRetryMin doubling to passwordRetryMax. Nothing else triggers a
// read: not a pass, not a BGPPeer status write.
const (
	passwordRefresh  = time.Minute
	passwordRetryMin = time.Second
	passwordRetryMax = time.Minute
)

// defaultPasswordKey is SecretReference.Key's default.
const defaultPasswordKey = "password"

// passwordBook reads BGP password Secrets and remembers the last good
// password of each. A read that fails (an API hiccup) keeps the last good
// password; a peer whose password was never read, or whose Secret is
// missing, malformed or of the wrong type, is not configured at all —
// never configured without the password it needs.
type passwordBook struct {
	reader    client.Reader
	namespace string
	clock     clock.PassiveClock

	mu      sync.Mutex
	entries map[secretKey]*passwordEntry
}

type secretKey struct {
	types.NamespacedName
	key string
}

func (k secretKey) String() string { return k.Namespace + "/" + k.Name }

type passwordEntry struct {
	// value is the last good password; have says there is one.
	value string
	have  bool
	// problem says why the Secret cannot give a password (missing,
	// malformed, wrong type): the peer is not configured.
	problem string
	// readErr is the last read's error when it failed for a reason that
	// says nothing about the Secret; failures counts reads in a row that
	// gave no password (the backoff).
	readErr  error
	failures int
	next     time.Time
}

func newPasswordBook(r client.Reader, namespace string, clk clock.PassiveClock) *passwordBook {
	return &passwordBook{reader: r, namespace: namespace, clock: clk, entries: map[secretKey]*passwordEntry{}}
}

// passwordResult is what lookup found, by the caller's ids.
type passwordResult struct {
	// passwords that can be used.
	passwords map[string]string
	// unusable are the ids without a usable value, with the reason (which
	// names the Secret).
	unusable map[string]string
	// stale are ids given their last good value while the Secret cannot be
	// read, with the read error.
	stale map[string]string
	// next is when a Secret is due to be read again (zero: none).
	next time.Time
}

// lookup returns the values of the Secret references in refs (any id →
// reference; every reference of the pass at once, as the book forgets the
// Secrets a lookup does not name), reading the Secrets that are due.
func (b *passwordBook) lookup(ctx context.Context, refs map[string]lbv1.SecretReference) passwordResult {
	res := passwordResult{passwords: map[string]string{}, unusable: map[string]string{}, stale: map[string]string{}}
	b.mu.Lock()
	defer b.mu.Unlock()
	used := map[secretKey]bool{}
	for peer, ref := range refs {
		k := secretKey{types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, ref.Key}
		if k.Namespace == "" {
			k.Namespace = b.namespace
		}
		if k.key == "" {
			k.key = defaultPasswordKey
		}
		used[k] = true
		e := b.entries[k]
		if e == nil {
			e = &passwordEntry{}
			b.entries[k] = e
		}
		if !b.clock.Now().Before(e.next) {
			b.read(ctx, k, e)
		}
		if res.next.IsZero() || e.next.Before(res.next) {
			res.next = e.next
		}
		switch {
		case e.problem != "":
			res.unusable[peer] = e.problem
		case e.have:
			res.passwords[peer] = e.value
			if e.readErr != nil {
				res.stale[peer] = fmt.Sprintf("reading Secret %s: %v; using the value read before", k, e.readErr)
			}
		default:
			res.unusable[peer] = fmt.Sprintf("reading Secret %s: %v (retrying)", k, e.readErr)
		}
	}
	for k := range b.entries {
		if !used[k] {
			delete(b.entries, k)
		}
	}
	return res
}

// read reads one Secret into e and schedules the next read.
func (b *passwordBook) read(ctx context.Context, k secretKey, e *passwordEntry) {
	now := b.clock.Now()
	var s corev1.Secret
	err := b.reader.Get(ctx, k.NamespacedName, &s)
	switch {
	case apierrors.IsNotFound(err):
		e.value, e.have, e.problem, e.readErr = "", false, fmt.Sprintf("Secret %s does not exist", k), nil
		e.failures++
		e.next = now.Add(backoff(e.failures))
	case err != nil:
		// Keep what was known: an API hiccup neither drops a working
		// password nor opens the session without one.
		e.readErr = err
		e.failures++
		e.next = now.Add(backoff(e.failures))
	default:
		e.readErr = nil
		if p := config.PasswordProblem(&s, k.key); p != "" {
			// A fixed Secret is picked up sooner than a rotated one.
			e.value, e.have, e.problem = "", false, p
			e.failures++
			e.next = now.Add(backoff(e.failures))
			return
		}
		e.value, e.have, e.problem, e.failures = string(s.Data[k.key]), true, "", 0
		e.next = now.Add(passwordRefresh)
	}
}

// backoff is the wait after n failed reads in a row.
func backoff(n int) time.Duration {
	d := passwordRetryMin
	for i := 1; i < n && d < passwordRetryMax; i++ {
		d *= 2
	}
	return min(d, passwordRetryMax)
}
