package helper

import (
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/handoff"
)

// bringUpNet configures the interface with c's MAC address: the helper has
// no DHCP client and no ip tool, and needs only one address on the
// server's subnet.
func bringUpNet(c *handoff.NetConfig) error {
	ip, ipn, err := net.ParseCIDR(c.Address)
	if err != nil || ip.To4() == nil {
		return fmt.Errorf("helper network: bad address %q", c.Address)
	}
	name, err := interfaceByMAC(c.MAC, 10*time.Second)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, set := range []struct {
		req  uint
		addr net.IP
	}{{unix.SIOCSIFADDR, ip.To4()}, {unix.SIOCSIFNETMASK, net.IP(ipn.Mask).To4()}} {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(set.addr); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, set.req, ifr); err != nil {
			return fmt.Errorf("helper network: configuring %s on %s: %w", c.Address, name, err)
		}
	}
	ifr, _ := unix.NewIfreq(name)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("helper network: bringing %s up: %w", name, err)
	}
	logf("network: %s (%s) up with %s", name, c.MAC, c.Address)
	return nil
}

func interfaceByMAC(mac string, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for {
		ifs, _ := net.Interfaces()
		for _, i := range ifs {
			if strings.EqualFold(i.HardwareAddr.String(), mac) {
				return i.Name, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("helper network: no interface with MAC %s appeared within %s: is its driver built into the helper kernel?", mac, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
