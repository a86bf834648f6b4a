package kubectlplugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/render"
)

// ControllerLeaseName is the controller's leader-election Lease.
const ControllerLeaseName = "lbstack-controller.lbstack.io"

// StatusReport is what `status` shows.
type StatusReport struct {
	// Stack is the LoadBalancerStack in force (nil when there is none).
	Stack *StackReport `json:"stack,omitempty"`
	// IgnoredStacks are other stacks, which are not in force.
	IgnoredStacks []string `json:"ignoredStacks,omitempty"`
	// Namespace is where the controller and the speakers run.
	Namespace string `json:"namespace"`
	// Controller is the controller Deployment and its leader.
	Controller ControllerReport `json:"controller"`
	// Speakers has one entry per node.
	Speakers []SpeakerReport `json:"speakers"`
}

// StackReport is the stack's state.
type StackReport struct {
	Name               string             `json:"name"`
	LoadBalancerClass  string             `json:"loadBalancerClass,omitempty"`
	Generation         int64              `json:"generation"`
	ObservedGeneration int64              `json:"observedGeneration"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	// SpeakersReady and SpeakersDesired are the operator's counts.
	SpeakersReady   int32 `json:"speakersReady"`
	SpeakersDesired int32 `json:"speakersDesired"`
}

// ControllerReport is the controller's state.
type ControllerReport struct {
	// Found: the Deployment exists.
	Found bool `json:"found"`
	// Ready and Desired replicas.
	Ready   int32 `json:"ready"`
	Desired int32 `json:"desired"`
	// Leader is the pod holding the Lease ("" when none does).
	Leader string `json:"leader,omitempty"`
	// LeaseRenewed is when the leader last renewed the Lease.
	LeaseRenewed *metav1.MicroTime `json:"leaseRenewed,omitempty"`
	// LeaseExpired: the leader stopped renewing (no leader right now).
	LeaseExpired bool `json:"leaseExpired,omitempty"`
}

// SpeakerReport is one node's speaker.
type SpeakerReport struct {
	Node string `json:"node"`
	// NodeReady is the node's Ready condition.
	NodeReady bool `json:"nodeReady"`
	// Pod is the speaker pod on the node ("" when none runs there).
	Pod string `json:"pod,omitempty"`
	// Ready is the pod's Ready condition: the speaker has a valid
	// configuration, its listeners and, when peers are expected, has
	// joined them.
	Ready bool `json:"ready"`
	// Version is the speaker image's tag (or digest).
	Version string `json:"version,omitempty"`
	// Restarts of the speaker container.
	Restarts int32 `json:"restarts"`
	// Members is the speakers this one has joined out of those it expects
	// on other Ready nodes: "1/3" from its membership problem, "all" when
	// it is Ready and reports none (a speaker that misses an expected peer
	// for 30 s says so), "" without a pod.
	Members string `json:"members,omitempty"`
	// Problem is the speaker's membership problem, if it reports one.
	Problem *lbv1.SpeakerProblem `json:"problem,omitempty"`
	// Excluded: the node is labelled to be left out of load balancers.
	Excluded bool `json:"excluded,omitempty"`
}

func statusFlags(fs *pflag.FlagSet, o *Options) func(context.Context, *Options, []string, IO) error {
	return func(ctx context.Context, o *Options, args []string, stdio IO) error {
		if err := noArgs(args); err != nil {
			return err
		}
		if err := o.connect(); err != nil {
			return err
		}
		r, err := statusReport(ctx, o)
		if err != nil {
			return err
		}
		if o.Output != "" && o.Output != "table" {
			return printObject(stdio.Out, o.Output, r)
		}
		return printStatus(stdio.Out, o, r)
	}
}

func statusReport(ctx context.Context, o *Options) (*StatusReport, error) {
	ctx, cancel := o.timeout(ctx)
	defer cancel()
	r := &StatusReport{}
	var stacks lbv1.LoadBalancerStackList
	if err := o.client.List(ctx, &stacks); err != nil {
		return nil, o.read("list LoadBalancerStacks", err)
	}
	inForce := config.StackInForce(stacks.Items)
	for _, s := range stacks.Items {
		if inForce != nil && s.Name == inForce.Name {
			continue
		}
		r.IgnoredStacks = append(r.IgnoredStacks, s.Name)
	}
	if inForce != nil {
		r.Stack = &StackReport{Name: inForce.Name, LoadBalancerClass: inForce.Spec.LoadBalancerClass, Generation: inForce.Generation,
			ObservedGeneration: inForce.Status.ObservedGeneration, Conditions: inForce.Status.Conditions,
			SpeakersReady: inForce.Status.SpeakersReady, SpeakersDesired: inForce.Status.SpeakersDesired}
	}
	ns := o.lbstackNamespace(ctx)
	r.Namespace = ns

	var dep appsv1.Deployment
	switch err := o.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: render.ControllerName}, &dep); {
	case err == nil:
		r.Controller.Found = true
		r.Controller.Ready = dep.Status.ReadyReplicas
		if dep.Spec.Replicas != nil {
			r.Controller.Desired = *dep.Spec.Replicas
		}
	case apierrors.IsNotFound(err):
	default:
		return nil, o.read(fmt.Sprintf("get Deployment %s/%s", ns, render.ControllerName), err)
	}
	var lease coordinationv1.Lease
	switch err := o.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: ControllerLeaseName}, &lease); {
	case err == nil:
		if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
			// controller-runtime's identity is "<pod>_<uuid>".
			r.Controller.Leader, _, _ = strings.Cut(*h, "_")
		}
		r.Controller.LeaseRenewed = lease.Spec.RenewTime
		if lease.Spec.RenewTime != nil && lease.Spec.LeaseDurationSeconds != nil {
			expires := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
			r.Controller.LeaseExpired = o.Now().After(expires)
		}
	case apierrors.IsNotFound(err):
	default:
		return nil, o.read(fmt.Sprintf("get Lease %s/%s", ns, ControllerLeaseName), err)
	}

	var nodes corev1.NodeList
	if err := o.client.List(ctx, &nodes); err != nil {
		return nil, o.read("list Nodes", err)
	}
	var pods corev1.PodList
	if err := o.client.List(ctx, &pods, client.InNamespace(ns),
		client.MatchingLabels{render.LabelName: render.AppName, render.LabelComponent: render.ComponentSpeaker}); err != nil {
		return nil, o.read("list the speaker pods in namespace "+ns, err)
	}
	byNode := map[string]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil && byNode[p.Spec.NodeName] != nil {
			continue
		}
		byNode[p.Spec.NodeName] = p
	}
	problems := map[string]lbv1.SpeakerProblem{}
	if inForce != nil {
		for _, p := range inForce.Status.SpeakerProblems {
			problems[p.Node] = p
		}
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		s := SpeakerReport{Node: n.Name, NodeReady: nodeReady(n)}
		_, s.Excluded = n.Labels[lbv1.LabelExcludeFromExternalLoadBalancers]
		if p := byNode[n.Name]; p != nil {
			s.Pod = p.Name
			s.Ready = podReady(p)
			for _, c := range p.Spec.Containers {
				if c.Name == "speaker" || len(p.Spec.Containers) == 1 {
					s.Version = imageVersion(c.Image)
				}
			}
			for _, cs := range p.Status.ContainerStatuses {
				s.Restarts += cs.RestartCount
			}
		}
		if p, ok := problems[n.Name]; ok {
			s.Problem = &p
		}
		switch {
		case s.Problem != nil && (s.Problem.Expected > 0 || s.Problem.Reason == lbv1.SpeakerIsolated):
			s.Members = fmt.Sprintf("%d/%d", s.Problem.Seen, s.Problem.Expected)
		case s.Problem != nil:
			s.Members = "?"
		case s.Pod != "" && s.Ready:
			s.Members = "all"
		}
		r.Speakers = append(r.Speakers, s)
	}
	slices.SortFunc(r.Speakers, func(a, b SpeakerReport) int { return strings.Compare(a.Node, b.Node) })
	return r, nil
}

func printStatus(out io.Writer, o *Options, r *StatusReport) error {
	if r.Stack == nil {
		fmt.Fprintln(out, "Stack:       none in force (apply a LoadBalancerStack)")
	} else {
		class := r.Stack.LoadBalancerClass
		if class == "" {
			class = "(none: Services without a class)"
		}
		fmt.Fprintf(out, "Stack:       %s (loadBalancerClass %s, generation %d, observed %d)\n", r.Stack.Name, class, r.Stack.Generation, r.Stack.ObservedGeneration)
		conds := slices.Clone(r.Stack.Conditions)
		slices.SortFunc(conds, func(a, b metav1.Condition) int { return strings.Compare(a.Type, b.Type) })
		for _, c := range conds {
			fmt.Fprintf(out, "  %-18s %-6s %s, %s ago: %s\n", c.Type, c.Status, c.Reason, age(o.Now, c.LastTransitionTime.Time), c.Message)
		}
	}
	for _, s := range r.IgnoredStacks {
		fmt.Fprintf(out, "Ignored:     LoadBalancerStack %s (only one stack is in force)\n", s)
	}
	fmt.Fprintf(out, "Namespace:   %s\n", r.Namespace)
	c := r.Controller
	switch {
	case !c.Found:
		fmt.Fprintf(out, "Controller:  no Deployment %s/%s\n", r.Namespace, render.ControllerName)
	default:
		leader := "none"
		if c.Leader != "" {
			leader = c.Leader
			if c.LeaseRenewed != nil {
				leader += fmt.Sprintf(" (renewed %s ago)", age(o.Now, c.LeaseRenewed.Time))
			}
			if c.LeaseExpired {
				leader += " EXPIRED: no leader assigns addresses"
			}
		}
		fmt.Fprintf(out, "Controller:  %d/%d ready, leader %s\n", c.Ready, c.Desired, leader)
	}
	ready := 0
	for _, s := range r.Speakers {
		if s.Ready {
			ready++
		}
	}
	fmt.Fprintf(out, "Speakers:    %d ready on %d nodes\n\n", ready, len(r.Speakers))
	t := newTable(out, "NODE", "NODE READY", "SPEAKER", "READY", "MEMBERS SEEN", "VERSION", "RESTARTS", "PROBLEM")
	for _, s := range r.Speakers {
		problem := ""
		switch {
		case s.Problem != nil:
			problem = fmt.Sprintf("%s since %s ago: %s", s.Problem.Reason, age(o.Now, s.Problem.Since.Time), s.Problem.Message)
			if len(s.Problem.Missing) > 0 {
				problem += " (missing: " + strings.Join(s.Problem.Missing, ", ") + ")"
			}
		case s.Excluded:
			problem = "node excluded from load balancers (label)"
		case s.Pod == "":
			problem = "no speaker pod on the node (speaker.nodeSelector or taints)"
		}
		ready, restarts := "", ""
		if s.Pod != "" {
			ready, restarts = fmt.Sprint(s.Ready), fmt.Sprint(s.Restarts)
		}
		t.row(s.Node, fmt.Sprint(s.NodeReady), s.Pod, ready, s.Members, s.Version, restarts, problem)
	}
	return t.flush()
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// imageVersion is the tag or digest of an image reference.
func imageVersion(image string) string {
	if _, d, ok := strings.Cut(image, "@"); ok {
		return d
	}
	slash := strings.LastIndex(image, "/")
	if i := strings.LastIndex(image, ":"); i > slash {
		return image[i+1:]
	}
	return "latest"
}
