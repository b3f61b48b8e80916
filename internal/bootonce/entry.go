// Package bootonce is the direct restore's boot entry: the helper kernel
// started by the boot loader as a restore kernel, confined to the reserved
// region by its command line (see layout.DirectArgs), resuming from the
// target. 'resume boot-entry' prints it; on a GRUB machine set up by
// 'hibernate setup', 'hibernate now' arms it for the next boot only, so
// the power-on after hibernating restores without a normal boot first,
// and any other boot is a normal one.
package bootonce

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kjump/kjump/internal/launch"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/storage"
	"github.com/kjump/kjump/internal/sysinfo"
)

// ErrEncrypted is why encrypted images are never restored directly.
var ErrEncrypted = errors.New("images are encrypted: the key is on this system's disks, which the restore kernel cannot read, so they resume through a normal boot")

// Entry is a boot loader entry in Boot Loader Specification terms.
type Entry struct {
	Linux, Initrd string
	Options       []string
	Target        string // kjump.resume=
}

// NewEntry is the entry that restores an image on target on this machine
// (sys as read now) with the helper kernel k.
func NewEntry(sys *sysinfo.System, k launch.Kernel, target string) (Entry, error) {
	if err := CheckTarget(target); err != nil {
		return Entry{}, err
	}
	// The restore kernel's own plan proves the kernel and initramfs fit
	// the region, as for a kexec'd restore.
	plan, err := launch.Plan(sys, k, true)
	if err != nil {
		return Entry{}, err
	}
	confine, err := layout.DirectArgs(sys.Firmware, plan.Region())
	if err != nil {
		return Entry{}, err
	}
	options := strings.Fields(launch.Cmdline(sys.Cmdline) + " " + k.Args)
	options = append(options, confine...)
	// A panic (out of memory, a driver) reboots into the normal boot
	// rather than hanging: the one-shot entry is spent by then.
	options = append(options, "panic=-1", "kjump.resume="+target)
	return Entry{Linux: k.Path, Initrd: k.Initrd, Options: options, Target: target}, nil
}

// BLS is the entry as 'resume boot-entry' prints it.
func (e Entry) BLS() string {
	return fmt.Sprintf("linux %s\ninitrd %s\noptions %s\n", e.Linux, e.Initrd, strings.Join(e.Options, " "))
}

// CheckTarget refuses targets a restore kernel without the system's
// mounts and network cannot reach.
func CheckTarget(target string) error {
	ps, err := storage.ParseSpec(target)
	if err != nil {
		return err
	}
	if ps.Tag != "" || strings.HasPrefix(ps.Value, "/dev/") {
		return nil
	}
	return fmt.Errorf("target %s: a directly started restore kernel reads a raw partition (/dev/..., PARTUUID=, UUID=, LABEL=) or a file named as DEVICE:/path, not a path on a mounted filesystem or NFS; such images resume through a normal boot", target)
}
