package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// MetalLB's API group; FRR-K8s, which MetalLB can drive, uses a subgroup.
const metallbGroup = "metallb.io"

// legacyKeys are the top-level keys of MetalLB's legacy configuration.
var legacyKeys = []string{"peers", "address-pools", "bgp-communities", "bfd-profiles"}

// Parse reads a YAML stream — documents separated by "---", each a
// Kubernetes object, a List of objects, or the bare text of MetalLB's
// legacy `config` key — and keeps what MetalLB reads: metallb.io
// IPAddressPools, L2Advertisements, BGPAdvertisements, BGPPeers (v1beta1
// and v1beta2), BFDProfiles and Communities, and ConfigMaps whose `config`
// key holds a legacy configuration. Other objects are skipped; MetalLB
// kinds that are not converted, and fields the conversion does not know,
// become findings that Convert returns. An error names the document
// (counted from 1), and the object's kind and name when it has them.
func Parse(data []byte) (*Input, error) {
	in := &Input{}
	for i, doc := range splitDocuments(data) {
		label := fmt.Sprintf("document %d", i+1)
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		if isNull(j) {
			continue
		}
		var obj map[string]any
		if err := utiljson.Unmarshal(j, &obj); err != nil {
			return nil, fmt.Errorf("%s: not a YAML mapping (an object): %w", label, err)
		}
		if err := in.addDocument(label, obj); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// splitDocuments splits a YAML stream at its "---" lines. A stream that
// starts with "---" has no empty first document.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	started := false
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if t := bytes.TrimRight(line, "\r\n"); bytes.HasPrefix(t, []byte("---")) {
			rest := strings.TrimSpace(string(t[3:]))
			if rest == "" || strings.HasPrefix(rest, "#") {
				if started || cur.Len() > 0 {
					docs = append(docs, bytes.Clone(cur.Bytes()))
				}
				cur.Reset()
				started = true
				continue
			}
		}
		cur.Write(line)
	}
	if cur.Len() > 0 || started {
		docs = append(docs, cur.Bytes())
	}
	return docs
}

func isNull(j []byte) bool {
	t := bytes.TrimSpace(j)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// addDocument adds one decoded document (label names it in errors).
func (in *Input) addDocument(label string, obj map[string]any) error {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	if kind == "" && apiVersion == "" {
		if !hasAnyKey(obj, legacyKeys) {
			return fmt.Errorf("%s: neither a Kubernetes object (no kind) nor a MetalLB configuration (none of %s)", label, strings.Join(legacyKeys, ", "))
		}
		return in.addLegacy("config ("+label+")", label, obj)
	}
	if items, ok := obj["items"].([]any); ok && strings.HasSuffix(kind, "List") {
		for i, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				return fmt.Errorf("%s, item %d: not an object", label, i+1)
			}
			if err := in.addDocument(fmt.Sprintf("%s, item %d", label, i+1), m); err != nil {
				return err
			}
		}
		return nil
	}
	return in.addObject(label, obj)
}

// addObject adds one Kubernetes object; label names where it was read.
func (in *Input) addObject(label string, obj map[string]any) error {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	group, version, _ := strings.Cut(apiVersion, "/")
	if version == "" {
		group, version = "", group
	}
	where := describe(kind, obj)
	switch {
	case group == "" && kind == "ConfigMap":
		return in.addConfigMap(label, where, obj)
	case group == metallbGroup:
	case strings.HasSuffix(group, "."+metallbGroup):
		in.note(Finding{Object: where, Severity: SeverityDropped,
			Message: fmt.Sprintf("%s is not MetalLB's own configuration (%s) and has no lbstack equivalent; it is not converted: configure the routers or nodes it set up by other means", kind, apiVersion)})
		return nil
	default:
		return nil // not MetalLB's
	}
	if version != "v1beta1" && version != "v1beta2" {
		in.note(Finding{Object: where, Field: "apiVersion", Severity: SeverityNote,
			Message: fmt.Sprintf("MetalLB version %s is not known to the conversion; the object is read with the v1beta1/v1beta2 field names", version)})
	}
	errorf := func(err error) error { return fmt.Errorf("%s (%s): %w", label, where, err) }
	var err error
	switch kind {
	case "IPAddressPool":
		err = addCR(in, &in.pools, kind, apiVersion, where, obj)
	case "L2Advertisement":
		err = addCR(in, &in.l2s, kind, apiVersion, where, obj)
	case "BGPAdvertisement":
		err = addCR(in, &in.bgps, kind, apiVersion, where, obj)
	case "BGPPeer":
		err = addCR(in, &in.peers, kind, apiVersion, where, obj)
	case "BFDProfile":
		err = addCR(in, &in.bfds, kind, apiVersion, where, obj)
	case "Community":
		err = addCR(in, &in.communities, kind, apiVersion, where, obj)
	case "ServiceL2Status", "ServiceBGPStatus", "ConfigurationState":
		in.note(Finding{Object: where, Severity: SeverityNote,
			Message: "status written by MetalLB, not configuration; lbstack keeps its own (ServiceAnnouncements, BGPPeer and pool status)"})
	case "MetalLB":
		in.note(Finding{Object: where, Severity: SeverityDropped,
			Message: "the MetalLB operator's install settings are not converted: set their lbstack equivalents in the stack's spec.speaker and spec.controller (nodeSelector, tolerations, logLevel, resources), and its loadBalancerClass, if any, as spec.loadBalancerClass (before the stack is created: it cannot change)"})
	default:
		in.note(Finding{Object: where, Severity: SeverityDropped,
			Message: fmt.Sprintf("MetalLB kind %s is not known to the conversion; it is not converted", kind)})
	}
	if err != nil {
		return errorf(err)
	}
	return nil
}

// describe names an object as findings do: "BGPPeer metallb-system/peer1".
func describe(kind string, obj map[string]any) string {
	md, _ := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	ns, _ := md["namespace"].(string)
	if kind == "" {
		kind = "object"
	}
	switch {
	case name == "":
		return kind + " (no name)"
	case ns == "":
		return kind + " " + name
	}
	return kind + " " + ns + "/" + name
}

// addCR decodes a MetalLB custom resource into list.
func addCR[S any](in *Input, list *[]object[S], kind, apiVersion, where string, obj map[string]any) error {
	o := object[S]{Kind: kind, APIVersion: apiVersion, Where: where}
	if err := remarshal(obj["metadata"], &o.Meta); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if o.Meta.Name == "" {
		return fmt.Errorf("metadata.name is missing")
	}
	if err := remarshal(obj["spec"], &o.Spec); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	for _, k := range sortedKeys(obj) {
		switch k {
		case "apiVersion", "kind", "metadata", "spec", "status":
		default:
			in.note(Finding{Object: where, Field: k, Severity: SeverityDropped,
				Message: "not a field of a MetalLB " + kind + "; it is not converted"})
		}
	}
	for _, f := range unknownFields(obj["spec"], reflect.TypeFor[S](), "spec") {
		in.note(Finding{Object: where, Field: f, Severity: SeverityDropped,
			Message: "not a MetalLB " + kind + " field the conversion knows (from a newer MetalLB?); it is not converted: check whether lbstack needs an equivalent"})
	}
	*list = append(*list, o)
	return nil
}

// addConfigMap takes a ConfigMap whose `config` key holds MetalLB's legacy
// configuration; other ConfigMaps are skipped.
func (in *Input) addConfigMap(label, where string, obj map[string]any) error {
	data, _ := obj["data"].(map[string]any)
	text, ok := data["config"].(string)
	if !ok {
		return nil
	}
	j, err := yaml.YAMLToJSON([]byte(text))
	var cfg map[string]any
	if err == nil && !isNull(j) {
		err = utiljson.Unmarshal(j, &cfg)
	}
	if err != nil || !hasAnyKey(cfg, legacyKeys) {
		if strings.Contains(where, "metallb") {
			in.note(Finding{Object: where, Field: "data.config", Severity: SeverityNote,
				Message: fmt.Sprintf("holds no MetalLB configuration (none of %s); skipped", strings.Join(legacyKeys, ", "))})
		}
		return nil
	}
	return in.addLegacy(where, label, cfg)
}

// addLegacy decodes a legacy configuration. where names it in findings,
// label in errors.
func (in *Input) addLegacy(where, label string, cfg map[string]any) error {
	var lc legacyConfig
	if err := remarshal(cfg, &lc); err != nil {
		if strings.HasPrefix(where, "config (") {
			return fmt.Errorf("%s (MetalLB configuration): %w", label, err)
		}
		return fmt.Errorf("%s (%s): data.config: %w", label, where, err)
	}
	for _, f := range unknownFields(cfg, reflect.TypeFor[legacyConfig](), "") {
		obj, field := splitLegacyPath(where, f)
		in.note(Finding{Object: obj, Field: field, Severity: SeverityDropped,
			Message: "not a key of MetalLB's configuration that the conversion knows; it is not converted (MetalLB itself refuses unknown keys)"})
	}
	in.legacy = append(in.legacy, legacyInput{where: where, cfg: lc})
	return nil
}

// splitLegacyPath turns "address-pools[0].foo" into the finding object
// "<where> address-pools[0]" and field "foo".
func splitLegacyPath(where, path string) (string, string) {
	if i := strings.Index(path, "]."); i >= 0 {
		return where + " " + path[:i+1], path[i+2:]
	}
	return where, path
}

func hasAnyKey(m map[string]any, keys []string) bool {
	for _, k := range keys {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// remarshal decodes v (decoded JSON) into out, field names case-sensitive
// as the API server reads them.
func remarshal(v any, out any) error {
	if v == nil {
		return nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := utiljson.Unmarshal(j, out); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// unknownFields lists the paths in v (decoded JSON) that t, decoded with
// encoding/json's rules, has no field for.
func unknownFields(v any, t reflect.Type, path string) []string {
	var out []string
	walkUnknown(v, t, path, &out)
	return out
}

func walkUnknown(v any, t reflect.Type, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return // a scalar with its own syntax (durations)
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return // a type error is the decoder's to report
		}
		fields := map[string]reflect.Type{}
		jsonFields(t, fields)
		for _, k := range sortedKeys(m) {
			ft, ok := fields[k]
			if !ok {
				*out = append(*out, join(k))
				continue
			}
			walkUnknown(m[k], ft, join(k), out)
		}
	case reflect.Slice:
		l, _ := v.([]any)
		for i, e := range l {
			walkUnknown(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		m, _ := v.(map[string]any)
		for _, k := range sortedKeys(m) {
			walkUnknown(m[k], t.Elem(), fmt.Sprintf("%s[%s]", path, k), out)
		}
	}
}

// jsonFields collects t's JSON field names, following embedded structs.
func jsonFields(t reflect.Type, into map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				jsonFields(ft, into)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
}

// legacySelectors converts the legacy node selectors.
func legacySelectors(in []legacyNodeSelector) []metav1.LabelSelector {
	var out []metav1.LabelSelector
	for _, s := range in {
		sel := metav1.LabelSelector{MatchLabels: s.MatchLabels}
		for _, r := range s.MatchExpressions {
			sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
				Key: r.Key, Operator: metav1.LabelSelectorOperator(r.Operator), Values: r.Values})
		}
		out = append(out, sel)
	}
	return out
}
