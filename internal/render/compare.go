package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Normalize returns the form of obj that is applied and compared: its JSON
// with null values, empty maps, status and server-set metadata removed.
// Typed values go through their own JSON marshalling first, so quantities,
// durations and the like compare in their canonical form on both sides.
func Normalize(obj runtime.Object) (map[string]any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", obj, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding %T: %w", obj, err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		for _, k := range []string{"creationTimestamp", "resourceVersion", "uid", "generation", "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"} {
			delete(md, k)
		}
	}
	prune(m)
	return m, nil
}

// prune removes nulls and empty maps in place; it reports whether m is
// empty afterwards.
func prune(m map[string]any) bool {
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			if prune(v) {
				delete(m, k)
			}
		case []any:
			for _, e := range v {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
		}
	}
	return len(m) == 0
}

// Hash is a short digest of a normalized object; the operator stores it in
// AnnotationHash on the applied object.
func Hash(normalized map[string]any) string {
	b, _ := json.Marshal(normalized) // maps marshal with sorted keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Desired returns obj normalized, with AnnotationHash set to the hash of
// the rest, ready for server-side apply.
func Desired(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := Normalize(obj)
	if err != nil {
		return nil, err
	}
	h := Hash(m)
	u := &unstructured.Unstructured{Object: m}
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationHash] = h
	u.SetAnnotations(ann)
	return u, nil
}

// Contains reports whether every field set in want has the same value in
// live. Maps compare key by key (live may hold more: defaults, other
// managers' fields). Lists of objects that all carry a "name" compare by
// name; other lists must have the same length and compare element by
// element. Together with AnnotationHash (which changes whenever the desired
// object does) this tells whether applying want would change anything that
// the operator owns: a field edited or removed by hand fails the check, a
// field dropped from the desired state changes the hash.
func Contains(live, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			lv, ok := l[k]
			if !ok || !Contains(lv, wv) {
				return false
			}
		}
		return true
	case []any:
		l, ok := live.([]any)
		if !ok {
			return false
		}
		if byName, ok := names(w); ok {
			liveByName, ok := names(l)
			if !ok {
				return false
			}
			for n, wv := range byName {
				lv, ok := liveByName[n]
				if !ok || !Contains(lv, wv) {
					return false
				}
			}
			return true
		}
		if len(l) != len(w) {
			return false
		}
		for i := range w {
			if !Contains(l[i], w[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(live, want)
	}
}

// names indexes a list of objects by their "name" field; ok is false when
// an element is not an object with a string name.
func names(list []any) (map[string]any, bool) {
	if len(list) == 0 {
		return nil, false
	}
	out := make(map[string]any, len(list))
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, false
		}
		n, ok := m["name"].(string)
		if !ok {
			return nil, false
		}
		out[n] = m
	}
	return out, true
}
