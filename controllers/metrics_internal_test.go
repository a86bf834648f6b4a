package controllers

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/ipam"
	"github.com/lbstack/lbstack/internal/testenv"
)

// TestFailureReason: every kind of allocator error has its own reason,
// wrapped or not; anything else is "other", never the message.
func TestFailureReason(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.1")
	for want, err := range map[string]error{
		FailurePoolExhausted:  &ipam.PoolExhaustedError{Pools: []string{"a"}},
		FailureIPInUse:        fmt.Errorf("assigning: %w", &ipam.IPInUseError{IP: ip, Holder: "ns/x"}),
		FailureIPNotInPool:    &ipam.NotInPoolError{IP: ip},
		FailurePoolNotFound:   &ipam.PoolNotFoundError{Pool: "gone"},
		FailurePoolNotAllowed: &ipam.NotAllowedError{Pool: "team"},
		FailureNoMatchingPool: &ipam.NoPoolError{Families: "IPv6"},
		FailureInvalidRequest: &ipam.InvalidRequestError{Reason: "requested IPs are in different pools"},
		FailureOther:          errors.New("something new"),
	} {
		if got := failureReason(err); got != want {
			t.Errorf("failureReason(%v) = %s, want %s", err, got, want)
		}
	}
}

// TestStackConditionGauges: 1 for each condition's current status, 0 for
// the others; a condition that goes away and a stack that goes away leave
// no series behind.
func TestStackConditionGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewOperatorMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	value := func(condition, status string) float64 {
		t.Helper()
		v, ok, err := testenv.MetricValue(reg, "lbstack_operator_stack_condition", map[string]string{"stack": "s", "condition": condition, "status": status})
		if err != nil || !ok {
			t.Fatalf("no series for %s=%s: %v", condition, status, err)
		}
		return v
	}
	count := func() int {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == "lbstack_operator_stack_condition" {
				return len(f.GetMetric())
			}
		}
		return 0
	}
	s := &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "s"}}
	s.Status.Conditions = []metav1.Condition{
		{Type: lbv1.ConditionAvailable, Status: metav1.ConditionTrue},
		{Type: lbv1.ConditionDegraded, Status: metav1.ConditionFalse},
		{Type: lbv1.ConditionConflictsIgnored, Status: metav1.ConditionTrue},
	}
	m.observeStack(s)
	if got := value(lbv1.ConditionAvailable, "True"); got != 1 {
		t.Errorf("Available True = %v", got)
	}
	if got := value(lbv1.ConditionDegraded, "True"); got != 0 {
		t.Errorf("Degraded True = %v", got)
	}
	if n := count(); n != 9 {
		t.Errorf("%d series for 3 conditions, want 9", n)
	}
	s.Status.Conditions = s.Status.Conditions[:2]
	m.observeStack(s)
	if n := count(); n != 6 {
		t.Errorf("%d series after ConflictsIgnored went away, want 6", n)
	}
	m.forgetStack("s")
	if n := count(); n != 0 {
		t.Errorf("%d series after the stack went away", n)
	}
	var none *OperatorMetrics
	none.observeStack(s) // no metrics: no panic
	none.childApplied("DaemonSet", true)
}
