package kubectlplugin

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// PeerReport is one BGPPeer as `peers` shows it.
type PeerReport struct {
	// Name of the BGPPeer.
	Name string `json:"name"`
	// Address is the router's address, or "interface X" for an unnumbered peer.
	Address string `json:"address"`
	// MyASN and PeerASN of the session (PeerASN 0 with a dynamicASN).
	MyASN   int64 `json:"myASN"`
	PeerASN int64 `json:"peerASN,omitempty"`
	// DynamicASN is the kind of ASN accepted instead of PeerASN.
	DynamicASN string `json:"dynamicASN,omitempty"`
	// Established is how many nodes have the session Established.
	Established int32 `json:"established"`
	// Sessions are the nodes' sessions as their speakers report them.
	Sessions []lbv1.BGPNodeSession `json:"sessions"`
}

func peersFlags(fs *pflag.FlagSet, o *Options) func(context.Context, *Options, []string, IO) error {
	var node string
	fs.StringVar(&node, "node", "", "only this node's sessions")
	return func(ctx context.Context, o *Options, args []string, stdio IO) error {
		if err := noArgs(args); err != nil {
			return err
		}
		if err := o.connect(); err != nil {
			return err
		}
		ctx, cancel := o.timeout(ctx)
		defer cancel()
		var list lbv1.BGPPeerList
		if err := o.client.List(ctx, &list); err != nil {
			return o.read("list BGPPeers", err)
		}
		var reports []PeerReport
		for _, p := range list.Items {
			r := PeerReport{Name: p.Name, Address: p.Spec.PeerAddress, MyASN: p.Spec.MyASN, PeerASN: p.Spec.PeerASN, Established: p.Status.Established,
				DynamicASN: string(p.Spec.DynamicASN)}
			if p.Spec.Interface != "" {
				r.Address = "interface " + p.Spec.Interface
			}
			for _, s := range p.Status.Nodes {
				if node == "" || s.Node == node {
					r.Sessions = append(r.Sessions, s)
				}
			}
			slices.SortFunc(r.Sessions, func(a, b lbv1.BGPNodeSession) int { return strings.Compare(a.Node, b.Node) })
			reports = append(reports, r)
		}
		slices.SortFunc(reports, func(a, b PeerReport) int { return strings.Compare(a.Name, b.Name) })
		if o.Output != "" && o.Output != "table" {
			return printObject(stdio.Out, o.Output, reports)
		}
		if len(reports) == 0 {
			fmt.Fprintln(stdio.Out, "No BGPPeers.")
			return nil
		}
		t := newTable(stdio.Out, "PEER", "ADDRESS", "ASN", "NODE", "STATE", "BFD", "PREFIXES", "SINCE", "LAST ERROR")
		for _, r := range reports {
			asn := fmt.Sprintf("%d→%d", r.MyASN, r.PeerASN)
			if r.DynamicASN != "" {
				asn = fmt.Sprintf("%d→%s", r.MyASN, r.DynamicASN)
			}
			if len(r.Sessions) == 0 {
				t.row(r.Name, r.Address, asn, "", "no session reported", "", "", "", "")
			}
			for _, s := range r.Sessions {
				t.row(r.Name, r.Address, asn, s.Node, string(s.State), s.BFDState, fmt.Sprint(s.PrefixesAdvertised),
					age(o.Now, s.LastTransitionTime.Time), s.LastError)
			}
		}
		return t.flush()
	}
}
