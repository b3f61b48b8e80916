package fsstate

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/image"
)

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestStaleExt4 walks the stale-disk story on a real ext4 filesystem: a
// fingerprint taken while it is mounted matches until another "boot"
// mounts it and writes, and a filesystem that is gone is reported missing.
func TestStaleExt4(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and mounts")
	}
	file := filepath.Join(t.TempDir(), "disk.img")
	sh(t, "truncate", "-s", "64M", file)
	sh(t, "mkfs.ext4", "-q", "-F", file)
	dev := sh(t, "losetup", "-f", "--show", file)
	defer exec.Command("losetup", "-d", dev).Run()
	mnt := t.TempDir()
	sh(t, "mount", dev, mnt)
	defer exec.Command("umount", mnt).Run()
	os.WriteFile(filepath.Join(mnt, "a"), []byte("before"), 0o600)
	sh(t, "sync")

	// Only this test's mount: the sandbox may forbid reading the host's disks.
	all, _ := os.ReadFile("/proc/self/mountinfo")
	var mine []string
	for _, l := range strings.Split(string(all), "\n") {
		if strings.Contains(l, " "+mnt+" ") {
			mine = append(mine, l)
		}
	}
	mi := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(mi, []byte(strings.Join(mine, "\n")+"\n"), 0o600)
	saved, err := Mounted(mi)
	if err != nil {
		t.Fatal(err)
	}
	var fp []image.Fingerprint
	for _, s := range saved {
		if s.Device == dev {
			fp = append(fp, s)
		}
	}
	if len(fp) != 1 || fp[0].Type != "ext4" || fp[0].UUID == "" || !strings.Contains(fp[0].Generation, "mounts=1") {
		t.Fatalf("fingerprint of %s: %+v (all: %+v)", dev, fp, saved)
	}
	if missing, err := Check(fp); err != nil || len(missing) != 0 {
		t.Fatalf("unchanged filesystem: missing %v, err %v", missing, err)
	}

	// Another boot: unmount (the saved kernel's mount is gone in reality;
	// here the unmount is that other boot's work), mount, write.
	sh(t, "umount", mnt)
	sh(t, "mount", dev, mnt)
	os.WriteFile(filepath.Join(mnt, "b"), []byte("after"), 0o600)
	sh(t, "umount", mnt)
	_, err = Check(fp)
	var se *StaleError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), fp[0].UUID) || !strings.Contains(err.Error(), "mounts=2") {
		t.Fatalf("after another mount: %v", err)
	}

	sh(t, "losetup", "-d", dev)
	missing, err := Check(fp)
	if err != nil || len(missing) != 1 {
		t.Fatalf("detached filesystem: missing %v, err %v", missing, err)
	}
}
