package bgp

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

const (
	// markerGlobalAdmin and markerLocal1 make up the private large
	// community that marks a path to be withdrawn from one peer; the second
	// local part is the peer's id. 4294967295 is a reserved ASN (RFC 7300)
	// and 1818391412 is "lbst" in ASCII.
	markerGlobalAdmin uint32 = 4294967295
	markerLocal1      uint32 = 0x6c627374
)

// attrs are the attributes of the one global path of a prefix.
type attrs struct {
	nextHop      netip.Addr
	hasLocalPref bool
	localPref    uint32
	// communities and large are sorted and without duplicates.
	communities []uint32
	large       [][3]uint32
}

func (a attrs) equal(b attrs) bool {
	return a.nextHop == b.nextHop && a.hasLocalPref == b.hasLocalPref && a.localPref == b.localPref &&
		slices.Equal(a.communities, b.communities) && slices.Equal(a.large, b.large)
}

// pathSpec is the merged desired state of one prefix.
type pathSpec struct {
	prefix netip.Prefix
	attrs  attrs
	// all is true when some Path had no Peers: every peer gets the prefix.
	all bool
	// peers are the named peers; unused when all is set.
	peers map[string]struct{}
}

// allows reports whether the prefix goes to the peer with this name.
func (p *pathSpec) allows(peer string) bool {
	if p.all {
		return true
	}
	_, ok := p.peers[peer]
	return ok
}

func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

func compareLarge(a, b [3]uint32) int {
	for i := range a {
		if c := cmp.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

func isMarker(lc [3]uint32) bool {
	return lc[0] == markerGlobalAdmin && lc[1] == markerLocal1
}

func validatePath(p Path) error {
	var errs []error
	switch {
	case !p.Prefix.IsValid():
		errs = append(errs, errors.New("prefix is not valid"))
	case p.Prefix.Addr().Zone() != "":
		errs = append(errs, errors.New("prefix has a zone"))
	case p.Prefix.Addr().Is4In6():
		errs = append(errs, errors.New("prefix is IPv4-mapped; use the IPv4 form"))
	case p.Prefix.Masked() != p.Prefix:
		errs = append(errs, fmt.Errorf("host bits are set; did you mean %v", p.Prefix.Masked()))
	}
	if p.NextHop.IsValid() {
		if p.Prefix.IsValid() && p.NextHop.Is4() != p.Prefix.Addr().Is4() {
			errs = append(errs, fmt.Errorf("next hop %v is not of the prefix's family", p.NextHop))
		}
		if p.NextHop.Zone() != "" || p.NextHop.Is4In6() {
			errs = append(errs, fmt.Errorf("next hop %v has a zone or is IPv4-mapped", p.NextHop))
		}
	}
	for _, lc := range p.LargeCommunities {
		if isMarker(lc) {
			errs = append(errs, fmt.Errorf("large community %d:%d:%d is reserved for lbstack's withdraw markers", lc[0], lc[1], lc[2]))
		}
	}
	for _, n := range p.Peers {
		if n == "" {
			errs = append(errs, errors.New("empty peer name"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("path %v: %w", p.Prefix, err)
	}
	return nil
}

// mergePaths validates paths and merges those with the same prefix: the
// union of their communities, large communities and peers (a path without
// peers means every peer). Their local preferences and next hops must
// agree, a path without one taking the other's.
func mergePaths(paths []Path) (map[netip.Prefix]*pathSpec, error) {
	out := make(map[netip.Prefix]*pathSpec, len(paths))
	var errs []error
	for _, p := range paths {
		if err := validatePath(p); err != nil {
			errs = append(errs, err)
			continue
		}
		s, ok := out[p.Prefix]
		if !ok {
			s = &pathSpec{prefix: p.Prefix, peers: map[string]struct{}{}}
			out[p.Prefix] = s
		}
		if p.NextHop.IsValid() {
			if s.attrs.nextHop.IsValid() && s.attrs.nextHop != p.NextHop {
				errs = append(errs, fmt.Errorf("path %v: conflicting next hops %v and %v", p.Prefix, s.attrs.nextHop, p.NextHop))
			}
			s.attrs.nextHop = p.NextHop
		}
		if p.LocalPref != nil {
			if s.attrs.hasLocalPref && s.attrs.localPref != *p.LocalPref {
				errs = append(errs, fmt.Errorf("path %v: conflicting local preferences %d and %d", p.Prefix, s.attrs.localPref, *p.LocalPref))
			}
			s.attrs.hasLocalPref, s.attrs.localPref = true, *p.LocalPref
		}
		s.attrs.communities = append(s.attrs.communities, p.Communities...)
		s.attrs.large = append(s.attrs.large, p.LargeCommunities...)
		if len(p.Peers) == 0 {
			s.all = true
		}
		for _, n := range p.Peers {
			s.peers[n] = struct{}{}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, s := range out {
		slices.Sort(s.attrs.communities)
		s.attrs.communities = slices.Compact(s.attrs.communities)
		slices.SortFunc(s.attrs.large, compareLarge)
		s.attrs.large = slices.Compact(s.attrs.large)
		if s.all {
			s.peers = nil
		}
	}
	return out, nil
}
