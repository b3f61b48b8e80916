package helper

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/storage"
)

const mountPoint = "/mnt/kjump-target"

// openTarget brings up the storage the original resolved for us: a raw
// device as is, a filesystem mounted at mountPoint. The returned cleanup
// unmounts it.
func openTarget(ts jump.TargetSpec) (storage.Target, func(), error) {
	nop := func() {}
	if ts.FSType == "" {
		if err := waitForDevice(ts.Device, 10*time.Second); err != nil {
			return nil, nop, err
		}
		t, err := storage.Open(ts.Device)
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
	if err := unix.Mount(src, mountPoint, ts.FSType, 0, ts.Opts); err != nil {
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
	return t, cleanup, nil
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
