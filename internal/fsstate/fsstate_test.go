package fsstate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

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

// loopFS makes a filesystem in a file, attaches it to a loop device and
// mounts it. Every tool must be there: a missing one fails the test.
func loopFS(t *testing.T, fstype string, mib int, mkfs []string, mountOpts string) (file, dev, mnt string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the stale-disk guard's tests need root (loop devices and mounts)")
	}
	file = filepath.Join(t.TempDir(), "disk.img")
	sh(t, "truncate", "-s", fmt.Sprintf("%dM", mib), file)
	sh(t, mkfs[0], append(mkfs[1:], file)...)
	dev = sh(t, "losetup", "-f", "--show", file)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	mnt = t.TempDir()
	args := []string{"-t", fstype}
	if mountOpts != "" {
		args = append(args, "-o", mountOpts)
	}
	sh(t, "mount", append(args, dev, mnt)...)
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return file, dev, mnt
}

func read(t *testing.T, dev, fstype string) image.Fingerprint {
	t.Helper()
	fp := Read(dev, fstype)
	if r := Unproven(fp); r != "" {
		t.Fatalf("%s on %s is unproven: %s", fstype, dev, r)
	}
	return fp
}

// TestEveryWriteChangesState writes, overwrites, deletes, renames and
// makes directories on real ext4, xfs and btrfs filesystems, each followed
// by sync, and requires the on-disk state to move each time; an idle sync
// and an idle remount keep it equal. This is what makes a checkpoint
// unresumable once the machine wrote after it.
func TestEveryWriteChangesState(t *testing.T) {
	for _, c := range []struct {
		fstype string
		mib    int
		mkfs   []string
		opts   string
	}{
		{"ext4", 96, []string{"mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"}, ""},
		{"ext4", 96, []string{"mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", "-O", "^metadata_csum,^64bit"}, "data=journal"},
		{"ext3", 96, []string{"mkfs.ext3", "-q", "-F"}, ""},
		{"xfs", 320, []string{"mkfs.xfs", "-q", "-f"}, ""},
		{"btrfs", 160, []string{"mkfs.btrfs", "-q", "-f"}, ""},
	} {
		t.Run(c.fstype+c.opts, func(t *testing.T) {
			_, dev, mnt := loopFS(t, c.fstype, c.mib, c.mkfs, c.opts)
			quiesce := func() {
				// freeze/thaw: xfs covers its log, so no later log
				// work is pending; then the state is idle.
				sh(t, "sync")
				sh(t, "fsfreeze", "-f", mnt)
				sh(t, "fsfreeze", "-u", mnt)
			}
			big := filepath.Join(mnt, "big")
			steps := []struct {
				name string
				do   func() error
			}{
				{"write 20 MiB", func() error { return os.WriteFile(big, randomish(20<<20, 0), 0o644) }},
				{"overwrite in place", func() error {
					f, err := os.OpenFile(big, os.O_WRONLY, 0)
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = f.WriteAt([]byte("changed"), 4096)
					return err
				}},
				{"small file", func() error { return os.WriteFile(filepath.Join(mnt, "small"), []byte("x"), 0o644) }},
				{"rename", func() error { return os.Rename(filepath.Join(mnt, "small"), filepath.Join(mnt, "renamed")) }},
				{"mkdir", func() error { return os.Mkdir(filepath.Join(mnt, "dir"), 0o755) }},
				{"delete", func() error { return os.Remove(big) }},
				// Data blocks that start with the journal's magic are
				// escaped in the log (data=journal).
				{"journal-magic data", func() error { return os.WriteFile(filepath.Join(mnt, "magic"), randomish(1<<20, jbdMagic), 0o644) }},
			}
			quiesce()
			prev := read(t, dev, c.fstype)
			t.Logf("initial: %s", prev.Generation)
			for _, s := range steps {
				if err := s.do(); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				sh(t, "sync")
				now := read(t, dev, c.fstype)
				t.Logf("after %s + sync: %s", s.name, now.Generation)
				if now.Generation == prev.Generation || now.UUID != prev.UUID {
					t.Fatalf("%s + sync left the state unchanged: %s", s.name, now.Generation)
				}
				if strings.HasPrefix(c.fstype, "ext") {
					checkAgainstLogdump(t, dev, now)
				}
				prev = now
			}
			quiesce()
			idle := read(t, dev, c.fstype)
			sh(t, "sync")
			if again := read(t, dev, c.fstype); again.Generation != idle.Generation {
				t.Fatalf("an idle sync changed the state: %s, then %s", idle.Generation, again.Generation)
			}
			sh(t, "mount", "-o", "remount", mnt)
			sh(t, "sync")
			if again := read(t, dev, c.fstype); again.Generation != idle.Generation {
				t.Fatalf("an idle remount changed the state: %s, then %s", idle.Generation, again.Generation)
			}
			t.Logf("idle sync and remount: %s", idle.Generation)
		})
	}
}

// randomish is n bytes that do not compress and do not repeat per block;
// with magic set, every 4 KiB block starts with it (big-endian).
func randomish(n int, magic uint32) []byte {
	b := make([]byte, n)
	x := uint64(0x9E3779B97F4A7C15)
	for i := 0; i+8 <= n; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		le.PutUint64(b[i:], x)
	}
	if magic != 0 {
		for i := 0; i+4 <= n; i += 4096 {
			be.PutUint32(b[i:], magic)
		}
	}
	return b
}

// checkAgainstLogdump compares the guard's journal walk with e2fsprogs'
// (debugfs logdump), an independent reader of the same log.
func checkAgainstLogdump(t *testing.T, dev string, fp image.Fingerprint) {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "logdump", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs logdump: %v\n%s", err, out)
	}
	s := string(out)
	var want string
	if strings.Contains(s, "Journal empty") {
		return // a clean log: nothing to compare the walk with
	}
	// The transaction of the last block found, plus one if that block
	// ends it (a commit).
	found := regexp.MustCompile(`Found expected sequence (\d+), type (\d+)`).FindAllStringSubmatch(s, -1)
	if len(found) == 0 {
		t.Fatalf("logdump found no transactions:\n%s", s)
	}
	last := found[len(found)-1]
	tid, _ := strconv.Atoi(last[1])
	if last[2] == "2" {
		tid++
	}
	want = fmt.Sprintf("next_tid=%d@", tid)
	if !strings.Contains(fp.Generation, want) {
		t.Fatalf("the guard's walk (%s) disagrees with logdump (%s):\n%s", fp.Generation, want, lastLines(s, 6))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// mountinfoFor writes a mountinfo holding only the lines of mnt (the
// sandbox may forbid reading the host's own disks).
func mountinfoFor(t *testing.T, mnt string) string {
	t.Helper()
	all, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, l := range strings.Split(string(all), "\n") {
		if strings.Contains(l, " "+mnt+" ") {
			mine = append(mine, l)
		}
	}
	if len(mine) == 0 {
		t.Fatalf("%s is not in mountinfo", mnt)
	}
	mi := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(mi, []byte(strings.Join(mine, "\n")+"\n"), 0o600)
	return mi
}

// TestStaleExt4 walks the stale-disk story on a real ext4 filesystem: a
// fingerprint taken while it is mounted matches until another "boot"
// mounts it and writes, and a filesystem that is gone is reported missing.
func TestStaleExt4(t *testing.T) {
	_, dev, mnt := loopFS(t, "ext4", 64, []string{"mkfs.ext4", "-q", "-F"}, "")
	os.WriteFile(filepath.Join(mnt, "a"), []byte("before"), 0o600)
	sh(t, "sync")
	fp, err := Mounted(mountinfoFor(t, mnt))
	if err != nil {
		t.Fatal(err)
	}
	if len(fp) != 1 || fp[0].Device != dev || fp[0].Type != "ext4" || fp[0].UUID == "" || Unproven(fp[0]) != "" || !strings.Contains(fp[0].Generation, "mounts=1") {
		t.Fatalf("fingerprint of %s: %+v", dev, fp)
	}
	if res, err := Check(fp, false); err != nil || len(res.Missing) != 0 || len(res.Unchanged) != 1 {
		t.Fatalf("unchanged filesystem: %+v, err %v", res, err)
	}

	// Another boot: unmount (the saved kernel's mount is gone in reality;
	// here the unmount is that other boot's work), mount, write.
	sh(t, "umount", mnt)
	sh(t, "mount", dev, mnt)
	os.WriteFile(filepath.Join(mnt, "b"), []byte("after"), 0o600)
	sh(t, "umount", mnt)
	_, err = Check(fp, true) // the override does not cover a proven change
	var se *StaleError
	if !errors.As(err, &se) || se.Unproven() || !strings.Contains(err.Error(), fp[0].UUID) || !strings.Contains(err.Error(), "ext4 on "+dev) || !strings.Contains(err.Error(), "mounts=2") {
		t.Fatalf("after another mount: %v", err)
	}
	t.Logf("refusal: %v", err)

	sh(t, "losetup", "-d", dev)
	res, err := Check(fp, false)
	if err != nil || len(res.Missing) != 1 {
		t.Fatalf("detached filesystem: %+v, err %v", res, err)
	}
}

// TestReformattedIsChanged: a device that now holds another filesystem is
// a change, not a missing disk.
func TestReformattedIsChanged(t *testing.T) {
	file, dev, mnt := loopFS(t, "ext4", 64, []string{"mkfs.ext4", "-q", "-F"}, "")
	fp := []image.Fingerprint{read(t, dev, "ext4")}
	sh(t, "umount", mnt)
	sh(t, "mkfs.ext4", "-q", "-F", dev)
	_, err := Check(fp, true)
	var se *StaleError
	if !errors.As(err, &se) || se.Unproven() || !strings.Contains(err.Error(), "reformatted or replaced") {
		t.Fatalf("reformatted %s (%s): %v", dev, file, err)
	}
}

// TestUnproven: a filesystem without a journal (ext2), or of a type the
// guard cannot read, is refused by default and accepted only with the
// override; a change the guard can still see (ext2's mount count) is
// refused even then.
func TestUnproven(t *testing.T) {
	_, dev, mnt := loopFS(t, "ext2", 64, []string{"mkfs.ext2", "-q", "-F"}, "")
	mi := mountinfoFor(t, mnt)
	b, _ := os.ReadFile(mi)
	// The same device as a type the guard has no reader for.
	vfat := strings.Replace(strings.TrimSpace(string(b)), " - ext2 ", " - vfat ", 1)
	vfat = strings.Replace(vfat, " "+mnt+" ", " /boot/efi ", 1)
	vfat = regexp.MustCompile(`^\d+`).ReplaceAllString(vfat, "9999")
	os.WriteFile(mi, []byte(string(b)+vfat+"\n"), 0o600)
	fps, err := Mounted(mi)
	if err != nil {
		t.Fatal(err)
	}
	if len(fps) != 1 || !strings.Contains(Unproven(fps[0]), "no journal") {
		t.Fatalf("ext2 (the vfat line is the same device): %+v", fps)
	}
	other := Read(dev, "vfat")
	if !strings.Contains(Unproven(other), "cannot read the state of vfat") || other.UUID != "" {
		t.Fatalf("vfat: %+v", other)
	}
	fps = append(fps, other)
	_, err = Check(fps, false)
	var se *StaleError
	if !errors.As(err, &se) || !se.Unproven() || len(se.Changes) != 2 || !strings.Contains(err.Error(), "vfat on "+dev) || !strings.Contains(err.Error(), "ext2 on "+dev) || !strings.Contains(err.Error(), "kjump.allow_unproven") {
		t.Fatalf("unproven filesystems without the override: %v", err)
	}
	t.Logf("refusal: %v", err)
	if res, err := Check(fps, true); err != nil || len(res.Accepted) != 2 {
		t.Fatalf("with the override: %+v, err %v", res, err)
	}
	sh(t, "umount", mnt)
	sh(t, "mount", "-t", "ext2", dev, mnt)
	sh(t, "umount", mnt)
	if _, err := Check(fps[:1], true); !errors.As(err, &se) || se.Unproven() || !strings.Contains(err.Error(), "mounts=2") {
		t.Fatalf("ext2 mounted again, with the override: %v", err)
	}
}

// TestForgedJournal: a journal whose superblock points outside itself is
// unreadable (unproven), not a crash or a proof.
func TestForgedJournal(t *testing.T) {
	file, dev, mnt := loopFS(t, "ext4", 64, []string{"mkfs.ext4", "-q", "-F", "-b", "4096"}, "")
	fp := read(t, dev, "ext4")
	sh(t, "umount", mnt)
	sh(t, "losetup", "-d", dev)
	// Journal block 0 with s_start beyond s_maxlen.
	out := sh(t, "debugfs", "-R", "bmap <8> 0", file)
	blk, err := strconv.ParseInt(lastLines(out, 1), 10, 64)
	if err != nil {
		t.Fatalf("bmap: %q", out)
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	jsb := make([]byte, 1024)
	f.ReadAt(jsb, blk*4096)
	be.PutUint32(jsb[0x1C:], be.Uint32(jsb[0x10:])+5)
	f.WriteAt(jsb, blk*4096)
	f.Close()
	dev2 := sh(t, "losetup", "-f", "--show", file)
	defer exec.Command("losetup", "-d", dev2).Run()
	got := Read(dev2, "ext4")
	if !strings.Contains(Unproven(got), "implausible journal superblock") || got.UUID != fp.UUID {
		t.Fatalf("forged journal: %+v", got)
	}
	fp.Device = dev2
	if _, err := Check([]image.Fingerprint{fp}, false); err == nil {
		t.Fatal("a forged journal passed the check")
	}
}

// TestMountedSettles: an idle xfs writes its log again on its own (log
// covering, every xfssyncd_centisecs); Mounted freezes and thaws each
// filesystem first, so an idle checkpoint stays provably unchanged. The
// period is shortened to 1 s here so both halves show in seconds.
func TestMountedSettles(t *testing.T) {
	const knob = "/proc/sys/fs/xfs/xfssyncd_centisecs"
	old, err := os.ReadFile(knob)
	if err != nil {
		t.Fatalf("%v (is xfs loaded?)", err)
	}
	// Before the mount: the log worker is queued with the period it
	// finds then.
	if err := os.WriteFile(knob, []byte("100"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(knob, old, 0o644) })
	_, dev, mnt := loopFS(t, "xfs", 320, []string{"mkfs.xfs", "-q", "-f"}, "")
	mi := mountinfoFor(t, mnt)

	os.WriteFile(filepath.Join(mnt, "f"), randomish(1<<20, 0), 0o644)
	sh(t, "sync")
	unsettled := read(t, dev, "xfs")
	time.Sleep(5 * time.Second)
	if later := read(t, dev, "xfs"); later.Generation == unsettled.Generation {
		t.Fatalf("an unsettled xfs did not cover its log within 5 s (%s): the test proves nothing", later.Generation)
	} else {
		t.Logf("unsettled: %s, 5 s later: %s", unsettled.Generation, later.Generation)
	}

	os.WriteFile(filepath.Join(mnt, "g"), randomish(1<<20, 0), 0o644)
	sh(t, "sync")
	fps, err := Mounted(mi)
	if err != nil || len(fps) != 1 {
		t.Fatalf("Mounted: %v, %v", fps, err)
	}
	time.Sleep(5 * time.Second)
	if _, err := Check(fps, false); err != nil {
		t.Fatalf("an idle, settled xfs changed on its own: %v", err)
	}
	t.Logf("settled and idle for 5 s: %s", fps[0].Generation)
}

// TestUnassembledVolume: a filesystem on LVM/dm-crypt/md that early boot
// has not set up is not a pulled disk: its disks are there and may have
// changed, so it is unproven, not missing.
func TestUnassembledVolume(t *testing.T) {
	gone := image.Fingerprint{Device: "/dev/dm-97", UUID: "0badc0de-0000-4000-8000-000000000000", Type: "ext4", Generation: "mounts=1 journal=clean,next_tid=5"}
	res, err := Check([]image.Fingerprint{gone}, false)
	var se *StaleError
	if !errors.As(err, &se) || !se.Unproven() || !strings.Contains(err.Error(), "not set up at resume") || len(res.Missing) != 0 {
		t.Fatalf("unassembled volume: %+v, %v", res, err)
	}
	if res, err := Check([]image.Fingerprint{gone}, true); err != nil || len(res.Accepted) != 1 {
		t.Fatalf("unassembled volume with the override: %+v, %v", res, err)
	}
	usb := gone
	usb.Device = "/dev/sdz9"
	if res, err := Check([]image.Fingerprint{usb}, false); err != nil || len(res.Missing) != 1 {
		t.Fatalf("pulled disk: %+v, %v", res, err)
	}
}
