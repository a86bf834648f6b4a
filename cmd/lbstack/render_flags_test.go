package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/cli"
	"github.com/lbstack/lbstack/internal/render"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRenderedArgsParse: the arguments the operator renders into the
// controller Deployment and the speaker DaemonSet are flags the binary
// accepts — the operator and the binary cannot drift apart unnoticed.
func TestRenderedArgsParse(t *testing.T) {
	stack := &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "s"}}
	p := render.Params{Namespace: "lbstack-system", Image: "x", MemberlistKey: make([]byte, 32)}
	commands := map[string]cli.Command{"controller": controllerCommand(), "speaker": speakerCommand(), "operator": operatorCommand()}
	for _, args := range [][]string{
		render.ControllerDeployment(stack, p).Spec.Template.Spec.Containers[0].Args,
		render.SpeakerDaemonSet(stack, p).Spec.Template.Spec.Containers[0].Args,
	} {
		cmd, ok := commands[args[0]]
		if !ok {
			t.Fatalf("rendered command %q does not exist", args[0])
		}
		fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var logs cli.LogOptions
		logs.AddFlags(fs)
		cmd.Flags(fs)
		// Kubernetes expands $(VAR) from the container's environment.
		expanded := make([]string, 0, len(args)-1)
		for _, a := range args[1:] {
			expanded = append(expanded, strings.NewReplacer("$(NODE_NAME)", "node-a", "$(POD_NAMESPACE)", "lbstack-system", "$(HOST_IP)", "192.0.2.11").Replace(a))
		}
		if err := fs.Parse(expanded); err != nil {
			t.Errorf("%s %v: %v", args[0], expanded, err)
		}
		if fs.NArg() != 0 {
			t.Errorf("%s: unexpected arguments %v", args[0], fs.Args())
		}
		if f := fs.Lookup("metrics-secure"); f == nil || f.Value.String() != "true" {
			t.Errorf("%s does not serve its metrics securely", args[0])
		}
	}
}
