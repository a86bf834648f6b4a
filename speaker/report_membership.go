package speaker

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/speaker/membership"
)

// MembershipFacts is what the membership reporter reads each interval.
type MembershipFacts struct {
	// Stack is the name of the LoadBalancerStack in force ("" before the
	// first valid configuration).
	Stack string
	// Isolated: the speaker has joined none of the speakers it expects.
	Isolated bool
	// Expected is how many other nodes should run a speaker.
	Expected int
	// Missing are the nodes of expected speakers this speaker has not
	// joined (not live members), sorted.
	Missing []string
	// Undecryptable counts the memberlist packets and streams this speaker
	// could not decrypt so far.
	Undecryptable uint64
}

// foreignWindow is how long after the last undecryptable packet a speaker
// still reports a key mismatch; isolatedGrace is how long a speaker must
// have been isolated before it says so (a starting speaker is isolated
// until it joins, within a second or its join timeout).
const (
	foreignWindow = time.Minute
	isolatedGrace = 10 * time.Second
	// partialGrace is longer: a speaker that restarts (a roll-out) is
	// missing from the others for as long as its new pod takes to join.
	partialGrace = 30 * time.Second
	// maxMissing bounds the names an entry lists.
	maxMissing = 32
)

// MembershipReporter writes this node's entry of the stack's
// status.speakerProblems while the speaker is cut off from the others (a
// different memberlist key, or nobody joined), and removes it when the
// problem ends. It writes only when the problem changes.
type MembershipReporter struct {
	Client client.Client
	Node   string
	Clock  clock.WithTicker
	// Facts reads the current facts (must not block).
	Facts func() MembershipFacts
	// Interval is how often the facts are read; 0 means one second.
	Interval time.Duration

	lastCount     uint64
	lastForeign   time.Time
	isolatedSince time.Time
	partialSince  time.Time
	written       *lbv1.SpeakerProblem // nil: no entry written (or removed)
	writtenTo     string               // the stack written to
	dirty         bool                 // a write failed or never happened
	keyMismatch   atomic.Bool          // the last pass saw a key mismatch
}

// KeyMismatch reports whether the last pass found recent memberlist
// traffic this speaker cannot decrypt (readiness).
func (r *MembershipReporter) KeyMismatch() bool { return r.keyMismatch.Load() }

// judgeMembership returns the problem the facts show, nil when none.
func judgeMembership(f MembershipFacts, foreignRecently bool) *lbv1.SpeakerProblem {
	switch {
	case foreignRecently:
		msg := "This speaker receives memberlist traffic it cannot decrypt: another speaker uses a different memberlist key (Secret lbstack-memberlist replaced without every speaker rotating?) and forms a cluster of its own"
		if f.Isolated {
			msg += fmt.Sprintf("; this speaker has joined none of the %d other speakers it expects and announces on its own", f.Expected)
		}
		return &lbv1.SpeakerProblem{Reason: lbv1.SpeakerMembershipKeyMismatch, Message: msg}
	case f.Isolated:
		return &lbv1.SpeakerProblem{Reason: lbv1.SpeakerIsolated, Message: fmt.Sprintf(
			"This speaker has joined none of the %d other speakers it expects: check that they run and that port 7946 (TCP and UDP) is open between the nodes", f.Expected)}
	case len(f.Missing) > 0:
		return &lbv1.SpeakerProblem{Reason: lbv1.SpeakerPartialMembership, Message: fmt.Sprintf(
			"This speaker has joined %d of the %d other speakers it expects, not those on %s: check that they run and that port 7946 (TCP and UDP) is open between this node and theirs",
			f.Expected-len(f.Missing), f.Expected, elide(f.Missing, 5, ", "))}
	}
	return nil
}

// withCounts adds what the speaker sees to a problem: how many speakers it
// expects, how many of them it has joined, and which it has not.
func withCounts(p *lbv1.SpeakerProblem, f MembershipFacts) {
	if p == nil {
		return
	}
	p.Expected = int32(f.Expected)
	p.Seen = int32(max(0, f.Expected-len(f.Missing)))
	if f.Isolated {
		p.Seen = 0
	}
	p.Missing = slices.Clone(f.Missing[:min(len(f.Missing), maxMissing)])
}

// Run reads the facts every interval and writes changes until ctx ends.
func (r *MembershipReporter) Run(ctx context.Context) error {
	interval := r.Interval
	if interval == 0 {
		interval = time.Second
	}
	tick := r.Clock.NewTicker(interval)
	defer tick.Stop()
	// The first write removes an entry a previous run of this speaker may
	// have left.
	r.dirty = true
	for {
		r.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C():
		}
	}
}

// pass judges the facts once and writes the entry if it changed.
func (r *MembershipReporter) pass(ctx context.Context) {
	f := r.Facts()
	now := r.Clock.Now()
	if f.Undecryptable > r.lastCount {
		r.lastForeign = now
	}
	r.lastCount = f.Undecryptable
	switch {
	case !f.Isolated:
		r.isolatedSince = time.Time{}
	case r.isolatedSince.IsZero():
		r.isolatedSince = now
	}
	f.Isolated = f.Isolated && now.Sub(r.isolatedSince) >= isolatedGrace
	switch {
	case len(f.Missing) == 0 || len(f.Missing) >= f.Expected: // none, or all (Isolated's case)
		r.partialSince = time.Time{}
	case r.partialSince.IsZero():
		r.partialSince = now
	}
	if r.partialSince.IsZero() || now.Sub(r.partialSince) < partialGrace {
		f.Missing = nil
	}
	foreign := !r.lastForeign.IsZero() && now.Sub(r.lastForeign) < foreignWindow
	r.keyMismatch.Store(foreign)
	p := judgeMembership(f, foreign)
	withCounts(p, f)
	if f.Stack == "" {
		return
	}
	same := (p == nil) == (r.written == nil) && (p == nil || (p.Reason == r.written.Reason && p.Message == r.written.Message &&
		p.Seen == r.written.Seen && p.Expected == r.written.Expected && slices.Equal(p.Missing, r.written.Missing)))
	if same && !r.dirty && f.Stack == r.writtenTo {
		return
	}
	if p != nil {
		p.Node = r.Node
		p.Since = metav1.NewTime(now.Truncate(time.Second))
		if r.written != nil && r.written.Reason == p.Reason {
			p.Since = r.written.Since
		}
	}
	if err := r.write(ctx, f.Stack, p); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Writing the speaker's membership problem to the stack status; will retry")
		r.dirty = true
		return
	}
	r.written, r.writtenTo, r.dirty = p, f.Stack, false
}

// write applies this node's entry (none: removes it) under a field manager
// of its own, so the entries of all nodes add up.
func (r *MembershipReporter) write(ctx context.Context, stack string, p *lbv1.SpeakerProblem) error {
	status := map[string]any{}
	if p != nil {
		body, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
		if err != nil {
			return err
		}
		status["speakerProblems"] = []any{body}
	}
	u := statusApply("LoadBalancerStack", types.NamespacedName{Name: stack}, status)
	err := r.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner("lbstack-speaker-membership-"+r.Node), client.ForceOwnership)
	if apierrors.IsNotFound(err) {
		return nil // the stack is gone
	}
	return err
}

// missingPeers returns the expected nodes that are not live members, sorted.
func missingPeers(expected []string, live []membership.Member) []string {
	var out []string
	for _, n := range expected {
		if !slices.ContainsFunc(live, func(m membership.Member) bool { return m.Name == n }) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
