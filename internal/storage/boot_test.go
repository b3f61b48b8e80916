package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Without a DEVICE: prefix, OpenAtBoot is Open, and Path is what it opened.
func TestOpenAtBootPlainSpec(t *testing.T) {
	spec := filepath.Join(t.TempDir(), "kjump.img")
	bt, err := OpenAtBoot(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close()
	if bt.Path != spec || bt.Target.String() != spec {
		t.Errorf("path %q, target %v", bt.Path, bt.Target)
	}
	bt.Close() // twice is harmless
	for _, bad := range []string{"", "UUID=", "NOSUCH=x", "UUID=a/b:/img"} {
		if _, err := OpenAtBoot(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// DEVICE:/path mounts the filesystem read-only for as long as the target
// is open, names the target as the user did, and unmounts on Close.
func TestOpenAtBootDevicePath(t *testing.T) {
	dev, mnt := ext4Loop(t, 64<<20)
	path := filepath.Join(mnt, "kjump", "kjump.img")
	if err := Preallocate(path, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	spec := dev + ":/kjump/kjump.img"
	bt, err := OpenAtBoot(spec)
	if err != nil {
		t.Fatal(err)
	}
	if bt.Target.String() != spec || filepath.Base(bt.Path) != "kjump.img" || !strings.HasPrefix(bt.Path, "/run/kjump/mnt-") {
		t.Errorf("target %v at %q", bt.Target, bt.Path)
	}
	if _, err := bt.Target.Open(false); !errors.Is(err, ErrNoImage) {
		t.Errorf("prepared file through the read-only mount: %v, want ErrNoImage", err)
	}
	bt.Close()
	if _, err := os.Stat(bt.Path); err == nil {
		t.Errorf("%s still there after Close", bt.Path)
	}
	// No file there: a target without an image (resume boots on).
	bt, err = OpenAtBoot(dev + ":/kjump/missing.img")
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close()
	if _, err := bt.Target.Open(false); !errors.Is(err, ErrNoImage) {
		t.Errorf("missing file: %v, want ErrNoImage", err)
	}
}
