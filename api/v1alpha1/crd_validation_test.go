package v1alpha1_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/lbstack/lbstack/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{}, func(e *testenv.Env) { env = e })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func decode(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("decoding test object: %v\n%s", err, doc)
	}
	return u
}

// TestSamplesAccepted creates every sample in config/samples (server-side
// dry run, so all validation runs and nothing is stored).
func TestSamplesAccepted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "lbstack_*.yaml"))
	if err != nil || len(files) < 8 {
		t.Fatalf("expected the samples in config/samples, found %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			obj := decode(t, string(data))
			if err := env.Client.Create(ctx(t), obj, client.DryRunAll); err != nil {
				t.Fatalf("sample rejected: %v", err)
			}
		})
	}
}

type celCase struct {
	obj string
	// field is the path the API server must name, message what it must say.
	field, message string
}

const (
	poolHead = "apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: p}\nspec:\n"
	peerHead = "apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: p}\nspec:\n  myASN: 64500\n  peerASN: 64501\n  peerAddress: 192.0.2.1\n"
	bfdHead  = "apiVersion: lbstack.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: b}\nspec:\n"
	commHead = "apiVersion: lbstack.io/v1alpha1\nkind: Community\nmetadata: {name: c}\nspec:\n  communities:\n"
	advHead  = "apiVersion: lbstack.io/v1alpha1\nkind: BGPAdvertisement\nmetadata: {name: a}\nspec:\n"
	l2Head   = "apiVersion: lbstack.io/v1alpha1\nkind: L2Advertisement\nmetadata: {name: a}\nspec:\n"
	stkHead  = "apiVersion: lbstack.io/v1alpha1\nkind: LoadBalancerStack\nmetadata: {name: s}\nspec:\n"
)

// celCases holds one rejected object for every validation rule of the CRDs
// (CEL rules and OpenAPI bounds). TestEveryCELRuleHasACase checks that no
// CEL rule is left without one.
var celCases = map[string]celCase{
	"pool: not a CIDR or range": {poolHead + "  addresses: [not-an-ip]",
		"spec.addresses[0]", "must be a CIDR such as 192.0.2.0/24 or a range such as 192.0.2.10-192.0.2.20"},
	"pool: range with a bad end": {poolHead + "  addresses: [192.0.2.1-192.0.2.300]",
		"spec.addresses[0]", "must be a CIDR such as 192.0.2.0/24"},
	"pool: CIDR with host bits": {poolHead + "  addresses: [192.0.2.1/24]",
		"spec.addresses[0]", "a CIDR must have no bits set after its prefix length"},
	"pool: IPv6 CIDR with host bits": {poolHead + "  addresses: ['2001:db8::1/64']",
		"spec.addresses[0]", "a CIDR must have no bits set after its prefix length"},
	"pool: mixed-family range": {poolHead + "  addresses: ['192.0.2.1-2001:db8::1']",
		"spec.addresses[0]", "a range must not mix IPv4 and IPv6"},
	"pool: range start after end": {poolHead + "  addresses: [192.0.2.20-192.0.2.10]",
		"spec.addresses[0]", "a range must not start after it ends"},
	"pool: range start after end in the first octet": {poolHead + "  addresses: [198.51.100.1-192.0.2.255]",
		"spec.addresses[0]", "a range must not start after it ends"},
	"pool: no addresses": {poolHead + "  addresses: []",
		"spec.addresses", "should have at least 1 items"},
	"pool: negative priority": {poolHead + "  addresses: [192.0.2.0/24]\n  allocation: {priority: -1}",
		"spec.allocation.priority", "should be greater than or equal to 0"},

	"peer: ASN 0": {"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 0, peerASN: 64500, peerAddress: 192.0.2.1}",
		"spec.myASN", "should be greater than or equal to 1"},
	"peer: ASN above 32 bits": {"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 64500, peerASN: 4294967296, peerAddress: 192.0.2.1}",
		"spec.peerASN", "should be less than or equal to 4294967295"},
	"peer: peerASN and dynamicASN": {peerHead + "  dynamicASN: external",
		"spec", "set exactly one of peerASN and dynamicASN"},
	"peer: peerAddress and interface": {peerHead + "  interface: eth1",
		"spec", "set exactly one of peerAddress and interface"},
	"peer: neither peerAddress nor interface": {"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 64500, peerASN: 64501}",
		"spec", "set exactly one of peerAddress and interface"},
	"peer: interface with a password": {"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 64500, peerASN: 64501, interface: eth1, passwordSecret: {name: pw}}",
		"spec.interface", "an unnumbered session (interface) takes no passwordSecret, bfdProfile, sourceAddress or ebgpMultiHop"},
	"peer: neither peerASN nor dynamicASN": {"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 64500, peerAddress: 192.0.2.1}",
		"spec", "set exactly one of peerASN and dynamicASN"},
	"peer: dynamicASN unknown": {"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 64500, dynamicASN: sometimes, peerAddress: 192.0.2.1}",
		"spec.dynamicASN", "Unsupported value"},
	"peer: dynamicASN internal with ebgpMultiHop": {"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 64500, dynamicASN: internal, ebgpMultiHop: true, peerAddress: 192.0.2.1}",
		"spec.ebgpMultiHop", "ebgpMultiHop applies only to eBGP sessions"},
	"peer: address not an IP": {"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 64500, peerASN: 64500, peerAddress: router.example}",
		"spec.peerAddress", "must be an IPv4 or IPv6 address"},
	"peer: source address not an IP": {peerHead + "  sourceAddress: eth0",
		"spec.sourceAddress", "must be an IPv4 or IPv6 address"},
	"peer: router ID IPv6": {peerHead + "  routerID: '2001:db8::1'",
		"spec.routerID", "must be an IPv4 address"},
	"peer: port 0": {peerHead + "  peerPort: 0",
		"spec.peerPort", "should be greater than or equal to 1"},
	"peer: hold time 2s": {peerHead + "  holdTime: 2s",
		"spec.holdTime", "must be 0s or between 3s and 65535s"},
	"peer: hold time not a duration": {peerHead + "  holdTime: ninety",
		"spec.holdTime", "should match"},
	"peer: keepalive out of range": {peerHead + "  keepaliveTime: 30000s",
		"spec.keepaliveTime", "must be between 0s and 21845s"},
	"peer: keepalive not below hold": {peerHead + "  holdTime: 9s\n  keepaliveTime: 9s",
		"spec.keepaliveTime", "keepaliveTime must be shorter than holdTime"},
	"peer: keepalive with hold 0": {peerHead + "  holdTime: 0s\n  keepaliveTime: 3s",
		"spec.keepaliveTime", "keepaliveTime must be shorter than holdTime"},
	"peer: connect time 0": {peerHead + "  connectTime: 0s",
		"spec.connectTime", "must be between 1s and 65535s"},
	"peer: ebgpMultiHop on iBGP": {"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 64500, peerASN: 64500, peerAddress: 192.0.2.1, ebgpMultiHop: true}",
		"spec.ebgpMultiHop", "ebgpMultiHop applies only to eBGP sessions"},

	"bfd: receive interval below 10ms": {bfdHead + "  receiveInterval: 9",
		"spec.receiveInterval", "should be greater than or equal to 10"},
	"bfd: transmit interval above 60000ms": {bfdHead + "  transmitInterval: 60001",
		"spec.transmitInterval", "should be less than or equal to 60000"},
	"bfd: multiplier 1": {bfdHead + "  detectMultiplier: 1",
		"spec.detectMultiplier", "should be greater than or equal to 2"},
	"bfd: multiplier 256": {bfdHead + "  detectMultiplier: 256",
		"spec.detectMultiplier", "should be less than or equal to 255"},
	"bfd: echo interval": {bfdHead + "  echoInterval: 50",
		"spec.echoInterval", "echoInterval needs echoMode, which is not supported"},
	"bfd: echo mode": {bfdHead + "  echoMode: true",
		"spec.echoMode", "BFD echo is not supported"},
	"bfd: minimum TTL 0": {bfdHead + "  minimumTtl: 0",
		"spec.minimumTtl", "should be greater than or equal to 1"},

	"community: standard above 16 bits": {commHead + "    - {name: x, value: '65536:1'}",
		"spec.communities[0].value", "must be a standard community a:b (numbers 0-65535) or a large community"},
	"community: large above 32 bits": {commHead + "    - {name: x, value: 'large:1:4294967296:1'}",
		"spec.communities[0].value", "must be a standard community a:b (numbers 0-65535) or a large community"},
	"community: three-part standard": {commHead + "    - {name: x, value: '1:2:3'}",
		"spec.communities[0].value", "must be a standard community a:b (numbers 0-65535) or a large community"},
	"community: alias name with a colon": {commHead + "    - {name: 'a:b', value: '1:2'}",
		"spec.communities[0].name", "should match"},
	"community: duplicate alias": {commHead + "    - {name: x, value: '1:2'}\n    - {name: x, value: '1:3'}",
		"spec.communities[1]", "Duplicate value"},

	"advertisement: malformed community": {advHead + "  communities: ['1:70000']",
		"spec.communities[0]", "or the name of a Community alias (no ':')"},
	"advertisement: aggregation length 33": {advHead + "  aggregationLength: 33",
		"spec.aggregationLength", "should be less than or equal to 32"},
	"advertisement: aggregation length v6 129": {advHead + "  aggregationLengthV6: 129",
		"spec.aggregationLengthV6", "should be less than or equal to 128"},
	"advertisement: negative localPref": {advHead + "  localPref: -1",
		"spec.localPref", "should be greater than or equal to 0"},
	"l2: interface with a slash": {l2Head + "  interfaces: [eth0/1]",
		"spec.interfaces[0]", "should match"},

	"stack: inline pool with host bits": {stkHead + "  pools:\n    - {name: a, addresses: [192.0.2.1/24]}",
		"spec.pools[0].addresses[0]", "a CIDR must have no bits set after its prefix length"},
	"stack: inline peer keepalive": {stkHead + "  bgpPeers:\n    - {name: r, myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, holdTime: 3s, keepaliveTime: 4s}",
		"spec.bgpPeers[0].keepaliveTime", "keepaliveTime must be shorter than holdTime"},
	"stack: inline BFD echo": {stkHead + "  bfdProfiles:\n    - {name: f, echoMode: true}",
		"spec.bfdProfiles[0].echoMode", "BFD echo is not supported"},
	"stack: duplicate inline pool names": {stkHead + "  pools:\n    - {name: a, addresses: [192.0.2.0/28]}\n    - {name: a, addresses: [192.0.2.16/28]}",
		"spec.pools[1]", "Duplicate value"},
	"stack: inline name not a DNS name": {stkHead + "  pools:\n    - {name: Pool_A, addresses: [192.0.2.0/28]}",
		"spec.pools[0].name", "should match"},
	"stack: heartbeat too fast": {stkHead + "  speaker: {failureDetection: {heartbeatInterval: 5ms}}",
		"spec.speaker.failureDetection.heartbeatInterval", "must be between 20ms and 10s"},
	"stack: probe interval too fast": {stkHead + "  speaker: {failureDetection: {probeInterval: 10ms, probeTimeout: 5ms}}",
		"spec.speaker.failureDetection.probeInterval", "must be between 50ms and 60s"},
	"stack: probe timeout too short": {stkHead + "  speaker: {failureDetection: {probeTimeout: 1ms}}",
		"spec.speaker.failureDetection.probeTimeout", "must be between 10ms and 60s"},
	"stack: probe timeout not below interval": {stkHead + "  speaker: {failureDetection: {probeInterval: 1s, probeTimeout: 2s}}",
		"spec.speaker.failureDetection.probeTimeout", "probeTimeout must be shorter than probeInterval"},
	"stack: missed heartbeats 1": {stkHead + "  speaker: {failureDetection: {missedHeartbeats: 1}}",
		"spec.speaker.failureDetection.missedHeartbeats", "should be greater than or equal to 2"},
	"stack: 6 controller replicas": {stkHead + "  controller: {replicas: 6}",
		"spec.controller.replicas", "should be less than or equal to 5"},
	"stack: unknown log level": {stkHead + "  speaker: {logLevel: verbose}",
		"spec.speaker.logLevel", "Unsupported value"},
	"stack: image pull secret without a name": {stkHead + "  speaker: {imagePullSecrets: [{name: regcred}, {}]}",
		"spec.speaker.imagePullSecrets", "every image pull secret needs a name"},
	"stack: duplicate image pull secrets": {stkHead + "  controller: {imagePullSecrets: [{name: regcred}, {name: regcred}]}",
		"spec.controller.imagePullSecrets[1]", "Duplicate value"},
}

func TestCRDValidationRejects(t *testing.T) {
	for name, tc := range celCases {
		t.Run(name, func(t *testing.T) {
			obj := decode(t, tc.obj)
			err := env.Client.Create(ctx(t), obj, client.DryRunAll)
			if err == nil {
				t.Fatalf("accepted, want rejection naming %s", tc.field)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.field) || !strings.Contains(msg, tc.message) {
				t.Fatalf("rejection does not name field %q with %q:\n%s", tc.field, tc.message, msg)
			}
		})
	}
}

// TestLoadBalancerClassImmutable checks the transition rule, which only an
// update can exercise.
func TestLoadBalancerClassImmutable(t *testing.T) {
	obj := decode(t, stkHead+"  loadBalancerClass: lbstack.io/a")
	obj.SetName("immutable-class")
	if err := env.Client.Create(ctx(t), obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
	if err := unstructured.SetNestedField(obj.Object, "lbstack.io/b", "spec", "loadBalancerClass"); err != nil {
		t.Fatal(err)
	}
	err := env.Client.Update(ctx(t), obj)
	if err == nil || !strings.Contains(err.Error(), "spec.loadBalancerClass") || !strings.Contains(err.Error(), "loadBalancerClass cannot be changed") {
		t.Fatalf("class change: got %v, want rejection of spec.loadBalancerClass", err)
	}
}

// TestEveryCELRuleHasACase fails when a CEL rule in config/crd/bases has no
// rejection case above (or in TestLoadBalancerClassImmutable).
func TestEveryCELRuleHasACase(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs found: %v", err)
	}
	covered := map[string]bool{"loadBalancerClass cannot be changed; Services would lose their IPs": true}
	for _, tc := range celCases {
		covered[tc.message] = true
	}
	rules := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, v := range crd.Spec.Versions {
			walk(v.Schema.OpenAPIV3Schema, "", func(path string, rule apiextensionsv1.ValidationRule) {
				rules++
				for m := range covered {
					if strings.Contains(rule.Message, m) {
						return
					}
				}
				t.Errorf("%s %s: CEL rule %q (message %q) has no rejection test case", crd.Name, path, rule.Rule, rule.Message)
			})
		}
	}
	if rules < 15 {
		t.Fatalf("found only %d CEL rules; the walk is broken", rules)
	}
}

func walk(s *apiextensionsv1.JSONSchemaProps, path string, visit func(string, apiextensionsv1.ValidationRule)) {
	if s == nil {
		return
	}
	for _, r := range s.XValidations {
		visit(path, r)
	}
	for name, p := range s.Properties {
		walk(&p, path+"."+name, visit)
	}
	if s.Items != nil {
		walk(s.Items.Schema, path+"[]", visit)
	}
	if s.AdditionalProperties != nil {
		walk(s.AdditionalProperties.Schema, path+"{}", visit)
	}
}
