package render

import (
	"testing"

	"sigs.k8s.io/yaml"
)

func TestContains(t *testing.T) {
	cases := map[string]struct {
		live, want string
		ok         bool
	}{
		"equal":                        {`a: 1`, `a: 1`, true},
		"live has defaults":            {`{a: 1, b: 2}`, `a: 1`, true},
		"value edited":                 {`a: 2`, `a: 1`, false},
		"field removed by hand":        {`b: 2`, `a: 1`, false},
		"nested":                       {`a: {b: {c: x, d: y}}`, `a: {b: {c: x}}`, true},
		"nested edited":                {`a: {b: {c: z}}`, `a: {b: {c: x}}`, false},
		"scalar list equal":            {`args: [a, b]`, `args: [a, b]`, true},
		"scalar list reordered":        {`args: [b, a]`, `args: [a, b]`, false},
		"scalar list longer":           {`args: [a, b, c]`, `args: [a, b]`, false},
		"named list with defaults":     {`c: [{name: x, image: i, pull: IfNotPresent}]`, `c: [{name: x, image: i}]`, true},
		"named list other order":       {`c: [{name: b, image: j}, {name: x, image: i}]`, `c: [{name: x, image: i}, {name: b, image: j}]`, true},
		"named list extra from others": {`c: [{name: x, image: i}, {name: sidecar}]`, `c: [{name: x, image: i}]`, true},
		"named list element missing":   {`c: [{name: b}]`, `c: [{name: x}]`, false},
		"named list element edited":    {`c: [{name: x, image: other}]`, `c: [{name: x, image: i}]`, false},
		"unnamed list of maps":         {`t: [{key: a, op: Exists}]`, `t: [{key: a}]`, true},
		"unnamed list length differs":  {`t: [{key: a}, {key: b}]`, `t: [{key: a}]`, false},
		"type differs":                 {`a: [1]`, `a: {b: 1}`, false},
		"missing list":                 {`{}`, `a: [x]`, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var live, want map[string]any
			if err := yaml.Unmarshal([]byte(tc.live), &live); err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			if got := Contains(live, want); got != tc.ok {
				t.Errorf("Contains(%s, %s) = %v, want %v", tc.live, tc.want, got, tc.ok)
			}
		})
	}
}

// TestDesiredHashFollowsContent: the hash changes with any field of the
// desired object and not otherwise, and normalization drops status and
// server-set metadata.
func TestDesiredHashFollowsContent(t *testing.T) {
	s := fullStack()
	a, err := Desired(SpeakerDaemonSet(s, params()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Desired(SpeakerDaemonSet(s, params()))
	if a.GetAnnotations()[AnnotationHash] != b.GetAnnotations()[AnnotationHash] {
		t.Fatal("hash not deterministic")
	}
	if _, ok := a.Object["status"]; ok {
		t.Error("status kept")
	}
	if _, ok := a.Object["metadata"].(map[string]any)["creationTimestamp"]; ok {
		t.Error("creationTimestamp kept")
	}
	s.Spec.Speaker.NodeSelector = nil
	c, _ := Desired(SpeakerDaemonSet(s, params()))
	if a.GetAnnotations()[AnnotationHash] == c.GetAnnotations()[AnnotationHash] {
		t.Error("hash did not change when the node selector was dropped")
	}
}
