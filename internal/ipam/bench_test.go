package ipam

import (
	"fmt"
	"runtime"
	"testing"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/lbservice"
)

// benchServices returns n single-stack Services of one family.
func benchServices(prefix string, n int, v4 bool) []Service {
	out := make([]Service, n)
	for i := range out {
		out[i] = Service{Key: fmt.Sprintf("bench/%s-%d", prefix, i), Namespace: "bench", IPv4First: v4,
			Sharing: lbservice.Sharing{Ports: []lbservice.Port{{Port: 80, Protocol: "TCP"}}}}
	}
	return out
}

// BenchmarkAssignRelease measures one Assign of a new Service plus its
// Release, in a pool that already has many addresses assigned.
func BenchmarkAssignRelease(b *testing.B) {
	for _, bc := range []struct {
		name     string
		pool     lbv1.IPAddressPool
		v4       bool
		assigned int
	}{
		// A /16 holds 65,536 addresses: fill all but 536 of them.
		{"IPv4_/16", pool("p", []string{"10.0.0.0/16"}), true, 65000},
		{"IPv6_/64", pool("p", []string{"2001:db8::/64"}), false, 100000},
		{"dual-stack_/16+/64", pool("p", []string{"10.0.0.0/16", "2001:db8::/64"}), true, 60000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := newAllocator(b, bc.pool)
			for _, s := range benchServices("old", bc.assigned, bc.v4) {
				if bc.name == "dual-stack_/16+/64" {
					s.Policy = RequireDualStack
				}
				if _, err := a.Assign(s); err != nil {
					b.Fatal(err)
				}
			}
			fresh := benchServices("new", 1024, bc.v4)
			if bc.name == "dual-stack_/16+/64" {
				for i := range fresh {
					fresh[i].Policy = RequireDualStack
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s := fresh[i%len(fresh)]
				if _, err := a.Assign(s); err != nil {
					b.Fatal(err)
				}
				a.Release(s.Key)
			}
		})
	}
}

// BenchmarkAssignReleaseShared is BenchmarkAssignRelease for a Service
// that joins an address shared under its key, among 100,000 Services that
// all have sharing keys (25,000 keys, four Services per address): the
// search for a shareable address looks at the key's Services only.
func BenchmarkAssignReleaseShared(b *testing.B) {
	const keys = 25000
	a := newAllocator(b, pool("p", []string{"2001:db8::/64"}))
	old := benchServices("old", 4*keys, false)
	for i := range old {
		old[i].Sharing.Key = fmt.Sprintf("key-%d", i%keys)
		old[i].Sharing.Ports = []lbservice.Port{{Port: int32(80 + i/keys), Protocol: "TCP"}}
		if _, err := a.Assign(old[i]); err != nil {
			b.Fatal(err)
		}
	}
	if u, _ := a.Usage("p"); u.Assigned6 != keys {
		b.Fatalf("%d addresses assigned, want %d", u.Assigned6, keys)
	}
	fresh := benchServices("new", 1024, false)
	for i := range fresh {
		fresh[i].Sharing.Key = fmt.Sprintf("key-%d", i*7%keys)
		fresh[i].Sharing.Ports = []lbservice.Port{{Port: 443, Protocol: "TCP"}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := fresh[i%len(fresh)]
		res, err := a.Assign(s)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 && len(a.Holders(res.IPs[0])) != 5 {
			b.Fatalf("%s did not join its key's address", s.Key)
		}
		a.Release(s.Key)
	}
}

// BenchmarkMemoryPerAssigned reports the heap the allocator keeps per
// assigned address. It is the same whatever the pool's size: memory
// follows the assignments, not the pool.
func BenchmarkMemoryPerAssigned(b *testing.B) {
	const n = 100000
	for _, bc := range []struct {
		name string
		pool lbv1.IPAddressPool
		v4   bool
	}{
		{"IPv6_/64", pool("p", []string{"2001:db8::/64"}), false},
		{"IPv6_/48", pool("p", []string{"2001:db8::/48"}), false},
		{"IPv6_/110", pool("p", []string{"2001:db8::/110"}), false},
		{"IPv4_/8", pool("p", []string{"10.0.0.0/8"}), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := mustConfig(b, bc.pool)
			services := benchServices("svc", n, bc.v4)
			var perAddr float64
			for i := 0; i < b.N; i++ {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				a := New()
				a.SetConfig(cfg)
				for _, s := range services {
					if _, err := a.Assign(s); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(a)
				perAddr = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
			}
			b.ReportMetric(perAddr, "B/assigned")
		})
	}
}
