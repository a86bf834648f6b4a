// Package ipam is lbstack's address allocator. It is pure: no Kubernetes
// client, no clock. The controller feeds it the validated configuration
// and the Services, and writes the results back.
//
// Its cost does not grow with pool size: memory is proportional to the
// number of assigned addresses (plus those released and not yet reused),
// and assigning or releasing an address takes amortized constant time even
// in an IPv6 /64. Each pool hands out addresses from a cursor that only
// moves forward over never-used space, and reuses released addresses from
// a free list first.
//
// An assigned address never moves: Assign keeps a Service's current
// addresses whenever they are still allowed, and Restore rebuilds the
// state from Service statuses after a restart.
package ipam

import (
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/lbservice"
)

// FamilyPolicy is a Service's spec.ipFamilyPolicy.
type FamilyPolicy int

// Family policies.
const (
	SingleStack FamilyPolicy = iota
	PreferDualStack
	RequireDualStack
)

// Service is what the allocator needs to know about a Service.
type Service struct {
	// Key is "namespace/name".
	Key string
	// Namespace, NamespaceLabels and Labels feed the pools' allocation selectors.
	Namespace       string
	NamespaceLabels labels.Set
	Labels          labels.Set
	// IPv4First says the first family in spec.ipFamilies is IPv4 (the default).
	IPv4First bool
	Policy    FamilyPolicy
	// Request holds the requested IPs and pool.
	Request lbservice.Request
	// Sharing holds what decides whether the Service may share an IP:
	// sharing key, ports and backend (lbservice.Sharing.Conflict).
	Sharing lbservice.Sharing
}

// Errors that explain why a Service got no address. Use errors.As.
type (
	// PoolExhaustedError: no free address in any candidate pool.
	PoolExhaustedError struct{ Pools []string }
	// IPInUseError: a requested IP is held by another Service that cannot share.
	IPInUseError struct {
		IP     netip.Addr
		Holder string
		Reason string
	}
	// NotInPoolError: a requested IP is in no pool (or not the requested one).
	NotInPoolError struct {
		IP   netip.Addr
		Pool string
	}
	// PoolNotFoundError: the requested pool does not exist.
	PoolNotFoundError struct{ Pool string }
	// NotAllowedError: the pool's allocation rules exclude the Service.
	NotAllowedError struct{ Pool string }
	// NoPoolError: no pool may serve the Service.
	NoPoolError struct{ Families string }
	// InvalidRequestError: the requested IPs contradict the Service's IP
	// families or each other (they are in different pools).
	InvalidRequestError struct{ Reason string }
)

func (e *PoolExhaustedError) Error() string {
	return fmt.Sprintf("no free address left in pool(s) %s", strings.Join(e.Pools, ", "))
}
func (e *IPInUseError) Error() string {
	return fmt.Sprintf("IP %s is held by %s (%s)", e.IP, e.Holder, e.Reason)
}
func (e *NotInPoolError) Error() string {
	if e.Pool != "" {
		return fmt.Sprintf("IP %s is not in the requested pool %q", e.IP, e.Pool)
	}
	return fmt.Sprintf("IP %s is in no IPAddressPool", e.IP)
}
func (e *PoolNotFoundError) Error() string { return fmt.Sprintf("pool %q does not exist", e.Pool) }
func (e *NotAllowedError) Error() string {
	return fmt.Sprintf("pool %q does not serve this Service (its allocation rules select other namespaces or labels)", e.Pool)
}
func (e *NoPoolError) Error() string {
	return fmt.Sprintf("no IPAddressPool with %s addresses may serve this Service", e.Families)
}
func (e *InvalidRequestError) Error() string { return e.Reason }

// Result is a Service's assignment.
type Result struct {
	Pool string
	IPs  []netip.Addr
}

// holder is one Service holding an address.
type holder struct {
	key     string
	sharing lbservice.Sharing
}

type addrState struct {
	pool    string
	holders []*holder
}

type svcState struct {
	h    *holder
	pool string
	ips  []netip.Addr
	// in is what chose the addresses, as of the last Assign or Restore:
	// while the Service keeps it, a configuration change alone never
	// moves its addresses.
	in inputs
}

// inputs are the parts of a Service that decide its pool and addresses,
// apart from the ports and backend the sharing rule checks.
type inputs struct {
	namespace        string
	nsLabels, labels labels.Set
	ipv4First        bool
	policy           FamilyPolicy
	req              lbservice.Request
	sharingKey       string
}

func inputsOf(svc Service) inputs {
	return inputs{namespace: svc.Namespace, nsLabels: svc.NamespaceLabels, labels: svc.Labels,
		ipv4First: svc.IPv4First, policy: svc.Policy, req: svc.Request, sharingKey: svc.Sharing.Key}
}

func (x *inputs) same(y inputs) bool {
	return x.namespace == y.namespace && maps.Equal(x.nsLabels, y.nsLabels) && maps.Equal(x.labels, y.labels) &&
		x.ipv4First == y.ipv4First && x.policy == y.policy && x.req.Pool == y.req.Pool &&
		x.sharingKey == y.sharingKey && slices.Equal(x.req.IPs, y.req.IPs)
}

// Allocator assigns addresses. It is not safe for concurrent use; the
// controller serializes calls.
type Allocator struct {
	pools map[string]*poolState
	order []*poolState // by priority, then name
	addrs map[netip.Addr]*addrState
	svcs  map[string]*svcState
	// sharing indexes the Services with a sharing key by that key, each
	// group sorted by Service key, so that finding an address to share
	// never looks at every Service.
	sharing map[string][]*svcState
	config  *config.Config
}

// New returns an empty allocator.
func New() *Allocator {
	return &Allocator{pools: map[string]*poolState{}, addrs: map[netip.Addr]*addrState{}, svcs: map[string]*svcState{},
		sharing: map[string][]*svcState{}}
}

// SetConfig installs a new configuration. Existing assignments are kept
// even when their pool shrank or went away (Orphans reports them); nothing
// moves silently.
func (a *Allocator) SetConfig(cfg *config.Config) {
	a.config = cfg
	old := a.pools
	a.pools = map[string]*poolState{}
	a.order = a.order[:0]
	for name, p := range cfg.Pools {
		ps := old[name]
		if ps == nil || !sameRanges(ps.cfg, p) {
			ps = newPoolState(p)
		}
		ps.cfg = p
		ps.assigned4, ps.assigned6 = 0, 0
		a.pools[name] = ps
		a.order = append(a.order, ps)
	}
	sort.Slice(a.order, func(i, j int) bool {
		pi, pj := a.order[i].cfg.Priority, a.order[j].cfg.Priority
		if (pi == nil) != (pj == nil) {
			return pi != nil
		}
		if pi != nil && *pi != *pj {
			return *pi < *pj
		}
		return a.order[i].cfg.Name < a.order[j].cfg.Name
	})
	// Recount and re-home assigned addresses.
	for ip, st := range a.addrs {
		st.pool = ""
		for _, ps := range a.order {
			if ps.cfg.Contains(ip) {
				st.pool = ps.cfg.Name
				ps.count(ip, 1)
				break
			}
		}
	}
}

func sameRanges(a, b *config.Pool) bool {
	if len(a.Ranges) != len(b.Ranges) || a.AvoidBuggyIPs != b.AvoidBuggyIPs {
		return false
	}
	for i := range a.Ranges {
		if a.Ranges[i].First != b.Ranges[i].First || a.Ranges[i].Last != b.Ranges[i].Last {
			return false
		}
	}
	return true
}

// Orphans lists Services holding an address that no pool contains any more.
func (a *Allocator) Orphans() map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for ip, st := range a.addrs {
		if st.pool == "" {
			for _, h := range st.holders {
				out[h.key] = append(out[h.key], ip)
			}
		}
	}
	return out
}

// Assigned returns the Service's current assignment.
func (a *Allocator) Assigned(key string) (Result, bool) {
	s, ok := a.svcs[key]
	if !ok {
		return Result{}, false
	}
	return Result{Pool: s.pool, IPs: append([]netip.Addr(nil), s.ips...)}, true
}

// Holders returns the Services holding ip.
func (a *Allocator) Holders(ip netip.Addr) []string {
	st := a.addrs[ip]
	if st == nil {
		return nil
	}
	out := make([]string, len(st.holders))
	for i, h := range st.holders {
		out[i] = h.key
	}
	return out
}

// Restore records addresses a Service already holds (from its status),
// without checking pools or requests: on restart the allocator must learn
// the world as it is, never reshuffle it. It fails only when an address
// is held by another Service that may not share it; the caller then treats
// the later Service as unassigned.
func (a *Allocator) Restore(svc Service, ips []netip.Addr) error {
	h := newHolder(svc)
	for _, ip := range ips {
		if err := a.canHold(h, ip); err != nil {
			return err
		}
	}
	a.Release(svc.Key)
	pool := ""
	for _, ip := range ips {
		if st := a.addrs[ip]; st != nil && st.pool != "" {
			pool = st.pool
		} else if p := a.poolOf(ip); p != nil {
			pool = p.cfg.Name
		}
	}
	a.hold(h, pool, ips).in = inputsOf(svc)
	return nil
}

// Assign gives svc addresses. It keeps the Service's current addresses
// while they still satisfy its request, its pool rules and its families.
func (a *Allocator) Assign(svc Service) (Result, error) {
	h := newHolder(svc)
	if cur, ok := a.svcs[svc.Key]; ok && (a.stillValid(svc, h, cur) || a.keepOrphan(svc, h, cur)) {
		a.unindex(cur)
		cur.h = h // ports, backend or sharing key may have changed, compatibly
		a.index(cur)
		cur.in = inputsOf(svc)
		a.rehold(cur)
		return Result{Pool: cur.pool, IPs: append([]netip.Addr(nil), cur.ips...)}, nil
	}
	res, err := a.choose(svc, h)
	if err != nil {
		return Result{}, err
	}
	a.Release(svc.Key)
	a.hold(h, res.Pool, res.IPs).in = inputsOf(svc)
	return res, nil
}

// keepOrphan says whether a Service whose addresses left every pool (the
// pool shrank or went away) keeps them: yes, unless its own request now
// asks for something else. Moving a working address silently is worse than
// keeping one the configuration no longer lists; the controller flags it.
func (a *Allocator) keepOrphan(svc Service, h *holder, cur *svcState) bool {
	if len(cur.ips) == 0 || (svc.Request.Pool != "" && svc.Request.Pool != cur.pool) {
		return false
	}
	required, wanted := families(svc)
	have := map[bool]bool{}
	for _, ip := range cur.ips {
		if a.poolOf(ip) != nil || a.canHold(h, ip) != nil {
			return false
		}
		have[ip.Is4()] = true
	}
	for _, f := range required {
		if !have[f] {
			return false
		}
	}
	for f := range have {
		ok := false
		for _, w := range wanted {
			ok = ok || w == f
		}
		if !ok {
			return false
		}
	}
	for _, want := range svc.Request.IPs {
		found := false
		for _, ip := range cur.ips {
			found = found || ip == want
		}
		if !found {
			return false
		}
	}
	return true
}

// Release frees the Service's addresses.
func (a *Allocator) Release(key string) {
	s, ok := a.svcs[key]
	if !ok {
		return
	}
	delete(a.svcs, key)
	a.unindex(s)
	for _, ip := range s.ips {
		st := a.addrs[ip]
		if st == nil {
			continue
		}
		for i, h := range st.holders {
			if h.key == key {
				st.holders = append(st.holders[:i], st.holders[i+1:]...)
				break
			}
		}
		if len(st.holders) == 0 {
			delete(a.addrs, ip)
			if ps := a.pools[st.pool]; ps != nil {
				ps.count(ip, -1)
				ps.free(ip)
			}
		}
	}
}

func newHolder(svc Service) *holder {
	return &holder{key: svc.Key, sharing: svc.Sharing}
}

func (a *Allocator) hold(h *holder, pool string, ips []netip.Addr) *svcState {
	s := &svcState{h: h, pool: pool, ips: ips}
	a.svcs[h.key] = s
	a.index(s)
	for _, ip := range ips {
		st := a.addrs[ip]
		if st == nil {
			st = &addrState{pool: pool}
			if p := a.poolOf(ip); p != nil {
				st.pool = p.cfg.Name
				p.count(ip, 1)
			} else {
				st.pool = ""
			}
			a.addrs[ip] = st
		}
		st.holders = append(st.holders, h)
	}
	return s
}

// rehold replaces the holder record of a Service on its addresses.
func (a *Allocator) rehold(s *svcState) {
	for _, ip := range s.ips {
		for i, h := range a.addrs[ip].holders {
			if h.key == s.h.key {
				a.addrs[ip].holders[i] = s.h
			}
		}
	}
}

func (a *Allocator) poolOf(ip netip.Addr) *poolState {
	for _, ps := range a.order {
		if ps.cfg.Contains(ip) {
			return ps
		}
	}
	return nil
}

// canHold says whether h may hold ip next to its current holders.
func (a *Allocator) canHold(h *holder, ip netip.Addr) error {
	st := a.addrs[ip]
	if st == nil {
		return nil
	}
	for _, o := range st.holders {
		if o.key == h.key {
			continue
		}
		if reason := h.sharing.Conflict(o.sharing); reason != "" {
			return &IPInUseError{IP: ip, Holder: o.key, Reason: reason}
		}
	}
	return nil
}

// allowed says whether pool p may serve svc by its allocation rules.
func allowed(p *config.Pool, svc Service) bool {
	if len(p.Namespaces) > 0 || len(p.NamespaceSelectors) > 0 {
		ok := false
		for _, ns := range p.Namespaces {
			ok = ok || ns == svc.Namespace
		}
		for _, s := range p.NamespaceSelectors {
			ok = ok || s.Matches(svc.NamespaceLabels)
		}
		if !ok {
			return false
		}
	}
	if len(p.ServiceSelectors) > 0 {
		ok := false
		for _, s := range p.ServiceSelectors {
			ok = ok || s.Matches(svc.Labels)
		}
		if !ok {
			return false
		}
	}
	return true
}

func hasSelectors(p *config.Pool) bool {
	return len(p.Namespaces) > 0 || len(p.NamespaceSelectors) > 0 || len(p.ServiceSelectors) > 0
}

// families returns the families svc needs (required) and would like (wanted).
func families(svc Service) (required, wanted []bool) {
	primary := svc.IPv4First
	switch svc.Policy {
	case RequireDualStack:
		return []bool{primary, !primary}, []bool{primary, !primary}
	case PreferDualStack:
		return []bool{primary}, []bool{primary, !primary}
	}
	return []bool{primary}, []bool{primary}
}

func familyName(v4 bool) string {
	if v4 {
		return "IPv4"
	}
	return "IPv6"
}

func (a *Allocator) stillValid(svc Service, h *holder, cur *svcState) bool {
	required, wanted := families(svc)
	have := map[bool]netip.Addr{}
	for _, ip := range cur.ips {
		have[ip.Is4()] = ip
	}
	if len(have) != len(cur.ips) {
		return false
	}
	for _, f := range required {
		if _, ok := have[f]; !ok {
			return false
		}
	}
	for f := range have {
		found := false
		for _, w := range wanted {
			found = found || w == f
		}
		if !found {
			return false
		}
	}
	// A PreferDualStack Service missing a family it could now get is
	// left alone: adding an address is not worth touching a working one.
	for _, ip := range svc.Request.IPs {
		if have[ip.Is4()] != ip {
			return false
		}
	}
	for _, ip := range cur.ips {
		if a.canHold(h, ip) != nil {
			return false
		}
	}
	// Nothing moves silently: while the Service asks for what it asked
	// for when it got its addresses, it keeps them even when the pool
	// shrank, went away or changed its rules (Orphans reports them).
	if cur.in.same(inputsOf(svc)) && (svc.Request.Pool == "" || svc.Request.Pool == cur.pool || a.pools[cur.pool] == nil) {
		return true
	}
	ps := a.pools[cur.pool]
	if ps == nil || (svc.Request.Pool != "" && svc.Request.Pool != cur.pool) || !allowed(ps.cfg, svc) {
		return false
	}
	for _, ip := range cur.ips {
		if !ps.cfg.Contains(ip) {
			return false
		}
	}
	return true
}

// choose picks a pool and addresses for svc.
func (a *Allocator) choose(svc Service, h *holder) (Result, error) {
	required, wanted := families(svc)
	req := svc.Request
	if len(req.IPs) > 0 {
		return a.chooseRequested(svc, h, required)
	}
	var candidates []*poolState
	if req.Pool != "" {
		ps := a.pools[req.Pool]
		if ps == nil {
			return Result{}, &PoolNotFoundError{Pool: req.Pool}
		}
		if !allowed(ps.cfg, svc) {
			return Result{}, &NotAllowedError{Pool: req.Pool}
		}
		candidates = []*poolState{ps}
	} else {
		// Pools whose selectors match first (in priority order), then
		// auto-assign pools without selectors.
		for _, ps := range a.order {
			if ps.cfg.AutoAssign && hasSelectors(ps.cfg) && allowed(ps.cfg, svc) {
				candidates = append(candidates, ps)
			}
		}
		for _, ps := range a.order {
			if ps.cfg.AutoAssign && !hasSelectors(ps.cfg) {
				candidates = append(candidates, ps)
			}
		}
	}
	// Prefer a pool that has every wanted family; fall back to the
	// required ones (PreferDualStack on a single-stack pool).
	var exhausted []string
	for _, fams := range [][]bool{wanted, required} {
		for _, ps := range candidates {
			if !ps.hasFamilies(fams) {
				continue
			}
			if res, ok := a.share(svc, h, ps, fams); ok {
				return res, nil
			}
			ips := make([]netip.Addr, 0, len(fams))
			for _, f := range fams {
				ip, ok := ps.next(f, a.addrs)
				if !ok {
					break
				}
				ips = append(ips, ip)
			}
			if len(ips) == len(fams) {
				return Result{Pool: ps.cfg.Name, IPs: ips}, nil
			}
			// Give back what was found of the other family.
			for _, ip := range ips {
				ps.free(ip)
			}
			exhausted = append(exhausted, ps.cfg.Name)
		}
		if len(wanted) == len(required) {
			break
		}
	}
	if len(exhausted) > 0 {
		return Result{}, &PoolExhaustedError{Pools: dedupe(exhausted)}
	}
	if req.Pool != "" {
		return Result{}, &NoPoolError{Families: familyList(required) + " (pool " + req.Pool + " lacks them)"}
	}
	return Result{}, &NoPoolError{Families: familyList(required)}
}

// share finds an address held by Services with the same sharing key that
// svc may join, in pool ps.
func (a *Allocator) share(svc Service, h *holder, ps *poolState, fams []bool) (Result, bool) {
	if h.sharing.Key == "" {
		return Result{}, false
	}
	sharers := a.sortedSharing(h.sharing.Key)
	var ips []netip.Addr
	for _, f := range fams {
		var found netip.Addr
		for _, s := range sharers {
			for _, ip := range s.ips {
				if ip.Is4() == f && ps.cfg.Contains(ip) && a.canHold(h, ip) == nil {
					found = ip
					break
				}
			}
			if found.IsValid() {
				break
			}
		}
		if !found.IsValid() {
			return Result{}, false
		}
		ips = append(ips, found)
	}
	return Result{Pool: ps.cfg.Name, IPs: ips}, true
}

// sortedSharing returns the Services with the sharing key, by Service key.
func (a *Allocator) sortedSharing(key string) []*svcState { return a.sharing[key] }

func (a *Allocator) index(s *svcState) {
	k := s.h.sharing.Key
	if k == "" {
		return
	}
	group := a.sharing[k]
	i, found := slices.BinarySearchFunc(group, s.h.key, func(x *svcState, key string) int { return strings.Compare(x.h.key, key) })
	if found {
		group[i] = s
		return
	}
	a.sharing[k] = slices.Insert(group, i, s)
}

func (a *Allocator) unindex(s *svcState) {
	k := s.h.sharing.Key
	group := a.sharing[k]
	i, found := slices.BinarySearchFunc(group, s.h.key, func(x *svcState, key string) int { return strings.Compare(x.h.key, key) })
	if !found {
		return
	}
	if group = slices.Delete(group, i, i+1); len(group) == 0 {
		delete(a.sharing, k)
	} else {
		a.sharing[k] = group
	}
}

func (a *Allocator) chooseRequested(svc Service, h *holder, required []bool) (Result, error) {
	req := svc.Request
	if svc.Policy == SingleStack {
		for _, ip := range req.IPs {
			if ip.Is4() != svc.IPv4First {
				return Result{}, &InvalidRequestError{Reason: fmt.Sprintf("requested IP %s is %s, but the Service is single-stack %s", ip, familyName(ip.Is4()), familyName(svc.IPv4First))}
			}
		}
	}
	var pool *poolState
	for _, ip := range req.IPs {
		ps := a.poolOf(ip)
		if ps == nil || (req.Pool != "" && ps.cfg.Name != req.Pool) {
			return Result{}, &NotInPoolError{IP: ip, Pool: req.Pool}
		}
		if !allowed(ps.cfg, svc) {
			return Result{}, &NotAllowedError{Pool: ps.cfg.Name}
		}
		if pool != nil && pool != ps {
			return Result{}, &InvalidRequestError{Reason: fmt.Sprintf("requested IPs %s are in different pools (%s, %s); both families must come from one pool", joinIPs(req.IPs), pool.cfg.Name, ps.cfg.Name)}
		}
		pool = ps
		if err := a.canHold(h, ip); err != nil {
			return Result{}, err
		}
	}
	if svc.Policy == RequireDualStack && len(req.IPs) < 2 {
		return Result{}, &InvalidRequestError{Reason: fmt.Sprintf("ipFamilyPolicy RequireDualStack needs one requested IP per family, got %s", joinIPs(req.IPs))}
	}
	for _, f := range required {
		if !slices.ContainsFunc(req.IPs, func(ip netip.Addr) bool { return ip.Is4() == f }) {
			return Result{}, &InvalidRequestError{Reason: fmt.Sprintf("requested IPs %s include no %s address, the Service's first IP family", joinIPs(req.IPs), familyName(f))}
		}
	}
	return Result{Pool: pool.cfg.Name, IPs: append([]netip.Addr(nil), req.IPs...)}, nil
}

func joinIPs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}

func familyList(fams []bool) string {
	s := make([]string, len(fams))
	for i, f := range fams {
		s[i] = familyName(f)
	}
	return strings.Join(s, " and ")
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// Usage is a pool's usage.
type Usage struct {
	Assigned4, Assigned6   int64
	Available4, Available6 *big.Int
	Has4, Has6             bool
}

// Usage reports the pool's assigned and available addresses per family,
// exactly.
func (a *Allocator) Usage(pool string) (Usage, bool) {
	ps := a.pools[pool]
	if ps == nil {
		return Usage{}, false
	}
	u := Usage{Assigned4: ps.assigned4, Assigned6: ps.assigned6}
	u.Available4 = new(big.Int).Sub(ps.size4, big.NewInt(ps.assigned4))
	u.Available6 = new(big.Int).Sub(ps.size6, big.NewInt(ps.assigned6))
	u.Has4, u.Has6 = ps.hasFamilies([]bool{true}), ps.hasFamilies([]bool{false})
	return u, true
}
