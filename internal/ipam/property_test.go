package ipam

import (
	"errors"
	"flag"
	"fmt"
	"math/big"
	"math/rand"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/lbservice"
)

// The property test and the fuzz target run the same model: a script of
// operations (Assign, Release, restart, configuration change) over a few
// small pools and a handful of Services, many of them with sharing keys,
// checked after every step against the rules:
//
//   - two Services hold one address only when they have the same sharing
//     key, no port in common and compatible backends;
//   - an address is handed out from the pool the Result names, which
//     contains it and may serve the Service, as the request says;
//   - a Service's addresses never change while the Service does not
//     (configuration changes and restarts included);
//   - Usage, Holders, Assigned and Orphans agree with a recount of what
//     the Services hold;
//   - a failure is justified: no candidate pool had a free address of
//     every required family, or a requested address really was refused.

// poolVariants lists, per pool, the forms a configuration change may give
// it; nil means the pool does not exist. Each pool keeps to its own
// addresses, so that no two variants of different pools overlap.
var poolVariants = [][]*lbv1.IPAddressPool{
	{ // a: dual-stack, shrinks, grows, loses autoAssign, gets selectors
		ptr(pool("a", []string{"10.0.1.0/30", "fd00:a::/126"})),
		ptr(pool("a", []string{"10.0.1.0/31"})),
		ptr(pool("a", []string{"10.0.1.0/29", "fd00:a::/125"}, noAutoAssign)),
		nil,
		ptr(pool("a", []string{"10.0.1.0/30", "fd00:a::/126"}, namespaces("ns1"))),
	},
	{ // b: IPv4 only, avoidBuggyIPs
		ptr(pool("b", []string{"10.0.2.0/30"}, priority(1))),
		ptr(pool("b", []string{"10.0.2.254-10.0.3.1"}, avoidBuggy)),
		ptr(pool("b", []string{"10.0.2.0/30"}, avoidBuggy, priority(0))),
		nil,
	},
	{ // c: IPv6 only
		ptr(pool("c", []string{"fd00:c::/126"})),
		ptr(pool("c", []string{"fd00:c::/127"}, priority(2))),
		ptr(pool("c", []string{"fd00:c::/126"}, noAutoAssign)),
	},
	{ // d: selectors
		ptr(pool("d", []string{"10.0.5.0/30", "fd00:d::/127"}, namespaces("ns0"), priority(5))),
		ptr(pool("d", []string{"10.0.5.0/30", "fd00:d::/127"}, serviceSelector("tier", "web"))),
		ptr(pool("d", []string{"10.0.5.0/30", "fd00:d::/127"})),
		ptr(pool("d", []string{"10.0.5.0/31"}, namespaceSelector("env", "prod"))),
		nil,
	},
	{ // e: only on request
		ptr(pool("e", []string{"10.0.6.0/31", "fd00:e::/127"}, noAutoAssign)),
		ptr(pool("e", []string{"10.0.6.0/31", "fd00:e::/127"})),
		nil,
	},
}

var (
	modelPoolNames = []string{"a", "b", "c", "d", "e", "missing"}
	modelIPs       = []string{"10.0.1.1", "10.0.1.5", "10.0.2.0", "10.0.2.255", "10.0.3.0", "10.0.5.1", "10.0.6.0",
		"fd00:a::1", "fd00:c::1", "fd00:d::1", "fd00:e::1", "192.0.2.1", "2001:db8::1"}
	modelIPPairs = [][]string{{"10.0.1.1", "fd00:a::1"}, {"10.0.5.1", "fd00:d::1"}, {"10.0.6.0", "fd00:e::1"},
		{"fd00:e::1", "10.0.6.1"}, {"10.0.1.2", "fd00:c::1"}}
	modelPorts = [][]lbservice.Port{{tcp(80)}, {tcp(443)}, {udp(80)}, {tcp(53), udp(53)}, {tcp(8080), tcp(443)}}
	modelKeys  = func() []string {
		var out []string
		for i := range 10 {
			out = append(out, fmt.Sprintf("ns%d/s%d", i%3, i))
		}
		return out
	}()
)

// script hands out the bytes of a fuzz input or a random slice.
type script struct {
	data []byte
	pos  int
}

func (s *script) done() bool { return s.pos >= len(s.data) }

// n returns a number in [0, k); 0 once the script is used up.
func (s *script) n(k int) int {
	if s.done() {
		return 0
	}
	b := s.data[s.pos]
	s.pos++
	return int(b) % k
}

type modelSvc struct {
	spec Service
	res  Result
}

type model struct {
	t       testing.TB
	s       *script
	a       *Allocator
	variant []int
	cfg     *config.Config
	svcs    map[string]modelSvc
	// log holds the last steps, formatted only when a check fails.
	log []func() string
}

const logSteps = 30

func (m *model) logf(format string, args ...any) {
	if len(m.log) == logSteps {
		copy(m.log, m.log[1:])
		m.log = m.log[:logSteps-1]
	}
	m.log = append(m.log, func() string { return fmt.Sprintf(format, args...) })
}

func (m *model) fatalf(format string, args ...any) {
	m.t.Helper()
	steps := ""
	for _, l := range m.log {
		steps += "  " + l() + "\n"
	}
	m.t.Fatalf("%s\nlast steps:\n%s", fmt.Sprintf(format, args...), steps)
}

// configs caches the configurations built from pool variants.
var configs = struct {
	sync.Mutex
	m map[string]*config.Config
}{m: map[string]*config.Config{}}

func (m *model) buildConfig() *config.Config {
	key := fmt.Sprint(m.variant)
	configs.Lock()
	defer configs.Unlock()
	if c := configs.m[key]; c != nil {
		return c
	}
	var pools []lbv1.IPAddressPool
	for i, v := range m.variant {
		if p := poolVariants[i][v]; p != nil {
			pools = append(pools, *p)
		}
	}
	c := mustConfig(m.t, pools...)
	configs.m[key] = c
	return c
}

// runModel runs the script, at most maxOps operations.
func runModel(t testing.TB, data []byte, maxOps int) {
	m := &model{t: t, s: &script{data: data}, variant: make([]int, len(poolVariants)), svcs: map[string]modelSvc{}}
	m.cfg = m.buildConfig()
	m.a = New()
	m.a.SetConfig(m.cfg)
	for op := 0; op < maxOps && !m.s.done(); op++ {
		switch m.s.n(9) {
		case 0, 1:
			m.assign(m.pickKey(), false)
		case 2, 3:
			m.assign(m.pickKey(), true)
		case 4:
			k := m.pickKey()
			m.logf("Release %s", k)
			m.a.Release(k)
			delete(m.svcs, k)
		case 5:
			m.restart()
		case 6:
			p := m.s.n(len(poolVariants))
			m.variant[p] = m.s.n(len(poolVariants[p]))
			m.cfg = m.buildConfig()
			m.logf("SetConfig pool %d variant %d", p, m.variant[p])
			m.a.SetConfig(m.cfg)
		case 7:
			// What the controller does after a configuration change.
			for _, k := range modelKeys {
				if _, ok := m.svcs[k]; ok {
					m.assign(k, false)
				}
			}
		case 8:
			m.assign(m.pickKey(), m.s.n(2) == 0)
			m.restart()
		}
		m.checkWorld()
	}
}

func (m *model) pickKey() string { return modelKeys[m.s.n(len(modelKeys))] }

func (m *model) genSpec(key string) Service {
	s := svc(key)
	s.Policy = FamilyPolicy(m.s.n(3))
	s.IPv4First = m.s.n(4) != 0
	switch m.s.n(10) {
	case 5, 6:
		s.Request.Pool = modelPoolNames[m.s.n(len(modelPoolNames))]
	case 7:
		s.Request.IPs = addrs(modelIPs[m.s.n(len(modelIPs))])
	case 8:
		s.Request.IPs = addrs(modelIPPairs[m.s.n(len(modelIPPairs))]...)
	case 9:
		s.Request.Pool = modelPoolNames[m.s.n(len(modelPoolNames))]
		s.Request.IPs = addrs(modelIPs[m.s.n(len(modelIPs))])
	}
	s.Sharing.Key = []string{"", "", "k1", "k2"}[m.s.n(4)]
	s.Sharing.Ports = modelPorts[m.s.n(len(modelPorts))]
	s.Sharing.Backend = []string{"", "", "local:x", "local:y"}[m.s.n(4)]
	if m.s.n(2) == 0 {
		s.Labels = kvSet([]string{"tier", "web"})
	}
	if s.Namespace == "ns0" {
		s.NamespaceLabels = kvSet([]string{"env", "prod"})
	}
	return s
}

// heldBy returns, for every held address, the Services holding it.
func (m *model) heldBy() map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for k, s := range m.svcs {
		for _, ip := range s.res.IPs {
			out[ip] = append(out[ip], k)
		}
	}
	for _, ks := range out {
		sort.Strings(ks)
	}
	return out
}

func (m *model) assign(key string, fresh bool) {
	prev, had := m.svcs[key]
	s := prev.spec
	if fresh || !had {
		s = m.genSpec(key)
	}
	heldBefore := m.heldBy()
	res, err := m.a.Assign(s)
	m.logf("Assign %s policy=%d v4first=%v req=%v/%s/%q ports=%v backend=%q labels=%v -> %v %v",
		key, s.Policy, s.IPv4First, s.Request.IPs, s.Request.Pool, s.Sharing.Key, s.Sharing.Ports, s.Sharing.Backend, s.Labels, res, err)
	unchanged := had && reflect.DeepEqual(prev.spec, s)
	if err != nil {
		if unchanged {
			m.fatalf("Assign of unchanged %s failed: %v (it holds %v)", key, err, prev.res.IPs)
		}
		m.checkFailure(s, err, heldBefore)
		return
	}
	if unchanged {
		if !slices.Equal(res.IPs, prev.res.IPs) || res.Pool != prev.res.Pool {
			m.fatalf("Assign of unchanged %s = %v, it had %v", key, res, prev.res)
		}
	} else {
		m.checkNew(s, res, prev, had, heldBefore)
	}
	m.svcs[key] = modelSvc{spec: s, res: res}
}

func sameInputs(a, b Service) bool {
	a.Sharing.Ports, b.Sharing.Ports, a.Sharing.Backend, b.Sharing.Backend = nil, nil, "", ""
	return reflect.DeepEqual(a, b)
}

func required(s Service) (req, wanted []bool) {
	switch s.Policy {
	case RequireDualStack:
		return []bool{s.IPv4First, !s.IPv4First}, []bool{s.IPv4First, !s.IPv4First}
	case PreferDualStack:
		return []bool{s.IPv4First}, []bool{s.IPv4First, !s.IPv4First}
	}
	return []bool{s.IPv4First}, []bool{s.IPv4First}
}

// modelAllowed restates the pools' allocation rules.
func modelAllowed(p *config.Pool, s Service) bool {
	if len(p.Namespaces) > 0 || len(p.NamespaceSelectors) > 0 {
		ok := slices.Contains(p.Namespaces, s.Namespace)
		for _, sel := range p.NamespaceSelectors {
			ok = ok || sel.Matches(s.NamespaceLabels)
		}
		if !ok {
			return false
		}
	}
	if len(p.ServiceSelectors) > 0 {
		ok := false
		for _, sel := range p.ServiceSelectors {
			ok = ok || sel.Matches(s.Labels)
		}
		return ok
	}
	return true
}

func compatible(a, b Service) bool {
	if a.Sharing.Key == "" || a.Sharing.Key != b.Sharing.Key {
		return false
	}
	for _, pa := range a.Sharing.Ports {
		if slices.Contains(b.Sharing.Ports, pa) {
			return false
		}
	}
	return a.Sharing.Backend == b.Sharing.Backend
}

func isBuggy(ip netip.Addr) bool {
	return ip.Is4() && (ip.As4()[3] == 0 || ip.As4()[3] == 255)
}

func usable(p *config.Pool, ip netip.Addr) bool {
	return p.Contains(ip) && !(p.AvoidBuggyIPs && isBuggy(ip))
}

// checkNew checks a changed or new Service's assignment.
func (m *model) checkNew(s Service, res Result, prev modelSvc, had bool, heldBefore map[netip.Addr][]string) {
	fams := map[bool]bool{}
	for _, ip := range res.IPs {
		if fams[ip.Is4()] {
			m.fatalf("%s got two addresses of one family: %v", s.Key, res.IPs)
		}
		fams[ip.Is4()] = true
	}
	req, wanted := required(s)
	for _, f := range req {
		if !fams[f] {
			m.fatalf("%s (policy %d) got %v, missing a required family", s.Key, s.Policy, res.IPs)
		}
	}
	for f := range fams {
		if !slices.Contains(wanted, f) {
			m.fatalf("%s (policy %d) got %v, a family it does not have", s.Key, s.Policy, res.IPs)
		}
	}
	for _, ip := range s.Request.IPs {
		if !slices.Contains(res.IPs, ip) {
			m.fatalf("%s requested %s, got %v", s.Key, ip, res.IPs)
		}
	}
	orphaned := len(res.IPs) > 0
	for _, ip := range res.IPs {
		orphaned = orphaned && m.cfg.PoolOf(ip) == ""
	}
	if had && slices.Equal(prev.res.IPs, res.IPs) && orphaned {
		// An address no pool contains any more stays with its Service,
		// even when other inputs changed (keepOrphan), unless the
		// Service now asks for another pool or IP.
		if s.Request.Pool != "" && s.Request.Pool != prev.res.Pool && s.Request.Pool != prev.spec.Request.Pool {
			m.fatalf("%s kept orphaned %v although it now requests pool %q", s.Key, res.IPs, s.Request.Pool)
		}
		return
	}
	if had && sameInputs(prev.spec, s) && slices.Equal(prev.res.IPs, res.IPs) {
		// Kept: only ports or backend changed, compatibly. An address
		// no pool contains any more stays too (after a restart, with
		// no pool name).
		if res.Pool != prev.res.Pool {
			m.fatalf("%s kept %v but its pool changed from %q to %q", s.Key, res.IPs, prev.res.Pool, res.Pool)
		}
		return
	}
	if s.Request.Pool != "" && res.Pool != s.Request.Pool {
		m.fatalf("%s requested pool %s, got %v", s.Key, s.Request.Pool, res)
	}
	p := m.cfg.Pools[res.Pool]
	if p == nil {
		m.fatalf("%s got %v from a pool that does not exist", s.Key, res)
	}
	if !modelAllowed(p, s) {
		m.fatalf("%s got %v from a pool that may not serve it", s.Key, res)
	}
	for _, ip := range res.IPs {
		if !p.Contains(ip) {
			m.fatalf("%s got %v: %s is not in the pool", s.Key, res, ip)
		}
		if had && slices.Contains(prev.res.IPs, ip) || slices.Contains(s.Request.IPs, ip) {
			continue
		}
		if others := heldBefore[ip]; len(others) > 0 {
			continue // shared; the pairwise check looks at it
		}
		if p.AvoidBuggyIPs && isBuggy(ip) {
			m.fatalf("%s got %s from a pool with avoidBuggyIPs", s.Key, ip)
		}
		if s.Request.Pool == "" && len(s.Request.IPs) == 0 && !p.AutoAssign {
			m.fatalf("%s got %s automatically from pool %s without autoAssign", s.Key, ip, p.Name)
		}
	}
}

// checkFailure checks that an Assign error is justified.
func (m *model) checkFailure(s Service, err error, held map[netip.Addr][]string) {
	var (
		exh   *PoolExhaustedError
		inUse *IPInUseError
	)
	if errors.As(err, &inUse) {
		ok := false
		for _, k := range held[inUse.IP] {
			if k == inUse.Holder && k != s.Key && !compatible(s, m.svcs[k].spec) {
				ok = true
			}
		}
		if !ok {
			m.fatalf("Assign %s: %v, but %s may share it (holders %v)", s.Key, err, inUse.Holder, held[inUse.IP])
		}
	}
	req, _ := required(s)
	if len(s.Request.IPs) > 0 {
		if m.requestGrantable(s, req, held) {
			m.fatalf("Assign %s: %v, but the requested IPs are free to take", s.Key, err)
		}
		return
	}
	if errors.As(err, &exh) {
		for _, name := range exh.Pools {
			if m.cfg.Pools[name] == nil {
				m.fatalf("Assign %s: %v names a pool that does not exist", s.Key, err)
			}
		}
	}
	// No candidate pool may have had a free address of every required family.
	var candidates []*config.Pool
	if s.Request.Pool != "" {
		if p := m.cfg.Pools[s.Request.Pool]; p != nil && modelAllowed(p, s) {
			candidates = append(candidates, p)
		}
	} else {
		for _, p := range m.cfg.Pools {
			if p.AutoAssign && modelAllowed(p, s) {
				candidates = append(candidates, p)
			}
		}
	}
	for _, p := range candidates {
		free := true
		for _, f := range req {
			if !m.hasFree(p, f, held) {
				free = false
			}
		}
		if free {
			m.fatalf("Assign %s: %v, but pool %s has free addresses of every required family", s.Key, err, p.Name)
		}
	}
}

func (m *model) hasFree(p *config.Pool, v4 bool, held map[netip.Addr][]string) bool {
	for _, r := range p.Ranges {
		if r.Is4() != v4 {
			continue
		}
		for ip := r.First; ; ip = ip.Next() {
			if usable(p, ip) && len(held[ip]) == 0 {
				return true
			}
			if ip == r.Last {
				break
			}
		}
	}
	return false
}

// requestGrantable says whether requested IPs satisfy every rule.
func (m *model) requestGrantable(s Service, req []bool, held map[netip.Addr][]string) bool {
	var p *config.Pool
	for _, ip := range s.Request.IPs {
		if s.Policy == SingleStack && ip.Is4() != s.IPv4First {
			return false
		}
		var in *config.Pool
		for _, q := range m.cfg.Pools {
			if q.Contains(ip) {
				in = q
			}
		}
		if in == nil || (p != nil && p != in) {
			return false
		}
		p = in
		for _, k := range held[ip] {
			if k != s.Key && !compatible(s, m.svcs[k].spec) {
				return false
			}
		}
	}
	if (s.Request.Pool != "" && s.Request.Pool != p.Name) || !modelAllowed(p, s) {
		return false
	}
	for _, f := range req {
		if !slices.ContainsFunc(s.Request.IPs, func(ip netip.Addr) bool { return ip.Is4() == f }) {
			return false
		}
	}
	return true
}

// restart replaces the allocator by a new one that learns the recorded
// assignments in random order.
func (m *model) restart() {
	m.logf("Restart")
	b := New()
	b.SetConfig(m.cfg)
	keys := make([]string, 0, len(m.svcs))
	for k := range m.svcs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i := len(keys) - 1; i > 0; i-- {
		j := m.s.n(i + 1)
		keys[i], keys[j] = keys[j], keys[i]
	}
	for _, k := range keys {
		s := m.svcs[k]
		if err := b.Restore(s.spec, s.res.IPs); err != nil {
			m.fatalf("Restore(%s, %v): %v", k, s.res.IPs, err)
		}
		// The restored pool is the one holding the addresses now.
		s.res.Pool = ""
		for _, ip := range s.res.IPs {
			if name := m.cfg.PoolOf(ip); name != "" {
				s.res.Pool = name
			}
		}
		m.svcs[k] = s
	}
	m.a = b
}

// checkWorld compares everything the allocator reports with the model.
func (m *model) checkWorld() {
	for _, k := range modelKeys {
		got, ok := m.a.Assigned(k)
		want, had := m.svcs[k]
		if ok != had || (had && (!slices.Equal(got.IPs, want.res.IPs) || got.Pool != want.res.Pool)) {
			m.fatalf("Assigned(%s) = %v, %v; model %v, %v", k, got, ok, want.res, had)
		}
	}
	// The index of sharing keys lists exactly the Services with a key.
	indexed := 0
	for k, group := range m.a.sharing {
		for i, st := range group {
			if m.a.svcs[st.h.key] != st || st.h.sharing.Key != k || (i > 0 && group[i-1].h.key >= st.h.key) {
				m.fatalf("sharing index: %s under %q is stale or out of order", st.h.key, k)
			}
			indexed++
		}
	}
	withKey := 0
	for _, st := range m.a.svcs {
		if st.h.sharing.Key != "" {
			withKey++
		}
	}
	if indexed != withKey {
		m.fatalf("sharing index lists %d Services, %d have a key", indexed, withKey)
	}
	held := m.heldBy()
	for ip, ks := range held {
		if got := sorted(m.a.Holders(ip)); !slices.Equal(got, ks) {
			m.fatalf("Holders(%s) = %v, model %v", ip, got, ks)
		}
		for i := range ks {
			for j := i + 1; j < len(ks); j++ {
				if !compatible(m.svcs[ks[i]].spec, m.svcs[ks[j]].spec) {
					m.fatalf("%s and %s both hold %s but may not share it", ks[i], ks[j], ip)
				}
			}
		}
	}
	wantOrphans := map[string][]netip.Addr{}
	for ip, ks := range held {
		if m.cfg.PoolOf(ip) == "" {
			for _, k := range ks {
				wantOrphans[k] = append(wantOrphans[k], ip)
			}
		}
	}
	gotOrphans := m.a.Orphans()
	for _, o := range []map[string][]netip.Addr{wantOrphans, gotOrphans} {
		for _, ips := range o {
			slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
		}
	}
	if !reflect.DeepEqual(gotOrphans, wantOrphans) {
		m.fatalf("Orphans = %v, model %v", gotOrphans, wantOrphans)
	}
	for name, p := range m.cfg.Pools {
		var n [2]int64
		var size [2]*big.Int
		size[0], size[1] = new(big.Int), new(big.Int)
		var has [2]bool
		for _, r := range p.Ranges {
			f := fi(r.Is4())
			has[f] = true
			for ip := r.First; ; ip = ip.Next() {
				if usable(p, ip) {
					size[f].Add(size[f], big.NewInt(1))
				}
				if ip == r.Last {
					break
				}
			}
		}
		for ip := range held {
			if usable(p, ip) {
				n[fi(ip.Is4())]++
			}
		}
		u, ok := m.a.Usage(name)
		if !ok || u.Assigned4 != n[1] || u.Assigned6 != n[0] || u.Has4 != has[1] || u.Has6 != has[0] ||
			u.Available4.Cmp(bigSub(size[1], n[1])) != 0 || u.Available6.Cmp(bigSub(size[0], n[0])) != 0 {
			m.fatalf("Usage(%s) = %+v (available %s, %s); recount: assigned %d IPv4 %d IPv6 of %s, %s", name, u,
				u.Available4, u.Available6, n[1], n[0], size[1], size[0])
		}
	}
}

var propertyRuns = flag.Int("ipam.property-runs", 600, "scripts TestAllocatorProperties runs")

func TestAllocatorProperties(t *testing.T) {
	runs := *propertyRuns
	if testing.Short() {
		runs /= 10
	}
	for seed := range int64(runs) {
		rng := rand.New(rand.NewSource(seed))
		data := make([]byte, 200+rng.Intn(1200))
		rng.Read(data)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			runModel(t, data, 1000)
		})
		if t.Failed() {
			return
		}
	}
}

func FuzzAllocator(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	rng := rand.New(rand.NewSource(1))
	for range 8 {
		data := make([]byte, 300)
		rng.Read(data)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runModel(t, data, 200)
	})
}
