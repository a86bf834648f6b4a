package operator_test

// LBSTACK_TEST_LOG=1 sends the operator's logs to stderr while debugging a
// test; otherwise they are discarded.

import (
	"os"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/lbstack/lbstack/internal/cli"
)

func init() {
	if os.Getenv("LBSTACK_TEST_LOG") == "" {
		ctrl.SetLogger(logr.Discard())
		return
	}
	l, _ := cli.LogOptions{Level: "info", Format: "console"}.NewLogger()
	ctrl.SetLogger(l)
}
