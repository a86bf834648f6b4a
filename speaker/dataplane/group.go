package dataplane

import (
	"net/netip"
	"slices"
)

// ServiceRef names a Service: its namespace and name (the same shape as
// Kubernetes' types.NamespacedName, which converts to it directly).
type ServiceRef struct {
	Namespace string
	Name      string
}

// String returns "namespace/name".
func (s ServiceRef) String() string { return s.Namespace + "/" + s.Name }

// L2Group is a set of addresses announced together, from one node: the
// addresses of Services that share addresses are joined into one group, so
// a shared address is never announced by two nodes.
type L2Group struct {
	// Key is the election key, the group's lowest address.
	Key netip.Addr
	// IPs are the group's addresses, sorted.
	IPs []netip.Addr
	// Services are the Services announced through the group, sorted.
	Services []ServiceRef
	// Candidates are the eligible nodes and, per node, the interfaces it
	// may announce on (nil: every eligible interface).
	Candidates map[string][]string
}

// CandidateNames returns the candidates' names, sorted.
func (g *L2Group) CandidateNames() []string {
	out := make([]string, 0, len(g.Candidates))
	for n := range g.Candidates {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
