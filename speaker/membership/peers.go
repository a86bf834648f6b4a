package membership

import (
	"cmp"
	"hash/fnv"
	"slices"
)

// selectPeers returns the peers self watches among candidates: all of them if
// there are at most max, otherwise the max nearest to self on a ring ordered
// by a hash of the node names, half after self and half before. Every node
// that sees the same candidates computes the same ring, so the relation is
// symmetric (for an even max): if A watches B, B watches A. Hashing spreads
// a node's watchers over the cluster instead of over its alphabetical
// neighbours, which often share a rack and fail together. self and
// duplicates in candidates are ignored. The result is sorted.
func selectPeers(self string, candidates []string, max int) []string {
	peers := make([]string, 0, len(candidates))
	for _, c := range candidates {
		if c != self {
			peers = append(peers, c)
		}
	}
	slices.Sort(peers)
	peers = slices.Compact(peers)
	if len(peers) <= max {
		return peers
	}

	type point struct {
		hash uint64
		name string
	}
	ring := make([]point, 0, len(peers)+1)
	for _, name := range append(peers, self) {
		ring = append(ring, point{ringHash(name), name})
	}
	slices.SortFunc(ring, func(a, b point) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.name, b.name))
	})
	i := slices.IndexFunc(ring, func(p point) bool { return p.name == self })

	out := make([]string, 0, max)
	for step := 1; len(out) < max; step++ {
		out = append(out, ring[(i+step)%len(ring)].name)
		if len(out) < max {
			out = append(out, ring[(i-step+len(ring))%len(ring)].name)
		}
	}
	slices.Sort(out)
	return out
}

func ringHash(name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return h.Sum64()
}
