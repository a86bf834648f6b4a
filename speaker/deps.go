//go:build lbstackdeps

// This file pins the speaker's protocol dependencies in go.mod until the
// packages that use them exist; it is never built.
package speaker

import (
	_ "github.com/hashicorp/memberlist"
	_ "github.com/mdlayher/arp"
	_ "github.com/mdlayher/ndp"
	_ "github.com/mdlayher/packet"
	_ "github.com/osrg/gobgp/v3/pkg/server"
)
