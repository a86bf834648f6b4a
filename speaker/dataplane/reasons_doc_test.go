package dataplane

import (
	"os"
	"regexp"
	"slices"
	"testing"
)

// TestMoveReasonsDocumented: the API documentation of lastMove.reason
// names exactly the reasons the speakers write.
func TestMoveReasonsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../api/v1alpha1/serviceannouncement_types.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := regexp.MustCompile(`(?s)// reason is a machine-readable word for the move:(.*?)\n\t// \+`).FindSubmatch(b)
	if doc == nil {
		t.Fatal("no lastMove.reason documentation found")
	}
	var named []string
	for _, m := range regexp.MustCompile(`"([A-Za-z]+)"`).FindAllSubmatch(doc[1], -1) {
		named = append(named, string(m[1]))
	}
	want := []string{MoveAssigned, MoveNodeFailed, MoveNodeLeft, MoveInterfaceDown, MoveNotEligible, MoveRebalanced, MoveAPIUnreachable}
	slices.Sort(named)
	slices.Sort(want)
	if !slices.Equal(named, want) {
		t.Errorf("the API documents reasons %v; the speakers write %v", named, want)
	}
}
