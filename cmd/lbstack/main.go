// Command lbstack is the single binary of lbstack. Its subcommands are the
// three components: the operator (renders a LoadBalancerStack into running
// components and serves the admission webhooks), the controller (assigns
// Service IPs) and the speaker (announces them from each node). One binary
// means one image to build, sign, mirror and list in the OLM bundle, and
// components that can never run mismatched versions of the shared code.
package main

import (
	"os"

	"github.com/lbstack/lbstack/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr, []cli.Command{operatorCommand(), controllerCommand(), speakerCommand()}))
}
