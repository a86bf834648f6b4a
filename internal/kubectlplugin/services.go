package kubectlplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/configload"
	"github.com/lbstack/lbstack/internal/lbservice"
)

// ServiceReport is one LoadBalancer Service as `services` shows it.
type ServiceReport struct {
	// Namespace and Name of the Service.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// LoadBalancerClass is the Service's class ("" for none).
	LoadBalancerClass string `json:"loadBalancerClass,omitempty"`
	// Served: lbstack serves the Service (its class is lbstack's).
	Served bool `json:"served"`
	// IPs are the assigned addresses (status.loadBalancer.ingress).
	IPs []string `json:"ips,omitempty"`
	// Pool is the pool the addresses come from.
	Pool string `json:"pool,omitempty"`
	// Protocol is layer2 or bgp, from the ServiceAnnouncement.
	Protocol lbv1.AnnouncementProtocol `json:"protocol,omitempty"`
	// Announcers are the announcing nodes, with interface and MAC (layer
	// 2) or peers (BGP), and since when.
	Announcers []lbv1.AnnouncingNode `json:"announcers,omitempty"`
	// Since is when the current set of announcing nodes started.
	Since *metav1.Time `json:"since,omitempty"`
	// LastMove is the last change of announcing node and why.
	LastMove *lbv1.AnnouncementMove `json:"lastMove,omitempty"`
	// State is Announced, NotAnnounced, Pending or NotServed.
	State string `json:"state"`
	// Message says why the Service is not announced, or pending.
	Message string `json:"message,omitempty"`
}

// Service states.
const (
	StateAnnounced    = "Announced"
	StateNotAnnounced = "NotAnnounced"
	StatePending      = "Pending"
	StateNotServed    = "NotServed"
)

func servicesFlags(fs *pflag.FlagSet, o *Options) func(context.Context, *Options, []string, IO) error {
	var watchFlag bool
	fs.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "the Services of every namespace")
	fs.BoolVarP(&watchFlag, "watch", "w", false, "after the list, print a Service again each time it changes (until interrupted)")
	return func(ctx context.Context, o *Options, args []string, stdio IO) error {
		if err := noArgs(args); err != nil {
			return err
		}
		if err := o.connect(); err != nil {
			return err
		}
		if watchFlag {
			return watchServices(ctx, o, stdio.Out)
		}
		st, err := loadServices(ctx, o)
		if err != nil {
			return err
		}
		reports := st.reports()
		if o.Output != "" && o.Output != "table" {
			return printObject(stdio.Out, o.Output, reports)
		}
		if len(reports) == 0 {
			where := "namespace " + o.Namespace
			if o.AllNamespaces {
				where = "any namespace"
			}
			fmt.Fprintf(stdio.Out, "No LoadBalancer Services in %s.\n", where)
			return nil
		}
		t := newServiceTable(stdio.Out, o)
		for _, r := range reports {
			t.add(r)
		}
		return t.flush()
	}
}

// serviceState is what the services report is made from.
type serviceState struct {
	o *Options
	// class is the stack's loadBalancerClass; cfg the configuration in
	// force (nil when there is none or it is invalid).
	class         string
	cfg           *config.Config
	services      map[types.NamespacedName]*corev1.Service
	announcements map[types.NamespacedName]*lbv1.ServiceAnnouncement
	// failures are the latest allocation failure message per Service.
	failures map[types.NamespacedName]string
	// svcRV and annRV are the lists' resource versions (watches start there).
	svcRV, annRV string
}

func (o *Options) scope() []client.ListOption {
	if o.AllNamespaces {
		return nil
	}
	return []client.ListOption{client.InNamespace(o.Namespace)}
}

func (o *Options) scopeText() string {
	if o.AllNamespaces {
		return "in all namespaces"
	}
	return "in namespace " + o.Namespace
}

// loadConfig reads the lbstack configuration and builds what is in force.
func loadConfig(ctx context.Context, o *Options) (*config.Config, string, error) {
	objs, err := configload.List(ctx, o.client)
	if err != nil {
		return nil, "", o.read("list the lbstack configuration (LoadBalancerStacks, IPAddressPools, advertisements, BGPPeers)", err)
	}
	cfg, _, _, errs := config.InForce(objs)
	class := ""
	if s := config.StackInForce(objs.Stacks); s != nil {
		class = s.Spec.LoadBalancerClass
	}
	if len(errs) > 0 {
		return nil, class, nil
	}
	return cfg, class, nil
}

func loadServices(ctx context.Context, o *Options) (*serviceState, error) {
	ctx, cancel := o.timeout(ctx)
	defer cancel()
	st := &serviceState{o: o, services: map[types.NamespacedName]*corev1.Service{},
		announcements: map[types.NamespacedName]*lbv1.ServiceAnnouncement{}, failures: map[types.NamespacedName]string{}}
	var err error
	if st.cfg, st.class, err = loadConfig(ctx, o); err != nil {
		return nil, err
	}
	var svcs corev1.ServiceList
	if err := o.client.List(ctx, &svcs, o.scope()...); err != nil {
		return nil, o.read("list Services "+o.scopeText(), err)
	}
	st.svcRV = svcs.ResourceVersion
	for i := range svcs.Items {
		st.services[client.ObjectKeyFromObject(&svcs.Items[i])] = &svcs.Items[i]
	}
	var anns lbv1.ServiceAnnouncementList
	if err := o.client.List(ctx, &anns, o.scope()...); err != nil {
		return nil, o.read("list ServiceAnnouncements "+o.scopeText(), err)
	}
	st.annRV = anns.ResourceVersion
	for i := range anns.Items {
		st.announcements[client.ObjectKeyFromObject(&anns.Items[i])] = &anns.Items[i]
	}
	st.loadFailures(ctx)
	return st, nil
}

// loadFailures reads the controller's AllocationFailed events of pending
// Services. Events are a help, not a need: a read the user may not make is
// skipped.
func (st *serviceState) loadFailures(ctx context.Context) {
	pending := false
	for _, s := range st.services {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer && len(lbservice.IngressIPs(s)) == 0 {
			pending = true
		}
	}
	if !pending {
		return
	}
	var evs eventsv1.EventList
	if err := st.o.client.List(ctx, &evs, st.o.scope()...); err != nil {
		return
	}
	latest := map[types.NamespacedName]time.Time{}
	for _, e := range evs.Items {
		if e.Regarding.Kind != "Service" || e.Reason != "AllocationFailed" {
			continue
		}
		k := types.NamespacedName{Namespace: e.Regarding.Namespace, Name: e.Regarding.Name}
		at := e.EventTime.Time
		if e.Series != nil {
			at = e.Series.LastObservedTime.Time
		}
		if at.IsZero() {
			at = e.CreationTimestamp.Time
		}
		if at.Before(latest[k]) {
			continue
		}
		latest[k] = at
		st.failures[k] = e.Note
	}
}

// reports returns the LoadBalancer Services' reports, by namespace and name.
func (st *serviceState) reports() []ServiceReport {
	var out []ServiceReport
	for k, s := range st.services {
		if r, ok := st.report(k, s); ok {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b ServiceReport) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out
}

// report builds one Service's report; ok is false for a Service that is
// not of type LoadBalancer.
func (st *serviceState) report(k types.NamespacedName, s *corev1.Service) (ServiceReport, bool) {
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return ServiceReport{}, false
	}
	r := ServiceReport{Namespace: k.Namespace, Name: k.Name}
	if s.Spec.LoadBalancerClass != nil {
		r.LoadBalancerClass = *s.Spec.LoadBalancerClass
	}
	r.Served = lbservice.Serves(s, st.class)
	ips := lbservice.IngressIPs(s)
	for _, ip := range ips {
		r.IPs = append(r.IPs, ip.String())
	}
	r.Pool = s.Annotations[lbv1.AnnotationAllocatedFromPool]
	if r.Pool == "" && st.cfg != nil && len(ips) > 0 {
		r.Pool = lbservice.PoolOf(st.cfg, "", ips[0])
	}
	if a := st.announcements[k]; a != nil {
		r.Protocol = a.Status.Protocol
		r.Announcers = a.Status.Nodes
		r.Since = a.Status.Since
		r.LastMove = a.Status.LastMove
	}
	switch {
	case !r.Served:
		r.State = StateNotServed
		r.Message = fmt.Sprintf("loadBalancerClass %q is not lbstack's (%q)", r.LoadBalancerClass, st.class)
	case len(ips) == 0:
		r.State = StatePending
		r.Message = st.failures[k]
		if r.Message == "" {
			r.Message = "no address assigned yet"
		}
	case len(r.Announcers) == 0:
		r.State = StateNotAnnounced
		r.Message = fmt.Sprintf("no node announces it; run `kubectl lbstack explain-ip %s`", ips[0])
	default:
		r.State = StateAnnounced
	}
	return r, true
}

// serviceTable prints ServiceReports as rows.
type serviceTable struct {
	*table
	o *Options
}

func newServiceTable(out io.Writer, o *Options) *serviceTable {
	h := []string{"NAME", "IPS", "POOL", "PROTOCOL", "ANNOUNCED BY", "SINCE", "LAST MOVE", "STATE"}
	if o.AllNamespaces {
		h = append([]string{"NAMESPACE"}, h...)
	}
	return &serviceTable{table: newTable(out, h...), o: o}
}

func (t *serviceTable) add(r ServiceReport) {
	ips := strings.Join(r.IPs, ",")
	if len(r.IPs) == 0 {
		ips = "<pending>"
	}
	var by []string
	for _, n := range r.Announcers {
		switch {
		case n.Protocol == lbv1.ProtocolBGP:
			by = append(by, fmt.Sprintf("%s → %s", n.Node, joinOr(n.Peers, ",")))
		case n.Interface != "" || n.MAC != "":
			by = append(by, fmt.Sprintf("%s (%s %s)", n.Node, n.Interface, n.MAC))
		default:
			by = append(by, n.Node)
		}
	}
	since := "-"
	if r.Since != nil {
		since = age(t.o.Now, r.Since.Time)
	}
	state := r.State
	if r.Message != "" && r.State != StateAnnounced {
		state += ": " + r.Message
	}
	cells := []string{r.Name, ips, r.Pool, string(r.Protocol), joinOr(by, "; "), since, moveText(t.o, r.LastMove), state}
	if t.o.AllNamespaces {
		cells = append([]string{r.Namespace}, cells...)
	}
	t.row(cells...)
}

// moveText is "Reason from → to, 5m ago, detected in 412ms".
func moveText(o *Options, m *lbv1.AnnouncementMove) string {
	if m == nil {
		return "-"
	}
	from, to := m.From, m.To
	if from == "" {
		from = "(none)"
	}
	if to == "" {
		to = "(none)"
	}
	s := fmt.Sprintf("%s %s → %s, %s ago", m.Reason, from, to, age(o.Now, m.At.Time))
	if m.DetectionTime != nil {
		s += fmt.Sprintf(", detected in %s", m.DetectionTime.Duration.Round(time.Millisecond))
	}
	return s
}

// watchServices prints every Service once, then again each time its
// report changes, until ctx ends. A watch the server closes is resumed
// from a fresh list (only what changed meanwhile is printed).
func watchServices(ctx context.Context, o *Options, out io.Writer) error {
	printed := map[types.NamespacedName]string{}
	var t *serviceTable
	emit := func(st *serviceState, k types.NamespacedName) error {
		s := st.services[k]
		var r ServiceReport
		ok := false
		if s != nil {
			r, ok = st.report(k, s)
		}
		if !ok {
			if _, was := printed[k]; was {
				delete(printed, k)
				r = ServiceReport{Namespace: k.Namespace, Name: k.Name, State: "Deleted"}
			} else {
				return nil
			}
		}
		b, _ := json.Marshal(r)
		if ok && printed[k] == string(b) {
			return nil
		}
		if ok {
			printed[k] = string(b)
		}
		switch o.Output {
		case "json":
			_, err := fmt.Fprintf(out, "%s\n", b)
			return err
		case "yaml":
			y, err := yaml.Marshal(r)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "---\n%s", y)
			return err
		}
		if t == nil {
			t = newServiceTable(out, o)
		}
		t.add(r)
		return t.flush()
	}
	for {
		st, err := loadServices(ctx, o)
		if err != nil {
			return err
		}
		keys := make([]types.NamespacedName, 0, len(st.services))
		for k := range st.services {
			keys = append(keys, k)
		}
		for k := range printed {
			if st.services[k] == nil {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			if err := emit(st, k); err != nil {
				return err
			}
		}
		if err := followServices(ctx, o, st, emit); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// followServices applies watch events of Services and ServiceAnnouncements
// to st and emits each touched Service, until a watch ends (nil: resume)
// or ctx does.
func followServices(ctx context.Context, o *Options, st *serviceState, emit func(*serviceState, types.NamespacedName) error) error {
	from := func(rv string) []client.ListOption {
		return append(o.scope(), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
	}
	svcW, err := o.client.Watch(ctx, &corev1.ServiceList{}, from(st.svcRV)...)
	if err != nil {
		return o.read("watch Services "+o.scopeText(), err)
	}
	defer svcW.Stop()
	annW, err := o.client.Watch(ctx, &lbv1.ServiceAnnouncementList{}, from(st.annRV)...)
	if err != nil {
		return o.read("watch ServiceAnnouncements "+o.scopeText(), err)
	}
	defer annW.Stop()
	for {
		var ev watch.Event
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case ev, ok = <-svcW.ResultChan():
		case ev, ok = <-annW.ResultChan():
		}
		if !ok || ev.Type == watch.Error {
			return nil // resume from a fresh list
		}
		var k types.NamespacedName
		switch obj := ev.Object.(type) {
		case *corev1.Service:
			k = client.ObjectKeyFromObject(obj)
			if ev.Type == watch.Deleted {
				delete(st.services, k)
			} else {
				st.services[k] = obj
			}
		case *lbv1.ServiceAnnouncement:
			k = client.ObjectKeyFromObject(obj)
			if ev.Type == watch.Deleted {
				delete(st.announcements, k)
			} else {
				st.announcements[k] = obj
			}
		default:
			continue
		}
		if err := emit(st, k); err != nil {
			return err
		}
	}
}

// parseIP parses an address given on the command line.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, usagef("%q is not an IP address", s)
	}
	return ip.Unmap(), nil
}
