package hibernate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/initramfs"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/sysinfo"
)

func TestCheckLockdown(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		content string
		want    Status
		detail  string
	}{
		{"[none] integrity confidentiality\n", Pass, "lockdown: none"},
		{"none [integrity] confidentiality\n", Fail, "lockdown is integrity: it blocks kexec_load"},
		{"none integrity [confidentiality]\n", Fail, "lockdown is confidentiality"},
	} {
		p := filepath.Join(dir, "lockdown")
		os.WriteFile(p, []byte(tc.content), 0o644)
		_, st, detail, fix := checkLockdown(p)
		if st != tc.want || !strings.Contains(detail, tc.detail) || st == Fail && !strings.Contains(fix, "lockdown=none") {
			t.Errorf("%q: %s %q %q", tc.content, st, detail, fix)
		}
	}
	if _, st, _, _ := checkLockdown(filepath.Join(dir, "absent")); st != Pass {
		t.Errorf("no lockdown file: %s", st)
	}
}

// A file target that does not exist yet on a mounted local filesystem is
// reachable (the first hibernation preallocates it); a missing device or a
// tag are not.
func TestPreallocatable(t *testing.T) {
	d := t.TempDir()
	if dir, _, ok := preallocatable(filepath.Join(d, "sub/dir/kjump.img")); !ok || dir != d {
		t.Errorf("new file under %s: %q %v", d, dir, ok)
	}
	os.WriteFile(filepath.Join(d, "exists"), nil, 0o600)
	for _, spec := range []string{"/dev/nonexistent-kjump", "UUID=1234", filepath.Join(d, "exists")} {
		if _, _, ok := preallocatable(spec); ok {
			t.Errorf("%s counted as preallocatable", spec)
		}
	}
}

// A dm-crypt volume (device-mapper uuid CRYPT-...) with unencrypted images
// is a warning naming the volume and the fix; plain dm devices are not.
func TestCheckEncryption(t *testing.T) {
	dir := t.TempDir()
	mk := func(dev, uuid, name string) {
		os.MkdirAll(filepath.Join(dir, dev, "dm"), 0o755)
		os.WriteFile(filepath.Join(dir, dev, "dm", "uuid"), []byte(uuid+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, dev, "dm", "name"), []byte(name+"\n"), 0o644)
	}
	mk("dm-0", "LVM-abc", "vg-root")
	os.MkdirAll(filepath.Join(dir, "vda"), 0o755)
	if _, st, detail, _ := checkEncryption(false, dir); st != Pass {
		t.Errorf("no dm-crypt: %s %s", st, detail)
	}
	mk("dm-1", "CRYPT-LUKS2-0123-luks-home", "luks-home")
	_, st, detail, fix := checkEncryption(false, dir)
	if st != Warn || !strings.Contains(detail, "luks-home") || !strings.Contains(fix, "key_file") {
		t.Errorf("dm-crypt, plain images: %s %q %q", st, detail, fix)
	}
	if _, st, _, _ := checkEncryption(true, dir); st != Pass {
		t.Errorf("dm-crypt, encrypted images: %s", st)
	}
}

// A file target on a filesystem that cannot hold an image file (tmpfs
// here; btrfs the same way) is refused by the check, before anything is
// written, naming the filesystem, not its magic number.
func TestFileTargetFilesystemRefused(t *testing.T) {
	d := t.TempDir()
	if err := unix.Mount("kjump-test", d, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs (tests run as root): %v", err)
	}
	defer unix.Unmount(d, 0)
	spec := filepath.Join(d, "kjump.img")
	chosen, errs := chooseTarget([]string{spec})
	if chosen.Spec != "" || len(errs) != 1 || !strings.Contains(errs[0], "would be on tmpfs") || !strings.Contains(errs[0], "only on ext4 or xfs") {
		t.Fatalf("chosen %+v, errors %q", chosen, errs)
	}
	if _, err := os.Stat(spec); err == nil {
		t.Fatal("the check created the image file")
	}
	// On ext4 (this machine's /var/tmp) it is fine.
	if err := fileTargetFS("x", "/", "ext4"); err != nil {
		t.Fatal(err)
	}
	if err := fileTargetFS("x", "/mnt", "btrfs"); err == nil || !strings.Contains(err.Error(), "on btrfs") {
		t.Fatal(err)
	}
}

// Every missing kernel option is listed at once.
func TestMissingKernelOptions(t *testing.T) {
	var cfg sysinfo.KernelConfig // nothing enabled
	got := MissingKernelOptions(cfg, jump.ConventionClassic)
	if len(got) != 4 || got[0].Name != "CONFIG_KEXEC" || got[3].Name != "CONFIG_KALLSYMS_ALL" {
		t.Fatalf("%+v", got)
	}
	if got := MissingKernelOptions(cfg, jump.ConventionReworked); len(got) != 3 {
		t.Fatalf("reworked: %+v", got)
	}
}

// The initramfs listing finds kjump's files in an archive kjump writes.
func TestInitramfsListing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "initrd.img")
	w, err := initramfs.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w.Dir("usr", 0o755)
	w.Dir("usr/sbin", 0o755)
	w.File("usr/sbin/resume", 0o755, []byte("x"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	list, err := initramfsListing(p)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range list {
		found = found || strings.HasSuffix(f, "usr/sbin/resume")
	}
	if !found {
		t.Fatalf("%q", list)
	}
}
