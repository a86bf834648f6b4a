// Command kubectl-lbstack is the kubectl plugin of lbstack: installed on
// the PATH, it runs as `kubectl lbstack`. It reads what lbstack records in
// the API and answers which node announces an IP and why, how full the
// pools are, how the BGP sessions are and whether the components are
// healthy; `kubectl lbstack migrate` turns a MetalLB configuration into a
// LoadBalancerStack. See docs/kubectl-plugin.md.
package main

import (
	"os"

	"github.com/lbstack/lbstack/internal/kubectlplugin"
)

func main() {
	os.Exit(kubectlplugin.Run())
}
