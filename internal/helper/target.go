package helper

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/cmdline"
	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/storage"
)

const mountPoint = "/mnt/kjump-target"

// openTarget brings up the storage the original resolved for us: a raw
// device (found again, see rawDevice; ts.Device becomes this kernel's
// name of it), a filesystem mounted at mountPoint. The returned cleanup
// unmounts it.
func openTarget(ts *handoff.TargetSpec) (storage.Target, func(), error) {
	nop := func() {}
	if ts.File != nil {
		if err := waitForDevice(ts.File.Device, 10*time.Second); err != nil && ts.File.FSUUID == "" {
			return nil, nop, err
		}
		t, err := storage.OpenMapped(*ts.File)
		return t, nop, err
	}
	if ts.FSType == "" {
		dev, err := rawDevice(*ts, 10*time.Second, storage.Carries, storage.Resolve)
		if err != nil {
			return nil, nop, err
		}
		var t storage.Target
		if ps, _ := storage.ParseSpec(ts.Spec); ps.Tag == "" || ps.Path != "" {
			t, err = storage.Open(dev)
		} else {
			t, err = storage.OpenDevice(dev, ts.Spec) // "dev (spec)", as the original names it
		}
		if err == nil && dev != ts.Device {
			// Reports go back to the original: name the disk as it
			// knows it, not by a name another of its disks has there.
			logf("target %s is %s in this kernel (%s in the original's)", ts.Spec, dev, ts.Device)
			name := ts.Device
			if ts.Spec != ts.Device {
				name += " (" + ts.Spec + ")"
			}
			t = storage.Named(t, name)
		}
		ts.Device = dev
		return t, nop, err
	}
	src := ts.Source
	if ts.Net != nil {
		if err := bringUpNet(ts.Net); err != nil {
			return nil, nop, err
		}
	}
	if src == "" {
		src = ts.Device
		if err := waitForDevice(src, 10*time.Second); err != nil {
			return nil, nop, err
		}
	}
	if err := os.MkdirAll(mountPoint, 0o700); err != nil {
		return nil, nop, err
	}
	if err := mountTarget(src, *ts); err != nil {
		return nil, nop, fmt.Errorf("mounting %s (%s) for target %s: %w", src, ts.FSType, ts.Spec, err)
	}
	cleanup := func() { unix.Sync(); unix.Unmount(mountPoint, 0) }
	path := filepath.Join(mountPoint, ts.Path)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		cleanup()
		return nil, nop, err
	}
	t, err := storage.Open(path)
	if err != nil {
		cleanup()
		return nil, nop, err
	}
	if ts.Source != "" {
		// Reports should name the image as the user can find it, not by
		// this kernel's mount point: server:/export/path.
		t = storage.Named(t, strings.TrimSuffix(ts.Source, "/")+filepath.Join("/", ts.Path))
	}
	return t, cleanup, nil
}

// mountTarget mounts the target's filesystem. A network filesystem gets a
// few retries: the link came up a moment ago, and the server may still be
// answering ARP or finishing its own start.
func mountTarget(src string, ts handoff.TargetSpec) error {
	deadline := time.Now().Add(30 * time.Second)
	line, _ := os.ReadFile("/proc/cmdline")
	_, hard := cmdline.Value(string(line), testNFSHardParam)
	if hard && ts.Net != nil {
		logf("%s on the command line: mounting the NFS target hard (no timeouts), to test the watchdog", testNFSHardParam)
	}
	opts := mountOptions(ts, hard)
	for {
		step("mounting " + src)
		err := unix.Mount(src, mountPoint, ts.FSType, 0, opts)
		if err == nil || ts.Net == nil || time.Now().After(deadline) {
			return err
		}
		switch err {
		case unix.ETIMEDOUT, unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EAGAIN, unix.EIO:
			logf("mounting %s: %v; retrying", src, err)
			time.Sleep(time.Second)
		default:
			return err
		}
	}
}

// rawDevice finds a raw target's partition in this kernel. The original
// gave its own kernel's name, but this kernel loaded only the target's
// drivers and probes them asynchronously: a USB stick that was sdb behind
// the original's internal SATA disk is sda here, and sdb may be missing or
// another disk. A partition is therefore found by what the image does not
// overwrite: the user's PARTUUID= or PARTLABEL=, else the PARTUUID the
// original read off it (a device path); the original's name first (two
// partitions may carry one PARTLABEL). Only a target with neither (a whole
// disk, a partition table without PARTUUIDs) is taken by its name.
func rawDevice(ts handoff.TargetSpec, limit time.Duration, carries func(dev, spec string) bool, resolve func(spec string) (string, error)) (string, error) {
	id := identitySpec(ts)
	if id == "" {
		return ts.Device, waitForDevice(ts.Device, limit)
	}
	deadline := time.Now().Add(limit)
	for {
		if carries(ts.Device, id) {
			return ts.Device, nil
		}
		if dev, err := resolve(id); err == nil {
			return dev, nil
		}
		if time.Now().After(deadline) {
			name := ts.Spec
			if id != ts.Spec {
				name += " (" + id + ")"
			}
			return "", fmt.Errorf("target %s (%s in the original kernel) did not appear within %s: is its driver built into the helper kernel (or in 'hibernate prepare' modules)? Nothing was written to another disk", name, ts.Device, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// identitySpec is the tag rawDevice finds a raw target by, "" for none.
func identitySpec(ts handoff.TargetSpec) string {
	if ps, err := storage.ParseSpec(ts.Spec); err == nil && ps.Path == "" && (ps.Tag == "PARTUUID" || ps.Tag == "PARTLABEL") {
		return ts.Spec
	}
	if ts.PartUUID != "" {
		return "PARTUUID=" + ts.PartUUID
	}
	return ""
}

// waitForDevice waits for a block device to appear: drivers probe
// asynchronously after the kernel starts init.
func waitForDevice(dev string, limit time.Duration) error {
	if !strings.HasPrefix(dev, "/dev/") {
		return fmt.Errorf("target device %q is not a /dev path", dev)
	}
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(dev); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("target device %s did not appear within %s: is its driver built into the helper kernel (or in 'hibernate prepare' modules)?", dev, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nfsTimeouts bound every NFS request of the helper: a soft mount fails a
// request with EIO once the server has not answered its retransmissions,
// where the default hard mount retries forever and the frozen original
// would never come back. Over TCP the kernel waits timeo tenths of a
// second, then timeo more for each of the retrans retries (linear
// backoff, nfs_init_timeout_values): 5 + 10 + 15 = 30 s.
const nfsTimeouts = "soft,timeo=50,retrans=2"

// testNFSHardParam on the helper's command line mounts an NFS target hard,
// as the helper once did: a dead server then blocks the capture for good,
// and only the watchdog brings the machine back (scenario
// nfs-hard-mount-lost-jumps-back). Off unless given.
const testNFSHardParam = "kjump.test_nfs_hard"

// mountOptions are the target's mount options, with bounded timeouts for
// NFS (replacing whatever the original's mount had for them; hard, for the
// test of the watchdog only).
func mountOptions(ts handoff.TargetSpec, hard bool) string {
	if ts.FSType != "nfs" && ts.FSType != "nfs4" {
		return ts.Opts
	}
	var keep []string
	for _, o := range strings.Split(ts.Opts, ",") {
		switch k, _, _ := strings.Cut(o, "="); k {
		case "", "soft", "hard", "softerr", "timeo", "retrans":
		default:
			keep = append(keep, o)
		}
	}
	if hard {
		return strings.Join(append(keep, "hard"), ",")
	}
	return strings.Join(append(keep, nfsTimeouts), ",")
}
