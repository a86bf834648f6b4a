package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/render"
)

// OperatorMetrics are the operator's Prometheus metrics
// (lbstack_operator_*), counted by the StackReconciler on the leader.
type OperatorMetrics struct {
	applied    *prometheus.CounterVec
	drift      *prometheus.CounterVec
	conditions *prometheus.GaugeVec
}

// stackConditions are the condition types lbstack_operator_stack_condition
// reports.
var stackConditions = []string{lbv1.ConditionAvailable, lbv1.ConditionProgressing, lbv1.ConditionDegraded, lbv1.ConditionConflictsIgnored}

var conditionStatuses = []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown}

// NewOperatorMetrics creates the operator's metrics and registers them
// with reg (controller-runtime's metrics.Registry in the operator).
func NewOperatorMetrics(reg prometheus.Registerer) (*OperatorMetrics, error) {
	m := &OperatorMetrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lbstack_operator_children_applied_total",
			Help: "Server-side applies of a stack's children, by kind: a child created, whose desired state changed, or that had drifted (a child already holding its desired state is not written)"}, []string{"kind"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lbstack_operator_drift_repaired_total",
			Help: "Children re-applied because they had drifted: their desired state was unchanged since the last apply, but someone changed or removed fields the operator owns"}, []string{"kind"}),
		conditions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lbstack_operator_stack_condition",
			Help: "The LoadBalancerStack's status conditions: 1 for the condition's current status, 0 for the others"}, []string{"stack", "condition", "status"}),
	}
	for _, gvk := range render.Kinds() {
		m.applied.WithLabelValues(gvk.Kind)
		m.drift.WithLabelValues(gvk.Kind)
	}
	for _, c := range []prometheus.Collector{m.applied, m.drift, m.conditions} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// All methods of a nil *OperatorMetrics do nothing.

// childApplied counts one apply of a child of kind; drifted says the
// child had drifted from an unchanged desired state.
func (m *OperatorMetrics) childApplied(kind string, drifted bool) {
	if m == nil {
		return
	}
	m.applied.WithLabelValues(kind).Inc()
	if drifted {
		m.drift.WithLabelValues(kind).Inc()
	}
}

// observeStack sets the condition gauges from the stack's status.
func (m *OperatorMetrics) observeStack(s *lbv1.LoadBalancerStack) {
	if m == nil {
		return
	}
	for _, typ := range stackConditions {
		c := meta.FindStatusCondition(s.Status.Conditions, typ)
		for _, st := range conditionStatuses {
			switch {
			case c == nil:
				m.conditions.DeleteLabelValues(s.Name, typ, string(st))
			case c.Status == st:
				m.conditions.WithLabelValues(s.Name, typ, string(st)).Set(1)
			default:
				m.conditions.WithLabelValues(s.Name, typ, string(st)).Set(0)
			}
		}
	}
}

// forgetStack deletes the condition gauges of a stack that is gone.
func (m *OperatorMetrics) forgetStack(name string) {
	if m == nil {
		return
	}
	m.conditions.DeletePartialMatch(prometheus.Labels{"stack": name})
}
