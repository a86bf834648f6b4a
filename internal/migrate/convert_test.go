package migrate

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// convertYAML parses and converts docs, and checks the stack with
// lbstack's validation.
func convertYAML(t *testing.T, docs string) *Result {
	t.Helper()
	in, err := Parse([]byte(docs))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r, err := ConvertAll(in, Options{})
	if err != nil {
		t.Fatalf("ConvertAll: %v", err)
	}
	mustBeValid(t, r)
	return r
}

type want struct {
	object, field string
	severity      Severity
}

func (w want) String() string { return fmt.Sprintf("%s %s %s", w.severity, w.object, w.field) }

// checkFindings fails unless every wanted finding is there (object,
// field and severity) with a message.
func checkFindings(t *testing.T, got []Finding, wants ...want) {
	t.Helper()
	for _, w := range wants {
		found := false
		for _, f := range got {
			if f.Object == w.object && f.Field == w.field && f.Severity == w.severity && f.Message != "" {
				found = true
			}
		}
		if !found {
			var all []string
			for _, f := range got {
				all = append(all, f.String())
			}
			t.Errorf("no finding %s; findings:\n%s", w, strings.Join(all, "\n"))
		}
	}
}

const bfdDoc = `
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: metallb-system}
spec: {receiveInterval: 100, transmitInterval: 100}
`

func peerDoc(version, spec string) string {
	return "apiVersion: metallb.io/" + version + "\nkind: BGPPeer\nmetadata: {name: p1, namespace: metallb-system}\nspec:\n" + spec + bfdDoc
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// TestPeerMapping checks how each BGPPeer field is carried over.
func TestPeerMapping(t *testing.T) {
	const peer = "BGPPeer metallb-system/p1"
	cases := map[string]struct {
		version  string
		spec     string
		want     lbv1.BGPPeerSpec
		findings []want
	}{
		"every supported field": {
			version: "v1beta2",
			spec: `  myASN: 64500
  peerASN: 64501
  peerAddress: 192.0.2.1
  sourceAddress: 192.0.2.10
  peerPort: 1179
  holdTime: 90s
  keepaliveTime: 30s
  connectTime: 10s
  routerID: 10.0.0.1
  nodeSelectors: [{matchLabels: {rack: a}}]
  passwordSecret: {name: pw, namespace: metallb-system}
  bfdProfile: fast
  enableGracefulRestart: true
  ebgpMultiHop: true
  dualStackAddressFamily: true
`,
			want: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "192.0.2.1", SourceAddress: "192.0.2.10", PeerPort: 1179,
				HoldTime: dur(90 * time.Second), KeepaliveTime: dur(30 * time.Second), ConnectTime: dur(10 * time.Second), RouterID: "10.0.0.1",
				NodeSelectors:  []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "a"}}},
				PasswordSecret: &lbv1.SecretReference{Name: "pw", Namespace: "metallb-system", Key: "password"},
				BFDProfile:     "fast", EnableGracefulRestart: ptr.To(true), EBGPMultiHop: ptr.To(true), DualStackAddressFamily: ptr.To(true)},
			findings: []want{{peer, "spec.passwordSecret", SeverityNote}},
		},
		"v1beta1 peer": {
			version: "v1beta1",
			spec:    "  myASN: 64500\n  peerASN: 64500\n  peerAddress: 192.0.2.1\n  nodeSelectors: [{matchExpressions: [{key: rack, operator: In, values: [a, b]}]}]\n",
			want: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64500, PeerAddress: "192.0.2.1", NodeSelectors: []metav1.LabelSelector{{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}}}},
		},
		"dynamic ASN and unnumbered": {
			version: "v1beta2",
			spec:    "  myASN: 64500\n  dynamicASN: external\n  interface: eth1\n",
			want:    lbv1.BGPPeerSpec{MyASN: 64500, DynamicASN: lbv1.DynamicASNExternal, Interface: "eth1"},
		},
		"keepalive alone derives the hold time as MetalLB does": {
			version:  "v1beta2",
			spec:     "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n  keepaliveTime: 20s\n",
			want:     lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "192.0.2.1", HoldTime: dur(60 * time.Second), KeepaliveTime: dur(20 * time.Second)},
			findings: []want{{peer, "spec.keepaliveTime", SeverityNote}},
		},
		"fractional timers are truncated to seconds": {
			version:  "v1beta2",
			spec:     "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n  holdTime: 10500ms\n  connectTime: 2.5s\n",
			want:     lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "192.0.2.1", HoldTime: dur(10 * time.Second), ConnectTime: dur(2 * time.Second)},
			findings: []want{{peer, "spec.holdTime", SeverityChanged}, {peer, "spec.connectTime", SeverityChanged}},
		},
		"keepalive equal to hold time is dropped": {
			version:  "v1beta2",
			spec:     "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n  holdTime: 30s\n  keepaliveTime: 30s\n",
			want:     lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "192.0.2.1", HoldTime: dur(30 * time.Second)},
			findings: []want{{peer, "spec.keepaliveTime", SeverityDropped}},
		},
		"hold time under 3s is dropped": {
			version:  "v1beta2",
			spec:     "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n  holdTime: 2s\n",
			want:     lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "192.0.2.1"},
			findings: []want{{peer, "spec.holdTime", SeverityDropped}},
		},
		"localASN becomes the session's myASN": {
			version:  "v1beta2",
			spec:     "  myASN: 64500\n  localASN: 65001\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n",
			want:     lbv1.BGPPeerSpec{MyASN: 65001, PeerASN: 64501, PeerAddress: "192.0.2.1"},
			findings: []want{{peer, "spec.localASN", SeverityChanged}},
		},
		"unnumbered peer loses what lbstack refuses on it": {
			version: "v1beta2",
			spec:    "  myASN: 64500\n  peerASN: 64501\n  interface: eth1\n  password: pw\n  bfdProfile: fast\n  ebgpMultiHop: true\n",
			want:    lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, Interface: "eth1"},
			findings: []want{{peer, "spec.password", SeverityDropped}, {peer, "spec.bfdProfile", SeverityDropped},
				{peer, "spec.ebgpMultiHop", SeverityDropped}},
		},
		"ebgpMultiHop on iBGP is dropped": {
			version:  "v1beta2",
			spec:     "  myASN: 64500\n  peerASN: 64500\n  peerAddress: 192.0.2.1\n  ebgpMultiHop: true\n",
			want:     lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64500, PeerAddress: "192.0.2.1"},
			findings: []want{{peer, "spec.ebgpMultiHop", SeverityDropped}},
		},
		"IPv6 router ID is dropped": {
			version:  "v1beta2",
			spec:     "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n  routerID: \"2001:db8::1\"\n",
			want:     lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "192.0.2.1"},
			findings: []want{{peer, "spec.routerID", SeverityDropped}},
		},
		"missing BFD profile is dropped": {
			version:  "v1beta2",
			spec:     "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n  bfdProfile: none\n",
			want:     lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "192.0.2.1"},
			findings: []want{{peer, "spec.bfdProfile", SeverityDropped}},
		},
		"vrf and disableMP": {
			version:  "v1beta2",
			spec:     "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n  vrf: red\n  disableMP: true\n",
			want:     lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "192.0.2.1"},
			findings: []want{{peer, "spec.vrf", SeverityDropped}, {peer, "spec.disableMP", SeverityChanged}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := convertYAML(t, peerDoc(tc.version, tc.spec))
			if len(r.Stack.Spec.BGPPeers) != 1 {
				t.Fatalf("%d peers, want 1", len(r.Stack.Spec.BGPPeers))
			}
			if d := cmp.Diff(tc.want, r.Stack.Spec.BGPPeers[0].BGPPeerSpec); d != "" {
				t.Errorf("peer (-want +got):\n%s", d)
			}
			checkFindings(t, r.Findings, tc.findings...)
		})
	}
}

// TestPlainPasswordBecomesSecret: lbstack takes passwords from Secrets
// only, so a plain-text one is written to a generated Secret.
func TestPlainPasswordBecomesSecret(t *testing.T) {
	r := convertYAML(t, peerDoc("v1beta2", "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n  password: s3cret\n"))
	ref := &lbv1.SecretReference{Name: "p1-bgp-password", Namespace: DefaultSecretNamespace, Key: "password"}
	if d := cmp.Diff(ref, r.Stack.Spec.BGPPeers[0].PasswordSecret); d != "" {
		t.Errorf("passwordSecret (-want +got):\n%s", d)
	}
	secrets := extraOf[*corev1.Secret](r)
	if len(secrets) != 1 || secrets[0].Name != ref.Name || secrets[0].Namespace != ref.Namespace || secrets[0].StringData["password"] != "s3cret" {
		t.Fatalf("want one Secret %s/%s holding the password, got %+v", ref.Namespace, ref.Name, secrets)
	}
	checkFindings(t, r.Findings, want{"BGPPeer metallb-system/p1", "spec.password", SeverityChanged})
	for _, f := range r.Findings {
		if strings.Contains(f.Message, "s3cret") {
			t.Errorf("a finding shows the password: %s", f)
		}
	}
}

// TestPoolMapping checks the IPAddressPool fields.
func TestPoolMapping(t *testing.T) {
	cases := map[string]struct {
		spec     string
		want     lbv1.IPAddressPoolSpec
		findings []want
	}{
		"every field": {
			spec: `  addresses: [192.0.2.0/28, "192.0.2.20 - 192.0.2.30", "2001:db8::/120"]
  autoAssign: false
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 5
    namespaces: [a, b, a]
    namespaceSelectors: [{matchLabels: {team: x}}]
    serviceSelectors: [{matchLabels: {app: "y"}}]
`,
			want: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"192.0.2.0/28", "192.0.2.20-192.0.2.30", "2001:db8::/120"},
				AutoAssign: ptr.To(false), AvoidBuggyIPs: true, Allocation: &lbv1.ServiceAllocation{Priority: ptr.To(int32(5)),
					Namespaces:         []string{"a", "b"},
					NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"team": "x"}}},
					ServiceSelectors:   []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "y"}}}}},
			findings: []want{{"IPAddressPool metallb-system/p", "spec.serviceAllocation.namespaces", SeverityNote}},
		},
		"priority 0 is MetalLB's unset": {
			spec: "  addresses: [192.0.2.0/28]\n  serviceAllocation: {priority: 0, namespaces: [a]}\n",
			want: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"192.0.2.0/28"}, Allocation: &lbv1.ServiceAllocation{Namespaces: []string{"a"}}},
		},
		"host bits are masked as MetalLB did": {
			spec:     "  addresses: [192.0.2.77/28]\n",
			want:     lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"192.0.2.64/28"}},
			findings: []want{{"IPAddressPool metallb-system/p", "spec.addresses[0]", SeverityChanged}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := convertYAML(t, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: metallb-system}\nspec:\n"+tc.spec+
				"---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a, namespace: metallb-system}\n")
			if d := cmp.Diff(tc.want, r.Stack.Spec.Pools[0].IPAddressPoolSpec); d != "" {
				t.Errorf("pool (-want +got):\n%s", d)
			}
			checkFindings(t, r.Findings, tc.findings...)
		})
	}
}

// TestPriorityRenumbered keeps the order of priorities beyond lbstack's
// bound.
func TestPriorityRenumbered(t *testing.T) {
	doc := func(name, addr string, prio int) string {
		return fmt.Sprintf("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: %s}\nspec: {addresses: [%s], serviceAllocation: {priority: %d}}\n---\n", name, addr, prio)
	}
	r := convertYAML(t, doc("a", "192.0.2.0/28", 2000000)+doc("b", "192.0.2.16/28", 7)+doc("c", "192.0.2.32/28", 3000000))
	got := map[string]int32{}
	for _, p := range r.Stack.Spec.Pools {
		got[p.Name] = *p.Allocation.Priority
	}
	if d := cmp.Diff(map[string]int32{"a": 2, "b": 1, "c": 3}, got); d != "" {
		t.Errorf("priorities (-want +got):\n%s", d)
	}
	checkFindings(t, r.Findings, want{"IPAddressPool a", "spec.serviceAllocation.priority", SeverityChanged})
}

// TestAdvertisementMapping checks the L2 and BGP advertisement fields and
// community aliases.
func TestAdvertisementMapping(t *testing.T) {
	r := convertYAML(t, `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p, labels: {tier: web}}
spec: {addresses: [192.0.2.0/24, "2001:db8::/64"]}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: c1}
spec:
  communities:
  - {name: no-advertise, value: "65535:65282"}
  - {name: "bad name", value: "64500:7"}
  - {name: padded, value: "064500:08"}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: c2}
spec:
  communities:
  - {name: no-advertise, value: "65535:65281"}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
spec:
  ipAddressPoolSelectors: [{matchLabels: {tier: web}}]
  nodeSelectors: [{matchLabels: {l2: "yes"}}]
  interfaces: [eth0, "bad/if"]
  serviceSelectors: [{matchLabels: {l2: "yes"}}]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp}
spec:
  ipAddressPools: [p]
  aggregationLength: 24
  aggregationLengthV6: 64
  localPref: 200
  communities: [no-advertise, bad name, padded, "large:1:2:3", "65535:65282"]
  nodeSelectors: [{matchLabels: {bgp: "yes"}}]
  peers: [r1]
  serviceSelectors: [{matchLabels: {bgp: "yes"}}]
`)
	wantL2 := lbv1.L2AdvertisementSpec{
		IPAddressPoolSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "web"}}},
		NodeSelectors:          []metav1.LabelSelector{{MatchLabels: map[string]string{"l2": "yes"}}},
		Interfaces:             []string{"eth0"},
		ServiceSelectors:       []metav1.LabelSelector{{MatchLabels: map[string]string{"l2": "yes"}}},
	}
	if d := cmp.Diff(wantL2, r.Stack.Spec.L2Advertisements[0].L2AdvertisementSpec); d != "" {
		t.Errorf("L2Advertisement (-want +got):\n%s", d)
	}
	wantBGP := lbv1.BGPAdvertisementSpec{
		AggregationLength: ptr.To(int32(24)), AggregationLengthV6: ptr.To(int32(64)), LocalPref: ptr.To(int64(200)),
		// "bad name" is not an lbstack alias name: its value is written
		// instead; the padded value is written canonically; the literal
		// 65535:65282 repeats no-advertise and is written once.
		Communities:      []lbv1.CommunityRef{"no-advertise", "64500:7", "padded", "large:1:2:3"},
		IPAddressPools:   []string{"p"},
		NodeSelectors:    []metav1.LabelSelector{{MatchLabels: map[string]string{"bgp": "yes"}}},
		Peers:            []string{"r1"},
		ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"bgp": "yes"}}},
	}
	if d := cmp.Diff(wantBGP, r.Stack.Spec.BGPAdvertisements[0].BGPAdvertisementSpec); d != "" {
		t.Errorf("BGPAdvertisement (-want +got):\n%s", d)
	}
	wantComms := []lbv1.InlineCommunity{{InlineMeta: lbv1.InlineMeta{Name: "c1"}, CommunitySpec: lbv1.CommunitySpec{Communities: []lbv1.CommunityAlias{
		{Name: "no-advertise", Value: "65535:65282"}, {Name: "padded", Value: "64500:8"}}}}}
	if d := cmp.Diff(wantComms, r.Stack.Spec.Communities); d != "" {
		t.Errorf("communities (-want +got):\n%s", d)
	}
	checkFindings(t, r.Findings,
		want{"Community c1", "spec.communities[1]", SeverityChanged},
		want{"Community c1", "spec.communities[2]", SeverityChanged},
		want{"Community c2", "spec.communities[0]", SeverityDropped},
		want{"Community c2", "", SeverityNote},
		want{"L2Advertisement l2", "spec.interfaces[1]", SeverityDropped},
		want{"BGPAdvertisement bgp", "spec.peers[0]", SeverityNote}, // lbstack warns: no BGPPeer r1
	)
}

// TestFindingsNameObjectAndField: every field lbstack cannot express
// gives a finding that names the object and the field.
func TestFindingsNameObjectAndField(t *testing.T) {
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: |\n"
	cases := map[string]struct {
		docs string
		want []want
	}{
		"BFD echo": {
			docs: "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: b, namespace: metallb-system}\nspec: {echoMode: true, echoInterval: 50}\n",
			want: []want{{"BFDProfile metallb-system/b", "spec.echoMode", SeverityDropped}, {"BFDProfile metallb-system/b", "spec.echoInterval", SeverityDropped}},
		},
		"L2 preferred nodes": {
			docs: "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a}\nspec: {preferredNodeSelectors: [{weight: 1, preference: {matchLabels: {x: \"y\"}}}]}\n",
			want: []want{{"L2Advertisement a", "spec.preferredNodeSelectors", SeverityDropped}},
		},
		"unknown spec field": {
			docs: "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [192.0.2.0/28], newThing: {deep: 1}}\n",
			want: []want{{"IPAddressPool p", "spec.newThing", SeverityDropped}, {"IPAddressPool p", "", SeverityNote}},
		},
		"unknown nested field": {
			docs: "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [192.0.2.0/28], serviceAllocation: {namespaces: [a], weight: 3}}\n",
			want: []want{{"IPAddressPool p", "spec.serviceAllocation.weight", SeverityDropped}},
		},
		"MetalLB kinds not converted": {
			docs: "apiVersion: metallb.io/v1beta1\nkind: MetalLB\nmetadata: {name: metallb, namespace: metallb-system}\n---\n" +
				"apiVersion: frrk8s.metallb.io/v1beta1\nkind: FRRConfiguration\nmetadata: {name: f}\n---\n" +
				"apiVersion: metallb.io/v1beta1\nkind: ServiceBGPStatus\nmetadata: {name: s}\n---\n" +
				"apiVersion: metallb.io/v1beta1\nkind: Unheard\nmetadata: {name: u}\n---\n" +
				"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [192.0.2.0/28]}\n",
			want: []want{{"MetalLB metallb-system/metallb", "", SeverityDropped}, {"FRRConfiguration f", "", SeverityDropped},
				{"ServiceBGPStatus s", "", SeverityNote}, {"Unheard u", "", SeverityDropped}},
		},
		"invalid label": {
			docs: "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, labels: {\"bad key!\": x}}\nspec: {addresses: [192.0.2.0/28]}\n",
			want: []want{{"IPAddressPool p", "metadata.labels[bad key!]", SeverityDropped}},
		},
		"invalid object name": {
			docs: "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: Bad_Name}\nspec: {addresses: [192.0.2.0/28]}\n",
			want: []want{{"IPAddressPool Bad_Name", "", SeverityDropped}},
		},
		"duplicate name": {
			docs: "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: a}\nspec: {addresses: [192.0.2.0/28]}\n---\n" +
				"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: b}\nspec: {addresses: [192.0.2.16/28]}\n",
			want: []want{{"IPAddressPool b/p", "", SeverityDropped}},
		},
		"legacy unknown key and old spellings": {
			docs: cm + "    address-pools:\n    - name: p\n      protocol: arp\n      arp-network: 192.0.2.0/24\n      cidr: [192.0.2.0/28]\n      colour: blue\n",
			want: []want{{"ConfigMap metallb-system/config address-pools[0]", "arp-network", SeverityDropped},
				{"ConfigMap metallb-system/config address-pools[0]", "protocol", SeverityNote},
				{"ConfigMap metallb-system/config address-pools[0]", "cidr", SeverityNote},
				{"ConfigMap metallb-system/config address-pools[0]", "colour", SeverityDropped}},
		},
		"legacy pool without protocol": {
			docs: cm + "    address-pools:\n    - name: p\n      addresses: [192.0.2.0/28]\n",
			want: []want{{"ConfigMap metallb-system/config address-pools[0]", "protocol", SeverityDropped}},
		},
		"legacy layer2 pool with bgp-advertisements": {
			docs: cm + "    address-pools:\n    - name: p\n      protocol: layer2\n      addresses: [192.0.2.0/28]\n      bgp-advertisements: [{localpref: 1}]\n",
			want: []want{{"ConfigMap metallb-system/config address-pools[0]", "bgp-advertisements", SeverityDropped}},
		},
		"legacy peer fields": {
			docs: cm + "    peers:\n    - {peer-address: 192.0.2.1, peer-asn: 64500, my-asn: 64500, ebgp-multihop: true, password: pw, router-id: \"2001:db8::1\", bfd-profile: none}\n",
			want: []want{{"ConfigMap metallb-system/config peers[0]", "ebgp-multihop", SeverityDropped},
				{"ConfigMap metallb-system/config peers[0]", "password", SeverityChanged},
				{"ConfigMap metallb-system/config peers[0]", "router-id", SeverityDropped},
				{"ConfigMap metallb-system/config peers[0]", "bfd-profile", SeverityDropped}},
		},
		"legacy alias that lbstack cannot name": {
			docs: cm + "    bgp-communities: {\"no export\": \"65535:65281\"}\n    address-pools:\n    - name: p\n      protocol: bgp\n      addresses: [192.0.2.0/28]\n      bgp-advertisements: [{communities: [no export]}]\n",
			want: []want{{"ConfigMap metallb-system/config bgp-communities", "no export", SeverityChanged}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := convertYAML(t, tc.docs)
			checkFindings(t, r.Findings, tc.want...)
		})
	}
}

// TestLegacyNames checks the names given to what a legacy ConfigMap
// declares without a name.
func TestLegacyNames(t *testing.T) {
	r := convertYAML(t, `peers:
- {peer-address: 192.0.2.1, peer-asn: 64501, my-asn: 64500}
- {peer-address: 192.0.2.2, peer-asn: 64501, my-asn: 64500}
bgp-communities: {no-export: "65535:65281"}
address-pools:
- name: web
  protocol: bgp
  addresses: [198.51.100.0/24]
  bgp-advertisements:
  - {aggregation-length: 32, localpref: 0, communities: [no-export]}
  - {aggregation-length: 24, communities: ["64500:1"]}
- name: plain
  protocol: bgp
  addresses: [198.51.101.0/24]
- name: office
  protocol: layer2
  addresses: [192.168.1.240-192.168.1.250]
`)
	var names []string
	for _, p := range r.Stack.Spec.BGPPeers {
		names = append(names, p.Name)
	}
	for _, a := range r.Stack.Spec.BGPAdvertisements {
		names = append(names, a.Name+"="+strings.Join(a.IPAddressPools, ","))
	}
	for _, a := range r.Stack.Spec.L2Advertisements {
		names = append(names, a.Name+"="+strings.Join(a.IPAddressPools, ","))
	}
	for _, c := range r.Stack.Spec.Communities {
		names = append(names, c.Name)
	}
	want := []string{"peer1", "peer2", "plain-bgp-0=plain", "web-bgp-0=web", "web-bgp-1=web", "office-l2=office", "communities"}
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("names (-want +got):\n%s", d)
	}
	// The legacy format's explicit localpref 0 is a value MetalLB sent.
	if lp := r.Stack.Spec.BGPAdvertisements[1].LocalPref; lp == nil || *lp != 0 {
		t.Errorf("web-bgp-0 localPref = %v, want 0", lp)
	}
	if d := cmp.Diff([]lbv1.CommunityRef{"no-export"}, r.Stack.Spec.BGPAdvertisements[1].Communities); d != "" {
		t.Errorf("web-bgp-0 communities (-want +got):\n%s", d)
	}
}

// TestRefusedPartsAreLeftOut: what lbstack's validation refuses is left
// out with a finding, and the stack stays valid.
func TestRefusedPartsAreLeftOut(t *testing.T) {
	r := convertYAML(t, `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: b}
spec: {addresses: [192.0.2.128/25]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: c}
spec: {addresses: [198.51.100.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: c-gold}
spec: {ipAddressPools: [c], localPref: 200, serviceSelectors: [{matchLabels: {tier: gold}}]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: c-silver}
spec: {ipAddressPools: [c], localPref: 100, serviceSelectors: [{matchLabels: {tier: silver}}]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: c-wide}
spec: {ipAddressPools: [c], aggregationLength: 16}
---
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata: {name: p}
spec: {myASN: 64500, peerASN: 64501, peerAddress: "::ffff:192.0.2.1"}
`)
	var pools []string
	for _, p := range r.Stack.Spec.Pools {
		pools = append(pools, p.Name)
	}
	if d := cmp.Diff([]string{"a", "c"}, pools); d != "" {
		t.Errorf("pools (-want +got):\n%s", d)
	}
	if n := len(r.Stack.Spec.BGPPeers); n != 0 {
		t.Errorf("%d peers, want the IPv4-mapped one left out", n)
	}
	advs := map[string]lbv1.BGPAdvertisementSpec{}
	for _, a := range r.Stack.Spec.BGPAdvertisements {
		advs[a.Name] = a.BGPAdvertisementSpec
	}
	// MetalLB allows differing localPref with service selectors; lbstack
	// does not, so one loses its localPref rather than the advertisement.
	if advs["c-gold"].LocalPref == nil || advs["c-silver"].LocalPref != nil {
		t.Errorf("localPref: gold %v, silver %v; want gold kept and silver dropped", advs["c-gold"].LocalPref, advs["c-silver"].LocalPref)
	}
	if advs["c-wide"].AggregationLength != nil {
		t.Errorf("c-wide keeps aggregationLength %d, shorter than the pool", *advs["c-wide"].AggregationLength)
	}
	checkFindings(t, r.Findings,
		want{"IPAddressPool b", "spec.addresses[0]", SeverityDropped},
		want{"BGPAdvertisement c-silver", "spec.localPref", SeverityDropped},
		want{"BGPAdvertisement c-wide", "spec.aggregationLength", SeverityDropped},
		want{"BGPPeer p", "spec.peerAddress", SeverityDropped},
	)
}

// TestOverflow: items beyond the stack's bounds become standalone
// objects, and everything together is valid.
func TestOverflow(t *testing.T) {
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: pool-%02d}\nspec: {addresses: [10.0.%d.0/24]}\n---\n", i, i)
	}
	b.WriteString("apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: all}\n")
	r := convertYAML(t, b.String())
	if n := len(r.Stack.Spec.Pools); n != maxInlinePools {
		t.Errorf("%d inline pools, want %d", n, maxInlinePools)
	}
	pools := extraOf[*lbv1.IPAddressPool](r)
	if len(pools) != 40-maxInlinePools || pools[0].Name != "pool-32" || pools[0].Kind != "IPAddressPool" {
		t.Fatalf("standalone pools: %d, first %+v", len(pools), pools[0].ObjectMeta)
	}
	checkFindings(t, r.Findings, want{"IPAddressPool pool-39", "", SeverityChanged})
	out, err := Marshal(r.Stack, r.Findings, r.Extra)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(splitDocuments(out)); n != 1+40-maxInlinePools {
		t.Errorf("%d documents, want the stack and %d pools", n, 40-maxInlinePools)
	}
}

// TestParseErrors: malformed input is an error naming the document.
func TestParseErrors(t *testing.T) {
	const pool = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: ok}\nspec: {addresses: [192.0.2.0/28]}\n"
	cases := map[string]struct {
		data string
		want []string
	}{
		"broken YAML": {
			data: pool + "---\napiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: p\n",
			want: []string{"document 2"},
		},
		"wrong type": {
			data: pool + "---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: p1, namespace: metallb-system}\nspec: {myASN: not-a-number}\n",
			want: []string{"document 2", "BGPPeer metallb-system/p1", "myASN"},
		},
		"no name": {
			data: "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nspec: {addresses: [192.0.2.0/28]}\n",
			want: []string{"document 1", "IPAddressPool (no name)", "metadata.name"},
		},
		"list item": {
			data: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: metallb.io/v1beta1, kind: IPAddressPool, metadata: {name: ok}, spec: {addresses: [192.0.2.0/28]}}\n" +
				"- {apiVersion: metallb.io/v1beta1, kind: BFDProfile, metadata: {name: b}, spec: {receiveInterval: slow}}\n",
			want: []string{"document 1, item 2", "BFDProfile b", "receiveInterval"},
		},
		"not an object": {
			data: pool + "---\n- just\n- a list\n",
			want: []string{"document 2", "not a YAML mapping"},
		},
		"neither object nor configuration": {
			data: "---\nfoo: bar\n",
			want: []string{"document 1", "no kind"},
		},
		"legacy ConfigMap with a bad value": {
			data: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: |\n    peers:\n    - {peer-address: 192.0.2.1, peer-asn: 1, my-asn: 2, hold-time: soon}\n",
			want: []string{"document 1", "ConfigMap metallb-system/config", "data.config", "soon"},
		},
		"bare configuration with a bad value": {
			data: pool + "---\naddress-pools: [{name: p, protocol: bgp, addresses: 192.0.2.0/24}]\n",
			want: []string{"document 2", "MetalLB configuration"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestUnrelatedInput(t *testing.T) {
	in, err := Parse([]byte("# nothing\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: default}\ndata: {config: \"a: b\"}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !in.Empty() {
		t.Error("unrelated objects were taken as MetalLB configuration")
	}
	if _, _, err := Convert(in, Options{}); !errors.Is(err, ErrNoConfiguration) {
		t.Errorf("Convert of nothing: %v, want ErrNoConfiguration", err)
	}
}

func TestOptions(t *testing.T) {
	in, err := Parse([]byte("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [192.0.2.0/28]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	stack, _, err := Convert(in, Options{Name: "main", LoadBalancerClass: "example.com/lb"})
	if err != nil {
		t.Fatal(err)
	}
	if stack.Name != "main" || stack.Spec.LoadBalancerClass != "example.com/lb" {
		t.Errorf("stack %s class %q", stack.Name, stack.Spec.LoadBalancerClass)
	}
	if _, _, err := Convert(in, Options{Name: "Not Valid"}); err == nil {
		t.Error("an invalid stack name is accepted")
	}
}

func TestAppend(t *testing.T) {
	a, err := Parse([]byte("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [192.0.2.0/28]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte("apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a.Append(b)
	r, err := ConvertAll(a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustBeValid(t, r)
	if len(r.Stack.Spec.Pools) != 1 || len(r.Stack.Spec.L2Advertisements) != 1 {
		t.Errorf("appended input lost objects: %+v", r.Stack.Spec)
	}
}
