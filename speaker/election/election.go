// Package election decides which node announces a layer-2 address.
//
// Every speaker runs the same pure function over the same inputs — the
// election key (an address), the candidate nodes — and so agrees on the
// owner without talking to anyone. The function is rendezvous (highest
// random weight) hashing: each candidate gets a score hash(node, key) and
// the highest score wins. Keys spread evenly over the nodes, and a change
// of the candidate set moves only the keys it must: when a node joins N
// others it takes about 1/(N+1) of the keys and no key moves between two
// old nodes; when a node goes, only its own keys move.
package election

import (
	"hash/fnv"
	"net/netip"
)

// Owner returns the candidate that announces key, or "" when there is none.
// The order of candidates does not matter; duplicates are harmless.
func Owner(key netip.Addr, candidates []string) string {
	return highest(candidates, func(c string) uint64 { return Score(c, key) })
}

// highest returns the candidate with the highest score (the smaller name
// on a tie), "" when there is none.
func highest(candidates []string, score func(string) uint64) string {
	var (
		best      string
		bestScore uint64
	)
	for _, c := range candidates {
		s := score(c)
		if best == "" || s > bestScore || (s == bestScore && c < best) {
			best, bestScore = c, s
		}
	}
	return best
}

// Ranking returns the candidates in the order they would take over key:
// the owner first, then the node that takes over when the owner goes, and
// so on. The speaker uses it to watch only the nodes that could take over
// its addresses.
func Ranking(key netip.Addr, candidates []string) []string {
	out := append([]string(nil), candidates...)
	scores := make(map[string]uint64, len(out))
	for _, c := range out {
		scores[c] = Score(c, key)
	}
	// Insertion sort: candidate lists are short.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && before(out[j], out[j-1], scores); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func before(a, b string, scores map[string]uint64) bool {
	if scores[a] != scores[b] {
		return scores[a] > scores[b]
	}
	return a < b
}

// Score is the weight of node for key: FNV-1a 64 over the node name, a
// separator and the address bytes, finished with a 64-bit mixer so close
// names and addresses give unrelated scores.
func Score(node string, key netip.Addr) uint64 {
	b := key.As16()
	return score(node, b[:])
}

// NameOwner is Owner for a key that is a name, not an address (the
// speakers pick the one writer of a Service's BGP status by its
// namespace/name): the same hashing over the name's bytes.
func NameOwner(key string, candidates []string) string {
	return highest(candidates, func(c string) uint64 { return score(c, []byte(key)) })
}

func score(node string, key []byte) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(node))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write(key)
	return mix(h.Sum64())
}

// mix is the splitmix64 finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
