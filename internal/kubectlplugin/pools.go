package kubectlplugin

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/lbservice"
)

// PoolReport is one pool as `pools` shows it.
type PoolReport struct {
	// Name of the pool.
	Name string `json:"name"`
	// Ranges are the pool's addresses as written.
	Ranges []string `json:"ranges"`
	// AutoAssign: Services without a request may get addresses from it.
	AutoAssign bool `json:"autoAssign"`
	// Families has one entry per IP family the pool holds.
	Families []FamilyReport `json:"families"`
	// Services are the Services holding addresses of the pool (only with
	// --services).
	Services []string `json:"services,omitempty"`
}

// FamilyReport is the usage of one family of a pool. Numbers are exact
// decimal strings: an IPv6 pool can hold more than 2^64 addresses.
type FamilyReport struct {
	// Family is IPv4 or IPv6.
	Family string `json:"family"`
	// Size is the number of addresses in the pool's ranges.
	Size string `json:"size"`
	// Assigned is the number of those addresses Services hold.
	Assigned string `json:"assigned"`
	// Available is the number that can still be assigned (the
	// controller's count, which leaves out avoided addresses; else Size
	// minus Assigned).
	Available string `json:"available"`
	// UsedPercent is Assigned/Size in percent, rounded up to 0.01 so a
	// pool with any address in use never shows 0.
	UsedPercent string `json:"usedPercent"`
}

func poolsFlags(fs *pflag.FlagSet, o *Options) func(context.Context, *Options, []string, IO) error {
	var withServices bool
	fs.BoolVar(&withServices, "services", false, "also list the Services holding addresses of each pool")
	return func(ctx context.Context, o *Options, args []string, stdio IO) error {
		if err := noArgs(args); err != nil {
			return err
		}
		if err := o.connect(); err != nil {
			return err
		}
		reports, err := poolReports(ctx, o, withServices)
		if err != nil {
			return err
		}
		if o.Output != "" && o.Output != "table" {
			return printObject(stdio.Out, o.Output, reports)
		}
		if len(reports) == 0 {
			fmt.Fprintln(stdio.Out, "No pools in force (no LoadBalancerStack, or its configuration is invalid: see kubectl lbstack status).")
			return nil
		}
		t := newTable(stdio.Out, "POOL", "FAMILY", "SIZE", "ASSIGNED", "AVAILABLE", "USED", "AUTO-ASSIGN", "RANGES")
		for _, r := range reports {
			for _, f := range r.Families {
				t.row(r.Name, f.Family, f.Size, f.Assigned, f.Available, f.UsedPercent+"%", fmt.Sprint(r.AutoAssign), strings.Join(r.Ranges, ","))
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
		if withServices {
			for _, r := range reports {
				fmt.Fprintf(stdio.Out, "\n%s: %s\n", r.Name, joinOr(r.Services, ", "))
			}
		}
		return nil
	}
}

func poolReports(ctx context.Context, o *Options, withServices bool) ([]PoolReport, error) {
	ctx, cancel := o.timeout(ctx)
	defer cancel()
	cfg, class, err := loadConfig(ctx, o)
	if err != nil || cfg == nil {
		return nil, err
	}
	var objs lbv1.IPAddressPoolList
	if err := o.client.List(ctx, &objs); err != nil {
		return nil, o.read("list IPAddressPools", err)
	}
	status := map[string]lbv1.PoolUsage{}
	for _, p := range objs.Items {
		status[p.Name] = p.Status.PoolUsage
	}
	var svcs corev1.ServiceList
	if err := o.client.List(ctx, &svcs); err != nil {
		return nil, o.read("list Services in all namespaces", err)
	}
	// Assigned addresses per pool and family, counted once however many
	// Services share one.
	held := map[string]map[string]bool{}
	holders := map[string][]string{}
	for i := range svcs.Items {
		s := &svcs.Items[i]
		if !lbservice.Serves(s, class) {
			continue
		}
		for _, ip := range lbservice.IngressIPs(s) {
			pool := lbservice.PoolOf(cfg, s.Annotations[lbv1.AnnotationAllocatedFromPool], ip)
			if pool == "" {
				continue
			}
			if held[pool] == nil {
				held[pool] = map[string]bool{}
			}
			held[pool][ip.String()] = true
			holders[pool] = append(holders[pool], s.Namespace+"/"+s.Name)
		}
	}
	var out []PoolReport
	for name, p := range cfg.Pools {
		r := PoolReport{Name: name, AutoAssign: p.AutoAssign}
		for _, rg := range p.Ranges {
			r.Ranges = append(r.Ranges, rg.String())
		}
		for _, v4 := range []bool{true, false} {
			size := p.Size(v4)
			if size.Sign() == 0 {
				continue
			}
			fam, counts := "IPv6", status[name].IPv6
			if v4 {
				fam, counts = "IPv4", status[name].IPv4
			}
			assigned := int64(0)
			for ip := range held[name] {
				if strings.Contains(ip, ":") != v4 {
					assigned++
				}
			}
			avail := new(big.Int).Sub(size, big.NewInt(assigned))
			if counts != nil && counts.Available != "" {
				if v, ok := new(big.Int).SetString(counts.Available, 10); ok {
					avail = v
				}
			}
			r.Families = append(r.Families, FamilyReport{Family: fam, Size: size.String(), Assigned: fmt.Sprint(assigned),
				Available: avail.String(), UsedPercent: percent(big.NewInt(assigned), size)})
		}
		if withServices {
			r.Services = slices.Compact(slices.Sorted(slices.Values(holders[name])))
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b PoolReport) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// percent is 100·part/whole with two decimals, rounded up (exact for any
// size).
func percent(part, whole *big.Int) string {
	if whole.Sign() == 0 {
		return "0.00"
	}
	n := new(big.Int).Mul(part, big.NewInt(10000))
	q, m := new(big.Int).QuoRem(n, whole, new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	s := q.String()
	if len(s) < 3 {
		s = strings.Repeat("0", 3-len(s)) + s
	}
	return s[:len(s)-2] + "." + s[len(s)-2:]
}
