package e2e

import (
	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
)

// The test's own clients log nothing; the components' logs are in their
// log files (printed when a test fails).
func init() { ctrl.SetLogger(logr.Discard()) }
