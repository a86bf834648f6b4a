package l2

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
)

// iffNoARP is IFF_NOARP from <linux/if.h>: the link does no neighbour
// resolution (dummy devices such as kube-ipvs0, some tunnels).
const iffNoARP = 0x80

// link is what the announcer needs to know about one network interface.
type link struct {
	name  string
	index int
	mtu   int
	mac   net.HardwareAddr
	flags net.Flags
	// noARP is IFF_NOARP.
	noARP bool
	// master is the device this link is enslaved to (bond, bridge, team,
	// Open vSwitch). Empty when there is none, or when the master is a VRF,
	// which leaves the link a layer-3 interface of its own.
	master string
}

func (l link) running() bool { return l.flags&net.FlagRunning != 0 }

// canARP reports whether ARP makes sense on the link.
func (l link) canARP() bool { return l.flags&net.FlagBroadcast != 0 }

// canNDP reports whether NDP makes sense on the link.
func (l link) canNDP() bool { return l.flags&net.FlagMulticast != 0 }

// sameDevice reports whether two observations of a link are the same device
// with the same MAC address; if not, its sockets are reopened and its
// addresses announced again.
func (l link) sameDevice(o link) bool {
	return l.name == o.name && l.index == o.index && bytes.Equal(l.mac, o.mac)
}

func (l link) netInterface() *net.Interface {
	return &net.Interface{
		Index:        l.index,
		MTU:          l.mtu,
		Name:         l.name,
		HardwareAddr: l.mac,
		Flags:        l.flags,
	}
}

// eligible reports whether addresses may be announced on the link, and if
// not, why. Administratively up links without carrier are eligible: they keep
// their sockets and are reported unhealthy (see Health).
func eligible(l link) (bool, string) {
	switch {
	case l.flags&net.FlagUp == 0:
		return false, "down"
	case l.flags&net.FlagLoopback != 0:
		return false, "loopback"
	case len(l.mac) != 6:
		return false, "no Ethernet MAC address"
	case l.master != "":
		return false, "enslaved to " + l.master
	case l.noARP:
		return false, "NOARP"
	case !l.canARP() && !l.canNDP():
		return false, "neither broadcast nor multicast"
	}
	return true, ""
}

// linkSource lists the network interfaces of the node.
type linkSource interface {
	links() ([]link, error)
}

// osLinks lists interfaces with net.Interfaces and completes them from sysfs
// (/sys/class/net), which tells whether a link is enslaved and whether it
// has IFF_NOARP.
type osLinks struct {
	sysfs fs.FS
}

func newOSLinks() osLinks { return osLinks{sysfs: os.DirFS("/sys/class/net")} }

func (o osLinks) links() ([]link, error) {
	ifis, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing network interfaces: %w", err)
	}
	return linksFrom(ifis, o.sysfs), nil
}

// linksFrom completes the interfaces with what sysfs says about them. A
// missing or unreadable sysfs entry leaves the default (not enslaved, ARP
// capable).
func linksFrom(ifis []net.Interface, sysfs fs.FS) []link {
	out := make([]link, 0, len(ifis))
	for _, ifi := range ifis {
		out = append(out, link{
			name:   ifi.Name,
			index:  ifi.Index,
			mtu:    ifi.MTU,
			mac:    ifi.HardwareAddr,
			flags:  ifi.Flags,
			noARP:  sysfsFlags(sysfs, ifi.Name)&iffNoARP != 0,
			master: enslavedTo(sysfs, ifi.Name),
		})
	}
	return out
}

// sysfsFlags reads /sys/class/net/<name>/flags ("0x1003").
func sysfsFlags(sysfs fs.FS, name string) uint64 {
	b, err := fs.ReadFile(sysfs, name+"/flags")
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 0, 64)
	if err != nil {
		return 0
	}
	return v
}

// enslavedTo returns the master of the link unless it is a VRF.
func enslavedTo(sysfs fs.FS, name string) string {
	target, err := fs.ReadLink(sysfs, name+"/master")
	if err != nil {
		return ""
	}
	master := path.Base(target)
	if master == "." || master == "/" || sysfsDevType(sysfs, master) == "vrf" {
		return ""
	}
	return master
}

// sysfsDevType reads DEVTYPE from /sys/class/net/<name>/uevent ("bond",
// "bridge", "vrf", ...).
func sysfsDevType(sysfs fs.FS, name string) string {
	b, err := fs.ReadFile(sysfs, name+"/uevent")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "DEVTYPE="); ok {
			return v
		}
	}
	return ""
}
