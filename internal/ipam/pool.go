package ipam

import (
	"math/big"
	"net/netip"

	"github.com/lbstack/lbstack/internal/config"
)

// poolState is one pool's allocation state: per family, a cursor over
// never-used space and a free list of released addresses.
type poolState struct {
	cfg                  *config.Pool
	fam                  [2]familyState // [0] IPv6, [1] IPv4
	size4, size6         *big.Int
	assigned4, assigned6 int64
}

type familyState struct {
	ranges []config.Range
	// cursor: next address to look at in ranges[idx]; idx == len(ranges) when done.
	idx  int
	next netip.Addr
	free []netip.Addr
}

func fi(v4 bool) int {
	if v4 {
		return 1
	}
	return 0
}

func newPoolState(p *config.Pool) *poolState {
	ps := &poolState{cfg: p, size4: new(big.Int), size6: new(big.Int)}
	for _, r := range p.Ranges {
		f := &ps.fam[fi(r.Is4())]
		f.ranges = append(f.ranges, r)
		n := r.Size()
		if r.Is4() {
			if p.AvoidBuggyIPs {
				n.Sub(n, big.NewInt(buggyCount(r)))
			}
			ps.size4.Add(ps.size4, n)
		} else {
			ps.size6.Add(ps.size6, n)
		}
	}
	for i := range ps.fam {
		if len(ps.fam[i].ranges) > 0 {
			ps.fam[i].next = ps.fam[i].ranges[0].First
		}
	}
	return ps
}

// buggyCount counts the addresses ending in .0 or .255 in an IPv4 range.
func buggyCount(r config.Range) int64 {
	f, l := v4int(r.First), v4int(r.Last)
	// multiples of 256 in [f, l], and numbers ≡ 255 (mod 256) in [f, l]
	count := func(res int64) int64 {
		// numbers x in [f,l] with x mod 256 == res
		first := f + ((res-f%256)+256)%256
		if first > l {
			return 0
		}
		return (l-first)/256 + 1
	}
	return count(0) + count(255)
}

func v4int(a netip.Addr) int64 {
	b := a.As4()
	return int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3])
}

func buggy(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	last := a.As4()[3]
	return last == 0 || last == 255
}

func (ps *poolState) hasFamilies(fams []bool) bool {
	for _, f := range fams {
		if len(ps.fam[fi(f)].ranges) == 0 {
			return false
		}
	}
	return true
}

func (ps *poolState) usable(a netip.Addr) bool {
	return ps.cfg.Contains(a) && !(ps.cfg.AvoidBuggyIPs && buggy(a))
}

// next returns a free address of the family, or false when the pool has
// none. taken says which addresses are held.
func (ps *poolState) next(v4 bool, taken map[netip.Addr]*addrState) (netip.Addr, bool) {
	f := &ps.fam[fi(v4)]
	for len(f.free) > 0 {
		a := f.free[len(f.free)-1]
		f.free = f.free[:len(f.free)-1]
		if taken[a] == nil && ps.usable(a) {
			return a, true
		}
	}
	for f.idx < len(f.ranges) {
		r := f.ranges[f.idx]
		a := f.next
		if a == r.Last {
			f.idx++
			if f.idx < len(f.ranges) {
				f.next = f.ranges[f.idx].First
			}
		} else {
			f.next = a.Next()
		}
		if taken[a] == nil && ps.usable(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// free records a released address for reuse.
func (ps *poolState) free(a netip.Addr) {
	if ps.usable(a) {
		f := &ps.fam[fi(a.Is4())]
		f.free = append(f.free, a)
	}
}

// count adjusts the assigned counters for an address of this pool.
func (ps *poolState) count(a netip.Addr, d int64) {
	if ps.cfg.AvoidBuggyIPs && buggy(a) {
		// Not part of the pool's usable size; a Service may still hold
		// one (requested explicitly), but it does not consume capacity.
		return
	}
	if a.Is4() {
		ps.assigned4 += d
	} else {
		ps.assigned6 += d
	}
}
