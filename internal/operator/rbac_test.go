package operator_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/render"
	"github.com/lbstack/lbstack/internal/testenv"
)

// operatorUser is the operator's ServiceAccount as the API server names it.
const operatorUser = "system:serviceaccount:" + ns + ":lbstack-operator"

var (
	identityOnce sync.Once
	identityErr  error
)

// asOperator returns a configuration that impersonates the operator's
// ServiceAccount bound to exactly the roles config/rbac installs: the
// ClusterRole and the namespaced Role generated into role.yaml, and the
// leader election Role. Every test that runs the operator runs it so.
func asOperator(t testing.TB) *rest.Config {
	t.Helper()
	identityOnce.Do(func() { identityErr = bindOperator() })
	if identityErr != nil {
		t.Fatalf("binding the operator's roles: %v", identityErr)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorUser}
	return cfg
}

func bindOperator() error {
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	var cr rbacv1.ClusterRole
	var role, election rbacv1.Role
	if err := decodeRBAC("role.yaml", "ClusterRole", &cr); err != nil {
		return err
	}
	if err := decodeRBAC("role.yaml", "Role", &role); err != nil {
		return err
	}
	if err := decodeRBAC("leader_election_role.yaml", "Role", &election); err != nil {
		return err
	}
	subjects := []rbacv1.Subject{{Kind: "User", Name: operatorUser}}
	const name = "lbstack-operator-under-test"
	cr.Name = name
	objs := []client.Object{&cr, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects:   subjects,
	}}
	for i, r := range []*rbacv1.Role{&role, &election} {
		rname := fmt.Sprintf("%s-%d", name, i)
		r.Namespace, r.Name = ns, rname
		objs = append(objs, r, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rname},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: rname},
			Subjects:   subjects,
		})
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	// The RBAC authorizer reads its informers: wait until the operator
	// may do something only these bindings allow.
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorUser}
	as, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := as.List(ctx, &lbv1.LoadBalancerStackList{})
		if err == nil {
			err = as.List(ctx, &corev1.ServiceAccountList{}, client.InNamespace(ns))
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the operator's bindings never took effect: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// decodeRBAC decodes the object of kind from a file of config/rbac
// (controller-gen writes role.yaml's ClusterRole, then its Role).
func decodeRBAC(file, kind string, into client.Object) error {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", file))
	if err != nil {
		return err
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return err
		}
		if tm.Kind == kind {
			return yaml.UnmarshalStrict([]byte(doc), into)
		}
	}
	return fmt.Errorf("config/rbac/%s has no %s", file, kind)
}

// grant is one verb on one resource, cluster-wide (namespace "") or in the
// operator's namespace.
type grant struct {
	namespace, group, resource, verb string
}

func (g grant) String() string {
	where := "cluster-wide"
	if g.namespace != "" {
		where = "in " + g.namespace
	}
	group := g.group
	if group == "" {
		group = "core"
	}
	return fmt.Sprintf("%s %s/%s %s", g.verb, group, g.resource, where)
}

// grants maps each grant to the names it is limited to (nil: any name).
type grants map[grant][]string

func (gs grants) add(namespace string, rules ...rbacv1.PolicyRule) {
	for _, r := range rules {
		for _, group := range r.APIGroups {
			for _, res := range r.Resources {
				for _, verb := range r.Verbs {
					g := grant{namespace, group, res, verb}
					names, seen := gs[g]
					switch {
					case len(r.ResourceNames) == 0:
						gs[g] = nil
					case !seen || names != nil:
						names = append(names, r.ResourceNames...)
						sort.Strings(names)
						gs[g] = slices.Compact(names)
					}
				}
			}
		}
	}
}

// normalize drops from the operator's namespace what it holds cluster-wide.
func (gs grants) normalize() {
	for g, names := range gs {
		if g.namespace == "" {
			continue
		}
		cluster := g
		cluster.namespace = ""
		if cn, ok := gs[cluster]; ok && (cn == nil || slices.Equal(cn, names)) {
			delete(gs, g)
		}
	}
}

var allVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete"}

// ownNeed is a permission the operator uses itself, not only to grant.
type ownNeed struct {
	namespace string
	rule      rbacv1.PolicyRule
	why       string
}

// operatorOwnNeeds is everything the operator does with the API besides
// managing its children (render.Kinds) and granting the components' rules.
var operatorOwnNeeds = []ownNeed{
	{"", rbacv1.PolicyRule{APIGroups: []string{"lbstack.io"}, Resources: []string{"loadbalancerstacks"}, Verbs: []string{"get", "list", "watch"}}, "reconciles the stacks"},
	{"", rbacv1.PolicyRule{APIGroups: []string{"lbstack.io"}, Resources: []string{"loadbalancerstacks/status"}, Verbs: []string{"get", "update", "patch"}}, "writes the stack's conditions and counts"},
	{"", rbacv1.PolicyRule{APIGroups: []string{"lbstack.io"}, Resources: []string{"loadbalancerstacks/finalizers"}, Verbs: []string{"update"}}, "children's owner references block the stack's deletion"},
	{"", rbacv1.PolicyRule{APIGroups: []string{"lbstack.io"}, Resources: []string{"ipaddresspools", "l2advertisements", "bgpadvertisements", "bgppeers", "bfdprofiles", "communities"}, Verbs: []string{"get", "list", "watch"}}, "validates the whole configuration, standalone objects too"},
	{"", rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, Verbs: []string{"get", "list", "watch", "update", "patch"}}, "injects its webhook CA"},
	{"", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}, "its webhooks check the password and key Secrets a configuration names, in any namespace"},
	{"", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services", "namespaces"}, Verbs: []string{"get", "list", "watch"}}, "its Service webhook checks requested and shared addresses"},
	{"", rbacv1.PolicyRule{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}}, "records events on the stacks"},
	{"", rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}}, "authenticates callers of its metrics"},
	{"", rbacv1.PolicyRule{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}}, "authorizes callers of its metrics"},
	{ns, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}, "reads its own Pod's image and pull secrets"},
	{ns, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: allVerbs}, "keeps the webhook certificate Secret"},
	{ns, rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: allVerbs}, "leader election"},
}

// fullStack renders every kind of child: inline objects of every
// configuration kind, and password and key Secrets in its own namespace
// and in another.
func fullStack() (*lbv1.LoadBalancerStack, render.Params) {
	stack := testStack()
	stack.UID = "00000000-0000-0000-0000-00000000000b"
	stack.Spec.BGPAdvertisements = []lbv1.InlineBGPAdvertisement{{InlineMeta: lbv1.InlineMeta{Name: "all"}}}
	stack.Spec.BFDProfiles = []lbv1.InlineBFDProfile{{InlineMeta: lbv1.InlineMeta{Name: "fast"}}}
	stack.Spec.Communities = []lbv1.InlineCommunity{{InlineMeta: lbv1.InlineMeta{Name: "no-export"}, CommunitySpec: lbv1.CommunitySpec{Communities: []lbv1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}}}}}
	return stack, render.Params{Namespace: ns, Image: "x", MemberlistKey: make([]byte, 32),
		PasswordSecrets: []types.NamespacedName{{Namespace: "network", Name: "tor-md5"}, {Namespace: ns, Name: "local-md5"}}}
}

// neededByOperator is what the operator needs: every verb on every kind of
// child where the children live (any namespace for the Roles that let the
// speakers read Secrets where they are), with changes to RBAC objects
// limited to the children's names; every rule of every rendered role,
// where it applies (a Role in a namespace the configuration names counts
// cluster-wide, for any name: the namespaces and Secrets are the user's);
// and operatorOwnNeeds.
func neededByOperator(t *testing.T) grants {
	t.Helper()
	stack, p := fullStack()
	objs := render.All(stack, p)
	need := grants{}
	mapper := env.Client.RESTMapper()
	rbacNames := map[string][]string{}
	anywhere := map[string]bool{}
	for _, o := range objs {
		gvk := o.GetObjectKind().GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatal(err)
		}
		if gvk.Group == rbacv1.GroupName {
			rbacNames[m.Resource.Resource] = append(rbacNames[m.Resource.Resource], o.GetName())
		}
		if o.GetNamespace() != "" && o.GetNamespace() != ns {
			anywhere[m.Resource.Resource] = true
		}
		switch r := o.(type) {
		case *rbacv1.ClusterRole:
			need.add("", r.Rules...)
		case *rbacv1.Role:
			if r.Namespace == ns {
				need.add(ns, r.Rules...)
				continue
			}
			for _, rule := range r.Rules {
				rule.ResourceNames = nil
				need.add("", rule)
			}
		}
	}
	if _, ok := anywhere["roles"]; !ok {
		t.Fatal("the full stack renders no Role outside the operator's namespace: the test covers less than it should")
	}
	for _, gvk := range render.Kinds() {
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatal(err)
		}
		res := m.Resource.Resource
		where := ""
		if m.Scope.Name() == "namespace" && !anywhere[res] {
			where = ns
		}
		if names, ok := rbacNames[res]; ok {
			need.add(where, rbacv1.PolicyRule{APIGroups: []string{gvk.Group}, Resources: []string{res}, Verbs: []string{"get", "list", "watch", "create"}})
			need.add(where, rbacv1.PolicyRule{APIGroups: []string{gvk.Group}, Resources: []string{res}, Verbs: []string{"update", "patch", "delete"}, ResourceNames: names})
			continue
		}
		need.add(where, rbacv1.PolicyRule{APIGroups: []string{gvk.Group}, Resources: []string{res}, Verbs: allVerbs})
	}
	for _, o := range operatorOwnNeeds {
		need.add(o.namespace, o.rule)
	}
	need.normalize()
	return need
}

// heldByOperator is what config/rbac gives the operator.
func heldByOperator(t *testing.T) grants {
	t.Helper()
	var cr rbacv1.ClusterRole
	var role, election rbacv1.Role
	for file, o := range map[string]client.Object{"role.yaml/ClusterRole": &cr, "role.yaml/Role": &role, "leader_election_role.yaml/Role": &election} {
		f, kind, _ := strings.Cut(file, "/")
		if err := decodeRBAC(f, kind, o); err != nil {
			t.Fatal(err)
		}
	}
	held := grants{}
	held.add("", cr.Rules...)
	held.add(ns, role.Rules...)
	held.add(ns, election.Rules...)
	held.normalize()
	return held
}

// compareGrants lists every grant held but not needed, needed but not
// held, or limited to other names than needed.
func compareGrants(held, need grants) []string {
	var out []string
	for g, names := range held {
		want, ok := need[g]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("holds %s, which neither its children nor its own work need", g))
		case !slices.Equal(names, want):
			out = append(out, fmt.Sprintf("holds %s for names %s, needs it for %s", g, namesOf(names), namesOf(want)))
		}
	}
	for g := range need {
		if _, ok := held[g]; !ok {
			out = append(out, fmt.Sprintf("lacks %s", g))
		}
	}
	sort.Strings(out)
	return out
}

func namesOf(names []string) string {
	if names == nil {
		return "any name"
	}
	return strings.Join(names, ", ")
}

// TestOperatorRoleIsExactly: the operator's ClusterRole and Roles grant
// exactly what it needs — every child kind where the children live, every
// rule it grants onward, and operatorOwnNeeds — and nothing more.
func TestOperatorRoleIsExactly(t *testing.T) {
	held, need := heldByOperator(t), neededByOperator(t)
	for _, p := range compareGrants(held, need) {
		t.Errorf("the operator %s", p)
	}

	// The comparison catches an extra verb, resource or name.
	for name, extra := range map[string]rbacv1.PolicyRule{
		"verb":     {APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list"}},
		"resource": {APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		"name":     {APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"delete"}, ResourceNames: []string{"cluster-admin"}},
	} {
		widened := maps.Clone(held)
		widened.add("", extra)
		if len(compareGrants(widened, need)) == 0 {
			t.Errorf("an extra %s (%v) goes unnoticed", name, extra)
		}
	}
}

// TestOperatorIdentityLimits: as its own ServiceAccount with config/rbac's
// roles, the operator cannot read or write what it has no business with.
func TestOperatorIdentityLimits(t *testing.T) {
	ensureNamespace(t, "network")
	ensureNamespace(t, "tenant")
	as, err := client.New(asOperator(t), client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "db-password"}, StringData: map[string]string{"password": "hunter2"}}
	if err := env.Client.Create(tctx(t), secret); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	forbidden := map[string]func() error{
		"list Secrets in another namespace": func() error { return as.List(tctx(t), &corev1.SecretList{}, client.InNamespace("tenant")) },
		"list Secrets cluster-wide":         func() error { return as.List(tctx(t), &corev1.SecretList{}) },
		"update a Secret in another namespace": func() error {
			s := secret.DeepCopy()
			s.StringData = map[string]string{"password": "x"}
			return as.Update(tctx(t), s)
		},
		"create a ConfigMap": func() error {
			return as.Create(tctx(t), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "x"}})
		},
		"list Pods": func() error { return as.List(tctx(t), &corev1.PodList{}, client.InNamespace(ns)) },
		"create a Deployment in another namespace": func() error {
			_, p := fullStack()
			d := render.ControllerDeployment(testStack(), p)
			d.Namespace = "tenant"
			return as.Create(tctx(t), d)
		},
		"create a ServiceAccount in another namespace": func() error {
			return as.Create(tctx(t), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "x"}})
		},
		"delete a Service in another namespace": func() error {
			return as.Delete(tctx(t), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "web"}})
		},
		"delete a ClusterRole it did not render": func() error {
			return as.Delete(tctx(t), &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "cluster-admin"}})
		},
		"create a LoadBalancerStack": func() error {
			return as.Create(tctx(t), &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "rogue"}})
		},
		"grant itself Secrets cluster-wide": func() error {
			return as.Create(tctx(t), &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "rogue"},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list"}}}})
		},
	}
	for what, do := range forbidden {
		if err := do(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as the operator: %v, want Forbidden", what, err)
		}
	}
	// What it may: get a named Secret anywhere (a BGPPeer's password).
	var got corev1.Secret
	if err := as.Get(tctx(t), types.NamespacedName{Namespace: "tenant", Name: "db-password"}, &got); err != nil {
		t.Errorf("getting a named Secret as the operator: %v", err)
	}
}

// access is one request a component's ServiceAccount makes or must not.
type access struct {
	verb, group, resource, namespace, name string
}

func (a access) String() string {
	s := a.verb + " " + a.resource
	if a.group != "" {
		s += "." + a.group
	}
	if a.name != "" {
		s += " " + a.name
	}
	if a.namespace != "" {
		s += " in " + a.namespace
	}
	return s
}

// allowed asks the API server's authorizer, as `kubectl auth can-i --as`.
func allowed(t *testing.T, user string, a access) bool {
	t.Helper()
	resource, sub, _ := strings.Cut(a.resource, "/")
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: a.verb, Group: a.group, Resource: resource, Subresource: sub, Namespace: a.namespace, Name: a.name,
		},
	}}
	if err := env.Client.Create(tctx(t), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

// TestComponentIdentityLimits: with the RBAC the operator renders, the
// speakers read their configuration and the password Secrets their
// BGPPeers name, never a Service write or another Secret; the controller
// writes Services and pool counters, never a workload, RBAC or a Secret.
func TestComponentIdentityLimits(t *testing.T) {
	ensureNamespace(t, "network")
	stack, p := fullStack()
	for _, o := range render.RBAC(stack, p) {
		// Other tests' stacks may own the same objects already.
		o.SetOwnerReferences(nil)
		u, err := render.Desired(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Apply(tctx(t), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("rbac-test"), client.ForceOwnership); err != nil {
			t.Fatal(err)
		}
	}
	speaker := "system:serviceaccount:" + ns + ":" + render.SpeakerName
	controller := "system:serviceaccount:" + ns + ":" + render.ControllerName
	eventually(t, "the rendered bindings take effect", func() error {
		if !allowed(t, speaker, access{"get", "", "secrets", "network", "tor-md5"}) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	for _, tc := range []struct {
		user    string
		may     []access
		mayNot  []access
		subject string
	}{{
		user:    speaker,
		subject: "speaker",
		may: []access{
			{"get", "", "secrets", "network", "tor-md5"},
			{"get", "", "secrets", ns, "local-md5"},
			{"watch", "", "services", "", ""},
			{"list", "discovery.k8s.io", "endpointslices", "", ""},
			{"list", "", "nodes", "", ""},
			{"create", "lbstack.io", "serviceannouncements", "", ""},
			{"patch", "lbstack.io", "bgppeers/status", "", ""},
			{"patch", "lbstack.io", "loadbalancerstacks/status", "", ""},
		},
		mayNot: []access{
			{"update", "", "services", "tenant", "web"},
			{"patch", "", "services/status", "tenant", "web"},
			{"create", "", "services", "tenant", ""},
			{"get", "", "secrets", "network", "other"},
			{"list", "", "secrets", "network", ""},
			{"get", "", "secrets", ns, render.MemberlistSecretName},
			{"get", "", "secrets", ns, "lbstack-webhook-server-cert"},
			{"list", "", "secrets", "", ""},
			{"get", "", "configmaps", ns, ""},
			{"list", "", "pods", "", ""},
			{"create", "", "pods", ns, ""},
			{"patch", "", "nodes", "", "node-a"},
			{"update", "lbstack.io", "ipaddresspools", "", "front"},
			{"update", "lbstack.io", "loadbalancerstacks", "", "lbstack"},
			{"patch", "lbstack.io", "ipaddresspools/status", "", "front"},
			{"create", "rbac.authorization.k8s.io", "rolebindings", ns, ""},
			{"update", "apps", "daemonsets", ns, render.SpeakerName},
			{"update", "coordination.k8s.io", "leases", ns, "lbstack-controller.lbstack.io"},
		},
	}, {
		user:    controller,
		subject: "controller",
		may: []access{
			{"update", "", "services", "tenant", "web"},
			{"patch", "", "services/status", "tenant", "web"},
			{"list", "lbstack.io", "ipaddresspools", "", ""},
			{"patch", "lbstack.io", "ipaddresspools/status", "", "front"},
			{"update", "coordination.k8s.io", "leases", ns, "lbstack-controller.lbstack.io"},
			{"create", "events.k8s.io", "events", "tenant", ""},
		},
		mayNot: []access{
			{"get", "", "secrets", "network", "tor-md5"},
			{"get", "", "secrets", ns, render.MemberlistSecretName},
			{"list", "", "secrets", "", ""},
			{"create", "", "services", "tenant", ""},
			{"delete", "", "services", "tenant", "web"},
			{"list", "", "pods", "", ""},
			{"list", "", "nodes", "", ""},
			{"create", "apps", "deployments", ns, ""},
			{"update", "apps", "deployments", ns, render.ControllerName},
			{"update", "apps", "daemonsets", ns, render.SpeakerName},
			{"create", "rbac.authorization.k8s.io", "clusterroles", "", ""},
			{"create", "rbac.authorization.k8s.io", "rolebindings", ns, ""},
			{"update", "lbstack.io", "ipaddresspools", "", "front"},
			{"create", "lbstack.io", "serviceannouncements", "", ""},
			{"update", "lbstack.io", "loadbalancerstacks/status", "", "lbstack"},
			{"update", "coordination.k8s.io", "leases", "tenant", "x"},
			{"update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", ""},
		},
	}} {
		for _, a := range tc.may {
			if !allowed(t, tc.user, a) {
				t.Errorf("the %s may not %s; it needs to", tc.subject, a)
			}
		}
		for _, a := range tc.mayNot {
			if allowed(t, tc.user, a) {
				t.Errorf("the %s may %s; it must not", tc.subject, a)
			}
		}
	}
}
