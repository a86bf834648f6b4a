//go:build !linux

package dataplane

import (
	"errors"
	"net"
)

// linkLocalNeighbors needs the kernel's neighbor table: unnumbered BGP
// sessions run on Linux only (the speaker does; this keeps the package
// building elsewhere, for `kubectl lbstack`).
func linkLocalNeighbors(*net.Interface) ([]neighbor, error) {
	return nil, errors.New("unnumbered BGP sessions need Linux")
}
