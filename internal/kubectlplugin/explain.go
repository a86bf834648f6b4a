package kubectlplugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/lbservice"
	"github.com/lbstack/lbstack/internal/render"
	"github.com/lbstack/lbstack/speaker/election"
	"github.com/lbstack/lbstack/speaker/plan"
)

// ExplainReport is what `explain-ip` shows.
type ExplainReport struct {
	// IP is the address explained.
	IP string `json:"ip"`
	// Pool is the pool holding it ("" when none does).
	Pool string `json:"pool,omitempty"`
	// Services are the Services holding it (namespace/name).
	Services []string `json:"services,omitempty"`
	// L2Advertisements and BGPAdvertisements cover the pool and select a
	// Service holding the address.
	L2Advertisements  []string `json:"l2Advertisements,omitempty"`
	BGPAdvertisements []string `json:"bgpAdvertisements,omitempty"`
	// Announcers are the nodes the speakers report announcing it (from
	// the ServiceAnnouncements).
	Announcers []lbv1.AnnouncingNode `json:"announcers,omitempty"`
	// LastMove is the last move the speakers recorded.
	LastMove *lbv1.AnnouncementMove `json:"lastMove,omitempty"`
	// ElectionKey is the address the layer-2 election ranks nodes for.
	ElectionKey string `json:"electionKey,omitempty"`
	// ExpectedOwner is the layer-2 node the election picks among the
	// eligible nodes whose speaker is Ready.
	ExpectedOwner string `json:"expectedOwner,omitempty"`
	// Layer2 and BGP have one entry per node.
	Layer2 []NodeExplanation `json:"layer2,omitempty"`
	BGP    []NodeExplanation `json:"bgp,omitempty"`
	// Verdict says in one sentence who announces the address and why, or
	// why nobody does.
	Verdict string `json:"verdict"`
}

// NodeExplanation is one node's part in announcing the address.
type NodeExplanation struct {
	Node string `json:"node"`
	// Eligible: the configuration lets the node announce the address.
	Eligible bool `json:"eligible"`
	// SpeakerReady: the node's speaker pod is Ready (the API's view of a
	// live speaker; the speakers themselves decide by their membership).
	SpeakerReady bool `json:"speakerReady"`
	// Rank is the node's place in the layer-2 election among the live
	// candidates (1 announces; 2 takes over when 1 fails); 0 when not ranked.
	Rank int `json:"rank,omitempty"`
	// Interfaces (layer 2) the node answers on; empty means all.
	Interfaces []string `json:"interfaces,omitempty"`
	// Peers (BGP) the node advertises to, each with the state of its
	// session as the node's speaker reports it: "tor (Established)".
	Peers []string `json:"peers,omitempty"`
	// Established (BGP) counts the node's Established sessions among Peers.
	Established int `json:"established,omitempty"`
	// Reason the node is not eligible, or not a live candidate.
	Reason string `json:"reason,omitempty"`
}

func explainFlags(fs *pflag.FlagSet, o *Options) func(context.Context, *Options, []string, IO) error {
	return func(ctx context.Context, o *Options, args []string, stdio IO) error {
		if len(args) != 1 {
			return usagef("needs exactly one IP address, got %d arguments", len(args))
		}
		ip, err := parseIP(args[0])
		if err != nil {
			return err
		}
		if err := o.connect(); err != nil {
			return err
		}
		r, err := explainIP(ctx, o, ip.String())
		if err != nil {
			return err
		}
		if o.Output != "" && o.Output != "table" {
			return printObject(stdio.Out, o.Output, r)
		}
		return printExplain(stdio.Out, o, r)
	}
}

func explainIP(ctx context.Context, o *Options, ipText string) (*ExplainReport, error) {
	ctx, cancel := o.timeout(ctx)
	defer cancel()
	ip, _ := parseIP(ipText)
	r := &ExplainReport{IP: ip.String()}
	cfg, class, err := loadConfig(ctx, o)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		r.Verdict = "No valid lbstack configuration is in force (no LoadBalancerStack, or its configuration is invalid: see kubectl lbstack status), so nobody announces anything."
		return r, nil
	}
	var svcs corev1.ServiceList
	if err := o.client.List(ctx, &svcs); err != nil {
		return nil, o.read("list Services in all namespaces", err)
	}
	var states []plan.ServiceState
	var holders []*corev1.Service
	for i := range svcs.Items {
		s := &svcs.Items[i]
		if !lbservice.Serves(s, class) || !slices.Contains(lbservice.IngressIPs(s), ip) {
			continue
		}
		st := plan.ServiceState{Key: client.ObjectKeyFromObject(s), IPs: lbservice.IngressIPs(s), Labels: labels.Set(s.Labels),
			Pool: s.Annotations[lbv1.AnnotationAllocatedFromPool], Local: s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal}
		if st.Local {
			if st.EndpointNodes, err = endpointNodes(ctx, o, s); err != nil {
				return nil, err
			}
		}
		states = append(states, st)
		holders = append(holders, s)
	}
	var nodeList corev1.NodeList
	if err := o.client.List(ctx, &nodeList); err != nil {
		return nil, o.read("list Nodes", err)
	}
	nodes := make([]plan.NodeState, 0, len(nodeList.Items))
	for i := range nodeList.Items {
		nodes = append(nodes, plan.NodeOf(&nodeList.Items[i]))
	}
	slices.SortFunc(nodes, func(a, b plan.NodeState) int { return strings.Compare(a.Name, b.Name) })
	ex := plan.Explain(cfg, states, ip, nodes)
	r.Pool, r.Services, r.L2Advertisements, r.BGPAdvertisements = ex.Pool, ex.Services, ex.L2Advertisements, ex.BGPAdvertisements

	// What the speakers report.
	for _, s := range holders {
		var a lbv1.ServiceAnnouncement
		if err := o.client.Get(ctx, client.ObjectKeyFromObject(s), &a); err != nil {
			if client.IgnoreNotFound(err) != nil {
				return nil, o.read("get ServiceAnnouncement "+client.ObjectKeyFromObject(s).String(), err)
			}
			continue
		}
		for _, n := range a.Status.Nodes {
			if !slices.ContainsFunc(r.Announcers, func(x lbv1.AnnouncingNode) bool { return x.Node == n.Node && x.Protocol == n.Protocol }) {
				r.Announcers = append(r.Announcers, n)
			}
		}
		if m := a.Status.LastMove; m != nil && (r.LastMove == nil || r.LastMove.At.Before(&m.At)) {
			r.LastMove = m
		}
	}
	slices.SortFunc(r.Announcers, func(a, b lbv1.AnnouncingNode) int { return strings.Compare(a.Node, b.Node) })

	// Which speakers are live, as far as the API can tell.
	live := map[string]bool{}
	if len(ex.L2) > 0 || len(ex.BGP) > 0 {
		ns := o.lbstackNamespace(ctx)
		var pods corev1.PodList
		if err := o.client.List(ctx, &pods, client.InNamespace(ns),
			client.MatchingLabels{render.LabelName: render.AppName, render.LabelComponent: render.ComponentSpeaker}); err != nil {
			return nil, o.read("list the speaker pods in namespace "+ns, err)
		}
		for i := range pods.Items {
			if p := &pods.Items[i]; p.Spec.NodeName != "" && p.DeletionTimestamp == nil && podReady(p) {
				live[p.Spec.NodeName] = true
			}
		}
	}

	if len(ex.L2) > 0 {
		r.ElectionKey = ex.ElectionKey.String()
		var cands []string
		for _, v := range ex.L2 {
			if v.Eligible && live[v.Node] {
				cands = append(cands, v.Node)
			}
		}
		ranking := election.Ranking(ex.ElectionKey, cands)
		if len(ranking) > 0 {
			r.ExpectedOwner = ranking[0]
		}
		for _, v := range ex.L2 {
			e := NodeExplanation{Node: v.Node, Eligible: v.Eligible, SpeakerReady: live[v.Node], Interfaces: v.Interfaces, Reason: v.Reason}
			e.Rank = slices.Index(ranking, v.Node) + 1
			if v.Eligible && !live[v.Node] {
				e.Reason = "eligible, but its speaker is not Ready (not a live member)"
			}
			r.Layer2 = append(r.Layer2, e)
		}
		slices.SortStableFunc(r.Layer2, func(a, b NodeExplanation) int {
			ra, rb := a.Rank, b.Rank
			if ra == 0 {
				ra = 1 << 30
			}
			if rb == 0 {
				rb = 1 << 30
			}
			return ra - rb
		})
	}
	sessions := map[string]lbv1.BGPSessionState{} // "peer/node"
	if len(ex.BGP) > 0 {
		var peers lbv1.BGPPeerList
		if err := o.client.List(ctx, &peers); err != nil {
			return nil, o.read("list BGPPeers", err)
		}
		for _, p := range peers.Items {
			for _, n := range p.Status.Nodes {
				sessions[p.Name+"/"+n.Node] = n.State
			}
		}
	}
	for _, v := range ex.BGP {
		e := NodeExplanation{Node: v.Node, Eligible: v.Eligible, SpeakerReady: live[v.Node], Reason: v.Reason}
		for _, p := range v.Peers {
			state := sessions[p+"/"+v.Node]
			if state == "" {
				state = "no session reported"
			}
			e.Peers = append(e.Peers, fmt.Sprintf("%s (%s)", p, state))
			if state == lbv1.BGPSessionEstablished {
				e.Established++
			}
		}
		switch {
		case v.Eligible && !live[v.Node]:
			e.Reason = "eligible, but its speaker is not Ready"
		case v.Eligible && e.Established == 0:
			e.Reason = "eligible, but none of its sessions is Established: no router learns the route from it"
		}
		r.BGP = append(r.BGP, e)
	}
	r.Verdict = verdict(r, ex)
	return r, nil
}

// verdict says who announces the address and why, or why nobody does.
func verdict(r *ExplainReport, ex plan.Explanation) string {
	switch {
	case r.Pool == "":
		return fmt.Sprintf("%s is in no pool of the configuration in force, so lbstack neither assigns nor announces it.", r.IP)
	case len(r.Services) == 0:
		return fmt.Sprintf("%s is in pool %s but no Service lbstack serves holds it: it is free, and nobody announces it.", r.IP, r.Pool)
	case len(r.L2Advertisements) == 0 && len(r.BGPAdvertisements) == 0:
		return fmt.Sprintf("No L2Advertisement or BGPAdvertisement covers pool %s and selects %s (serviceSelectors): the address is assigned but not announced, as in MetalLB.",
			r.Pool, strings.Join(r.Services, ", "))
	}
	var parts []string
	if len(r.Layer2) > 0 {
		actual := ""
		for _, a := range r.Announcers {
			if a.Protocol == lbv1.ProtocolLayer2 {
				actual = a.Node
			}
		}
		live := 0
		eligible := 0
		for _, n := range r.Layer2 {
			if n.Rank > 0 {
				live++
			}
			if n.Eligible {
				eligible++
			}
		}
		switch {
		case eligible == 0:
			parts = append(parts, "Layer 2: no node is eligible (see the reasons below), so nobody answers ARP/NDP for it.")
		case r.ExpectedOwner == "" && actual == "":
			parts = append(parts, fmt.Sprintf("Layer 2: %s eligible but none has a Ready speaker, so nobody answers ARP/NDP for it.", plural(eligible, "node is")))
		case actual == "":
			parts = append(parts, fmt.Sprintf("Layer 2: the election picks %s (first of %s for key %s) but no speaker reports announcing it yet.", r.ExpectedOwner, plural(live, "live candidate"), r.ElectionKey))
		case actual == r.ExpectedOwner:
			parts = append(parts, fmt.Sprintf("Layer 2: %s answers for it: of the %s with a live speaker it ranks first in the election for key %s (rendezvous hashing of node name and address, computed alike by every speaker).", actual, plural(live, "eligible node"), r.ElectionKey))
		default:
			parts = append(parts, fmt.Sprintf("Layer 2: %s answers for it, while by Ready speaker pods the election would pick %s: the speakers elect over their own membership, which sees something the API does not (a speaker that is Ready but unreachable to the others, a node whose interfaces lost carrier, or a move under way).", actual, r.ExpectedOwner))
		}
	}
	if len(r.BGP) > 0 {
		var adv, down []string
		for _, n := range r.BGP {
			switch {
			case n.Eligible && n.SpeakerReady && n.Established > 0:
				adv = append(adv, n.Node)
			case n.Eligible:
				down = append(down, n.Node)
			}
		}
		if len(adv) == 0 {
			parts = append(parts, "BGP: no eligible node with a Ready speaker has an Established session, so no router learns it.")
		} else {
			parts = append(parts, fmt.Sprintf("BGP: advertised to the routers from %s (every eligible node with an Established session advertises; the routers spread traffic over them).", strings.Join(adv, ", ")))
		}
		if len(down) > 0 {
			parts = append(parts, fmt.Sprintf("Eligible but not advertising now: %s (see below).", strings.Join(down, ", ")))
		}
	}
	return strings.Join(parts, " ")
}

func printExplain(out io.Writer, o *Options, r *ExplainReport) error {
	fmt.Fprintf(out, "IP:          %s\n", r.IP)
	fmt.Fprintf(out, "Pool:        %s\n", orDash(r.Pool))
	fmt.Fprintf(out, "Services:    %s\n", joinOr(r.Services, ", "))
	if r.Pool != "" && len(r.Services) > 0 {
		fmt.Fprintf(out, "Advertised:  layer2 by %s; bgp by %s\n", joinOr(r.L2Advertisements, ", "), joinOr(r.BGPAdvertisements, ", "))
	}
	for _, a := range r.Announcers {
		detail := ""
		if a.Protocol == lbv1.ProtocolBGP {
			detail = "to " + joinOr(a.Peers, ", ")
		} else {
			detail = fmt.Sprintf("on %s (%s)", orDash(a.Interface), orDash(a.MAC))
		}
		fmt.Fprintf(out, "Announced:   %s %s %s, since %s ago\n", a.Node, a.Protocol, detail, age(o.Now, a.Since.Time))
	}
	if r.LastMove != nil {
		fmt.Fprintf(out, "Last move:   %s", moveText(o, r.LastMove))
		if r.LastMove.Message != "" {
			fmt.Fprintf(out, ": %s", r.LastMove.Message)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "\n%s\n", r.Verdict)
	if len(r.Layer2) > 0 {
		fmt.Fprintf(out, "\nLayer 2 (election key %s):\n", r.ElectionKey)
		t := newTable(out, "RANK", "NODE", "ELIGIBLE", "SPEAKER READY", "INTERFACES", "WHY NOT")
		for _, n := range r.Layer2 {
			rank, ifs := "", ""
			if n.Rank > 0 {
				rank = fmt.Sprint(n.Rank)
			}
			if n.Eligible {
				ifs = joinOr(n.Interfaces, ",")
				if len(n.Interfaces) == 0 {
					ifs = "all"
				}
			}
			t.row(rank, n.Node, fmt.Sprint(n.Eligible), fmt.Sprint(n.SpeakerReady), ifs, n.Reason)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(r.BGP) > 0 {
		fmt.Fprintf(out, "\nBGP:\n")
		t := newTable(out, "NODE", "ELIGIBLE", "SPEAKER READY", "PEERS", "WHY NOT")
		for _, n := range r.BGP {
			t.row(n.Node, fmt.Sprint(n.Eligible), fmt.Sprint(n.SpeakerReady), strings.Join(n.Peers, ","), n.Reason)
		}
		return t.flush()
	}
	return nil
}

// plural is "1 node" or "2 nodes" (for "node is": "2 nodes are").
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if w, ok := strings.CutSuffix(what, " is"); ok {
		return fmt.Sprintf("%d %ss are", n, w)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// endpointNodes returns the nodes with a ready endpoint of s (as the speakers count them).
func endpointNodes(ctx context.Context, o *Options, s *corev1.Service) (map[string]bool, error) {
	var slices discoveryv1.EndpointSliceList
	if err := o.client.List(ctx, &slices, client.InNamespace(s.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: s.Name}); err != nil {
		return nil, o.read("list the EndpointSlices of Service "+types.NamespacedName{Namespace: s.Namespace, Name: s.Name}.String(), err)
	}
	return lbservice.ReadyEndpointNodes(slices.Items), nil
}
