package speaker

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/speaker/membership"
)

// TestMembershipReporterWritesSpeakerProblems runs the membership reporters
// of two nodes against a real API server: a key mismatch is reported at
// once, isolation only once it lasted isolatedGrace; each node owns its own
// entry, the operator's status writes leave them alone, an entry goes when
// its problem ends, and a restarted speaker removes what its previous run
// left.
func TestMembershipReporterWritesSpeakerProblems(t *testing.T) {
	env := testenv.StartT(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	kube := env.Client
	stack := &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "lbstack"}}
	if err := kube.Create(ctx, stack); err != nil {
		t.Fatal(err)
	}

	clk := clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))
	facts := map[string]*MembershipFacts{
		"a": {Stack: "lbstack", Expected: 2},
		"b": {Stack: "lbstack", Expected: 2},
	}
	reporter := func(node string) *MembershipReporter {
		r := &MembershipReporter{Client: kube, Node: node, Clock: clk, Facts: func() MembershipFacts { return *facts[node] }}
		r.dirty = true // as Run starts
		return r
	}
	a, b := reporter("a"), reporter("b")
	problems := func() map[string]lbv1.SpeakerProblemReason {
		t.Helper()
		var s lbv1.LoadBalancerStack
		if err := kube.Get(ctx, client.ObjectKey{Name: "lbstack"}, &s); err != nil {
			t.Fatal(err)
		}
		out := map[string]lbv1.SpeakerProblemReason{}
		for _, p := range s.Status.SpeakerProblems {
			if p.Message == "" || p.Since.IsZero() {
				t.Errorf("entry %+v has no message or since", p)
			}
			out[p.Node] = p.Reason
		}
		return out
	}
	expect := func(what string, want map[string]lbv1.SpeakerProblemReason) {
		t.Helper()
		a.pass(ctx)
		b.pass(ctx)
		if got := problems(); !maps.Equal(got, want) {
			t.Fatalf("%s: speakerProblems %v, want %v", what, got, want)
		}
	}

	expect("healthy", map[string]lbv1.SpeakerProblemReason{})
	facts["a"].Undecryptable, facts["a"].Isolated = 3, true
	facts["b"].Isolated = true
	expect("a hears another key: reported at once; b just isolated", map[string]lbv1.SpeakerProblemReason{"a": lbv1.SpeakerMembershipKeyMismatch})
	if !a.KeyMismatch() || b.KeyMismatch() {
		t.Errorf("KeyMismatch a=%v b=%v, want a only", a.KeyMismatch(), b.KeyMismatch())
	}
	clk.Step(isolatedGrace)
	expect("b isolated for the grace", map[string]lbv1.SpeakerProblemReason{"a": lbv1.SpeakerMembershipKeyMismatch, "b": lbv1.SpeakerIsolated})

	// The operator's status write (a merge patch of its conditions) keeps
	// the speakers' entries.
	var s lbv1.LoadBalancerStack
	if err := kube.Get(ctx, client.ObjectKey{Name: "lbstack"}, &s); err != nil {
		t.Fatal(err)
	}
	before := s.DeepCopy()
	meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: lbv1.ConditionAvailable, Status: metav1.ConditionTrue, Reason: "AsExpected", Message: "test"})
	if err := kube.Status().Patch(ctx, &s, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	if got := problems(); len(got) != 2 {
		t.Fatalf("after the operator's status write: %v", got)
	}

	// a's key problem ends (no new undecryptable packet for foreignWindow)
	// and it has joined: its entry goes, b's stays.
	facts["a"].Isolated = false
	clk.Step(foreignWindow)
	expect("a healed", map[string]lbv1.SpeakerProblemReason{"b": lbv1.SpeakerIsolated})
	if a.KeyMismatch() {
		t.Error("a still reports a key mismatch")
	}

	// b's speaker restarts healthy: its first pass removes the entry its
	// previous run wrote.
	facts["b"].Isolated = false
	b = reporter("b")
	expect("b restarted", map[string]lbv1.SpeakerProblemReason{})

	// a sees one of its two expected peers: nothing during a restart's
	// worth of time, then PartialMembership with the counts and the name.
	facts["a"].Missing = []string{"c"}
	expect("a misses c, within the grace", map[string]lbv1.SpeakerProblemReason{})
	clk.Step(partialGrace)
	expect("a misses c for the grace", map[string]lbv1.SpeakerProblemReason{"a": lbv1.SpeakerPartialMembership})
	if err := kube.Get(ctx, client.ObjectKey{Name: "lbstack"}, &s); err != nil {
		t.Fatal(err)
	}
	if p := s.Status.SpeakerProblems[0]; p.Expected != 2 || p.Seen != 1 || !slices.Equal(p.Missing, []string{"c"}) || !strings.Contains(p.Message, "1 of the 2") {
		t.Errorf("partial entry %+v", p)
	}
	// c comes back: the entry goes; missing again starts a new grace.
	facts["a"].Missing = nil
	expect("a sees everyone", map[string]lbv1.SpeakerProblemReason{})
	facts["a"].Missing = []string{"c"}
	clk.Step(partialGrace / 2)
	expect("a misses c again, within a new grace", map[string]lbv1.SpeakerProblemReason{})
}

func TestMissingPeers(t *testing.T) {
	live := []membership.Member{{Name: "self"}, {Name: "b"}}
	if got := missingPeers([]string{"d", "b", "c"}, live); !slices.Equal(got, []string{"c", "d"}) {
		t.Errorf("missing %v, want [c d]", got)
	}
	if got := missingPeers([]string{"b"}, live); got != nil {
		t.Errorf("missing %v, want none", got)
	}
}
