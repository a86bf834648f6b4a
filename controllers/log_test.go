package controllers_test

// LBSTACK_TEST_LOG=1 sends the controllers' logs to stderr while debugging a test.

import (
	"os"

	"github.com/lbstack/lbstack/internal/cli"
	ctrl "sigs.k8s.io/controller-runtime"
)

func init() {
	if os.Getenv("LBSTACK_TEST_LOG") != "" {
		l, _ := cli.LogOptions{Level: "info", Format: "console"}.NewLogger()
		ctrl.SetLogger(l)
	}
}
