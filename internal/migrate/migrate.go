// Package migrate converts a MetalLB configuration into one lbstack
// LoadBalancerStack: the legacy ConfigMap of MetalLB v0.12 and earlier,
// and the metallb.io custom resources of later releases (IPAddressPool,
// L2Advertisement, BGPAdvertisement, BGPPeer v1beta1 and v1beta2,
// BFDProfile, Community).
//
// Parse reads files, FromCluster reads a cluster, Convert builds the stack
// and Marshal writes it as YAML. Convert never drops input silently: every
// field it cannot express, or expresses differently, is a Finding naming
// the MetalLB object and field, and the stack it returns passes lbstack's
// own validation (config.Build, the function behind the admission
// webhooks) — a part lbstack would refuse is left out with a finding
// instead.
//
// Names: pools, peers, advertisements, BFD profiles and Communities keep
// their MetalLB names. From a legacy ConfigMap, peers[i] becomes the
// BGPPeer peer<i+1> (the names MetalLB's own configmaptocrs tool gives),
// the BGP advertisements of address-pools entry P are P-bgp-<i> (i the
// index in its bgp-advertisements, P-bgp-0 for the default advertisement
// of a pool without any), a layer2 pool's L2Advertisement is P-l2, and
// bgp-communities become the Community "communities". A legacy name that
// is not a valid object name is rewritten, with a finding.
package migrate

import (
	"errors"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// Severity says how a Finding's field fares in the conversion.
type Severity string

// Severities.
const (
	// SeverityDropped: lbstack cannot express the field; it is left out.
	SeverityDropped Severity = "dropped"
	// SeverityChanged: the field is expressed differently (renamed,
	// rounded, moved to a Secret, ...).
	SeverityChanged Severity = "changed"
	// SeverityNote: nothing is lost, but the user should know.
	SeverityNote Severity = "note"
)

// Finding is one thing the conversion could not carry over as it was.
type Finding struct {
	// Object names the MetalLB input: "BGPPeer metallb-system/peer1",
	// "ConfigMap metallb-system/config peers[0]".
	Object string
	// Field is the input's field, "spec.vrf" or a legacy key such as
	// "password"; empty for the whole object.
	Field string
	// Severity says whether the field was dropped, changed, or is a note.
	Severity Severity
	// Message says why, and what the user should do.
	Message string
}

// String writes the finding on one line, as Marshal's header does.
func (f Finding) String() string {
	where := f.Object
	if f.Field != "" {
		where += " " + f.Field
	}
	return fmt.Sprintf("%s %s: %s", f.Severity, where, f.Message)
}

// Options tune Convert.
type Options struct {
	// Name of the LoadBalancerStack; default "lbstack".
	Name string
	// LoadBalancerClass becomes the stack's spec.loadBalancerClass: set it
	// when MetalLB ran with a class (its --lb-class flag or the Helm value
	// loadBalancerClass). Default none: the stack serves Services without
	// a class, as MetalLB does by default.
	LoadBalancerClass string
	// SecretNamespace receives the Secrets generated for BGP passwords
	// that MetalLB held in plain text: lbstack's namespace, default
	// "lbstack-system".
	SecretNamespace string
	// MetalLBNamespace is where MetalLB's password Secrets (BGPPeer
	// passwordSecret) live when a BGPPeer read from a file names no
	// namespace; default "metallb-system".
	MetalLBNamespace string
}

// Defaults of Options.
const (
	DefaultStackName        = "lbstack"
	DefaultSecretNamespace  = "lbstack-system"
	DefaultMetalLBNamespace = "metallb-system"
)

// ErrNoConfiguration is returned by Convert when the input holds no
// MetalLB configuration at all.
var ErrNoConfiguration = errors.New("no MetalLB configuration found: no IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer, BFDProfile or Community (metallb.io), and no ConfigMap with a legacy `config`")

// Input is a MetalLB configuration read by Parse or FromCluster.
type Input struct {
	legacy      []legacyInput
	pools       []object[ipAddressPoolSpec]
	l2s         []object[l2AdvertisementSpec]
	bgps        []object[bgpAdvertisementSpec]
	peers       []object[bgpPeerSpec]
	bfds        []object[bfdProfileSpec]
	communities []object[communitySpec]
	// findings are what reading noticed: kinds and fields not converted.
	findings []Finding
}

type legacyInput struct {
	// where names the configuration in findings: "ConfigMap
	// metallb-system/config", or "config (document 1)" for a bare one.
	where string
	cfg   legacyConfig
}

// Append adds other's configuration to in, for input read from several
// files.
func (in *Input) Append(other *Input) {
	in.legacy = append(in.legacy, other.legacy...)
	in.pools = append(in.pools, other.pools...)
	in.l2s = append(in.l2s, other.l2s...)
	in.bgps = append(in.bgps, other.bgps...)
	in.peers = append(in.peers, other.peers...)
	in.bfds = append(in.bfds, other.bfds...)
	in.communities = append(in.communities, other.communities...)
	in.findings = append(in.findings, other.findings...)
}

// Empty reports whether in holds no MetalLB configuration.
func (in *Input) Empty() bool {
	return len(in.legacy)+len(in.pools)+len(in.l2s)+len(in.bgps)+len(in.peers)+len(in.bfds)+len(in.communities) == 0
}

func (in *Input) note(f Finding) { in.findings = append(in.findings, f) }

// Result is everything a conversion produces.
type Result struct {
	// Stack is the LoadBalancerStack.
	Stack *lbv1.LoadBalancerStack
	// Findings list what was dropped or changed, sorted by object and field.
	Findings []Finding
	// Extra are the objects the stack needs besides itself, to apply with
	// it: Secrets holding the BGP passwords MetalLB had in plain text, and
	// standalone lbstack objects for items beyond the stack's list bounds
	// (32 pools, 256 peers, 256 L2 and 64 BGP advertisements).
	Extra []client.Object
}

// Convert turns a MetalLB configuration into a LoadBalancerStack that
// lbstack's validation accepts, and the findings. It is ConvertAll
// without the extra objects: use ConvertAll when the input may hold
// plain-text BGP passwords or more items than a stack holds.
func Convert(in *Input, opts Options) (*lbv1.LoadBalancerStack, []Finding, error) {
	r, err := ConvertAll(in, opts)
	if err != nil {
		return nil, nil, err
	}
	return r.Stack, r.Findings, nil
}

// ConvertAll turns a MetalLB configuration into a LoadBalancerStack, the
// findings, and the extra objects (Secrets, overflow objects) the stack
// needs. The output is deterministic: the same input in any order gives
// the same result.
func ConvertAll(in *Input, opts Options) (*Result, error) {
	if opts.Name == "" {
		opts.Name = DefaultStackName
	}
	if opts.SecretNamespace == "" {
		opts.SecretNamespace = DefaultSecretNamespace
	}
	if opts.MetalLBNamespace == "" {
		opts.MetalLBNamespace = DefaultMetalLBNamespace
	}
	if errs := validation.IsDNS1123Subdomain(opts.Name); len(errs) > 0 {
		return nil, fmt.Errorf("stack name %q: %v", opts.Name, errs)
	}
	if errs := validation.IsDNS1123Label(opts.SecretNamespace); len(errs) > 0 {
		return nil, fmt.Errorf("secret namespace %q: %v", opts.SecretNamespace, errs)
	}
	if in == nil || in.Empty() {
		return nil, ErrNoConfiguration
	}
	c := newConverter(opts)
	c.findings = append(c.findings, in.findings...)
	c.convert(in)
	cfgErr := c.settle()
	if cfgErr != nil {
		return nil, cfgErr
	}
	stack, _, overflow := c.render()
	extra := make([]client.Object, 0, len(c.secrets)+len(overflow))
	for _, s := range c.secrets {
		extra = append(extra, s)
	}
	extra = append(extra, overflow...)
	return &Result{Stack: stack, Findings: sortFindings(c.findings), Extra: extra}, nil
}

// sortFindings orders findings by object and field, and drops repeats
// (the same object read twice says the same twice).
func sortFindings(fs []Finding) []Finding {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].Object != fs[j].Object {
			return fs[i].Object < fs[j].Object
		}
		return fs[i].Field < fs[j].Field
	})
	out := fs[:0]
	seen := map[Finding]bool{}
	for _, f := range fs {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}
