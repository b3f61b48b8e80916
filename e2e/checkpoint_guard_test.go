//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "checkpoint-then-writes-refused", CPUs: 2, Timeout: 30 * time.Minute, Run: checkpointThenWritesRefused})
	register(Scenario{Name: "checkpoint-idle-crash-resumes", CPUs: 2, Timeout: 30 * time.Minute, Run: checkpointIdleCrashResumes})
}

// guardFS are the data filesystems of the checkpoint-guard scenarios, one
// of each kind the stale-disk guard proves unchanged: vdb, vdc, vdd (vda
// is the raw image partition).
var guardFS = []struct{ dev, fstype string }{{"vdb", "ext4"}, {"vdc", "xfs"}, {"vdd", "btrfs"}}

// guardDisks makes the image disk and the three data disks on the host.
func guardDisks(s *S) ([]string, error) {
	disks := []string{filepath.Join(s.Dir, "image.raw")}
	if err := vm.CreateDisk(disks[0], 2048); err != nil {
		return nil, err
	}
	for _, g := range guardFS {
		p := filepath.Join(s.Dir, g.dev+"."+g.fstype)
		mib := map[string]int{"ext4": 96, "xfs": 320, "btrfs": 160}[g.fstype]
		if err := vm.CreateDisk(p, mib); err != nil {
			return nil, err
		}
		mkfs := map[string][]string{
			// No lazy init: its background writes would be changes.
			"ext4":  {"mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"},
			"xfs":   {"mkfs.xfs", "-q", "-f"},
			"btrfs": {"mkfs.btrfs", "-q", "-f"},
		}[g.fstype]
		if out, err := exec.Command(mkfs[0], append(mkfs[1:], p)...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s %s: %v\n%s", mkfs[0], p, err, out)
		}
		disks = append(disks, p)
	}
	return disks, nil
}

// fsckClean checks each data disk image on the host, read-only.
func fsckClean(disks []string) error {
	for i, g := range guardFS {
		p := disks[i+1]
		var cmd *exec.Cmd
		switch g.fstype {
		case "ext4":
			cmd = exec.Command("e2fsck", "-fn", p)
		case "xfs":
			cmd = exec.Command("xfs_repair", "-n", "-f", p)
		case "btrfs":
			cmd = exec.Command("btrfs", "check", "--readonly", p)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s of the %s disk: %v\n%s", strings.Join(cmd.Args, " "), g.fstype, err, out)
		}
	}
	return nil
}

// guardMount mounts the three data filesystems read-write.
const guardMount = `
for fs in vdb:ext4 vdc:xfs vdd:btrfs; do
  dev=${fs%%:*}; t=${fs##*:}
  mkdir -p /mnt/$t && mount -t $t /dev/$dev /mnt/$t || return 1
done
`

// guardBefore writes the files the checkpoint sees.
const guardBefore = guardMount + `
for t in ext4 xfs btrfs; do
  echo "kept $t" > /mnt/$t/keep
  echo "old $t" > /mnt/$t/victim
  echo "renamed $t" > /mnt/$t/before-rename
  head -c 1048576 /dev/urandom > /mnt/$t/rewritten
done
sync
`

// checkpointThenWritesRefused: the machine checkpoints to a raw
// partition, keeps running and writes, deletes and renames files on its
// ext4, xfs and btrfs disks, syncs, and loses power. The image is older
// than those disks: the next boot must refuse it naming each changed
// filesystem, boot normally with every file as written after the
// checkpoint, and leave each filesystem clean.
func checkpointThenWritesRefused(s *S) error {
	disks, err := guardDisks(s)
	if err != nil {
		return err
	}
	kernel, initrd, err := s.jumpingBoot("", `
if grep -q kjtest=resume /proc/cmdline; then
  /bin/resume --from /dev/vda
  echo "CGW resume rc=$?"
  echo "CGW booted normally"
`+guardMount+`
  for t in ext4 xfs btrfs; do
    if [ "$(cat /mnt/$t/keep)" = "kept $t" ] && [ ! -e /mnt/$t/victim ] && [ ! -e /mnt/$t/before-rename ] &&
       [ "$(cat /mnt/$t/after-rename)" = "renamed $t" ] && [ -d /mnt/$t/dir-after ] &&
       [ "$(sha256sum < /mnt/$t/rewritten | cut -d' ' -f1)" = "$(cat /mnt/$t/dir-after/sum)" ]; then
      echo "CGW $t files intact"
    else
      echo "CGW $t files wrong:"; ls -la /mnt/$t
    fi
    umount /mnt/$t || return 1
  done
  return 0
fi
`+guardBefore+workloadStart+`
echo "CGW before counter=$(cat /run/kjump-workload/counter)"
hibernate checkpoint --to /dev/vda >/tmp/ckpt.out 2>&1
rc=$?
cat /tmp/ckpt.out
if grep -q RESUMED /tmp/ckpt.out; then
  echo "CGW RESUMED onto disks written after the checkpoint"
  return 1
fi
echo "CGW checkpoint rc=$rc"
for t in ext4 xfs btrfs; do
  head -c 1048576 /dev/urandom > /mnt/$t/rewritten
  rm /mnt/$t/victim
  mv /mnt/$t/before-rename /mnt/$t/after-rename
  mkdir /mnt/$t/dir-after
  sha256sum < /mnt/$t/rewritten | cut -d' ' -f1 > /mnt/$t/dir-after/sum
done
sync
echo "CGW wrote after the checkpoint; ready to lose power"
sleep 100000
`)
	if err != nil {
		return err
	}
	cfg := vm.Config{Name: "checkpoint", Kernel: kernel, Initrd: initrd, SMP: 2, Append: region, Disks: disks}
	m, err := s.Start(cfg)
	if err != nil {
		return err
	}
	if _, err := m.Expect(`CGW before counter=\d+`, 5*time.Minute); err != nil {
		return err
	}
	if _, err := m.Expect(`hibernate: checkpoint committed to /dev/vda`, 10*time.Minute); err != nil {
		return err
	}
	if err := expectAll(m, 3*time.Minute, "CGW checkpoint rc=0", "CGW wrote after the checkpoint; ready to lose power"); err != nil {
		return err
	}
	m.Kill() // power cut: no unmount

	cfg.Name, cfg.Append = "resume-refused", region+" kjtest=resume"
	r, err := s.Start(cfg)
	if err != nil {
		return err
	}
	refusal, err := r.Expect(`resume: (image \w+ on /dev/vda is stale and was invalidated, booting normally: .*)`, 5*time.Minute)
	if err != nil {
		return err
	}
	for _, g := range guardFS {
		if want := g.fstype + " on /dev/" + g.dev + ") changed since hibernation"; !strings.Contains(refusal[1], want) {
			return fmt.Errorf("refusal does not name the %s filesystem (%q): %q", g.fstype, want, refusal[1])
		}
	}
	if err := expectAll(r, 2*time.Minute, "CGW resume rc=1", "CGW booted normally"); err != nil {
		return err
	}
	for _, g := range guardFS {
		if _, err := r.ExpectString("CGW "+g.fstype+" files intact", 2*time.Minute); err != nil {
			return err
		}
	}
	if _, err := r.ExpectString("E2E exit rc=0", time.Minute); err != nil {
		return err
	}
	if strings.Contains(r.Console(), "restore kernel") {
		return fmt.Errorf("a restore kernel was started for a stale checkpoint")
	}
	if err := r.Wait(time.Minute); err != nil {
		return err
	}
	return fsckClean(disks)
}

// checkpointIdleCrashResumes: the machine checkpoints with its ext4, xfs
// and btrfs disks mounted read-write and loses power at once, before it
// writes anything: every disk is proven unchanged, so the next boot
// resumes the checkpoint; the resumed machine's memory and filesystems
// are whole (it writes to each, unmounts, and the host's fsck agrees).
func checkpointIdleCrashResumes(s *S) error {
	disks, err := guardDisks(s)
	if err != nil {
		return err
	}
	kernel, initrd, err := s.jumpingBoot("", `
if grep -q kjtest=resume /proc/cmdline; then
  /bin/resume --from /dev/vda
  echo "CGI resume rc=$?"
  echo "CGI booted normally"
  return 1
fi
`+guardBefore+workloadStart+`
echo "CGI before counter=$(cat /run/kjump-workload/counter)"
hibernate checkpoint --to /dev/vda >/tmp/ckpt.out 2>&1
rc=$?
if grep -q RESUMED /tmp/ckpt.out; then
  cat /tmp/ckpt.out
  echo "CGI resumed rc=$rc counter=$(cat /run/kjump-workload/counter)"
  kjump-workload verify || return 1
  for t in ext4 xfs btrfs; do
    [ "$(cat /mnt/$t/keep)" = "kept $t" ] && echo "after resume $t" > /mnt/$t/after && sync && umount /mnt/$t && echo "CGI $t written and unmounted"
  done
  return 0
fi
echo "CGI checkpoint rc=$rc; ready to lose power"
sleep 100000
`)
	if err != nil {
		return err
	}
	cfg := vm.Config{Name: "checkpoint", Kernel: kernel, Initrd: initrd, SMP: 2, Append: region, Disks: disks}
	m, err := s.Start(cfg)
	if err != nil {
		return err
	}
	before, err := m.Expect(`CGI before counter=(\d+)`, 5*time.Minute)
	if err != nil {
		return err
	}
	if _, err := m.ExpectString("CGI checkpoint rc=0; ready to lose power", 10*time.Minute); err != nil {
		return err
	}
	m.Kill() // at once: the machine wrote nothing after the checkpoint

	cfg.Name, cfg.Append = "resume", region+" kjtest=resume"
	r, err := s.Start(cfg)
	if err != nil {
		return err
	}
	if _, err := r.ExpectString("resume: filesystems proven unchanged since the image: ext4 /dev/vdb, xfs /dev/vdc, btrfs /dev/vdd", 5*time.Minute); err != nil {
		return err
	}
	if _, err := r.Expect(`resume: image \w+ verified and invalidated`, 5*time.Minute); err != nil {
		return err
	}
	res, err := r.Expect(`CGI resumed rc=0 counter=(\d+)`, 5*time.Minute)
	if err != nil {
		return err
	}
	if atoi(res[1]) < atoi(before[1]) {
		return fmt.Errorf("resumed counter %s is below the checkpoint's %s", res[1], before[1])
	}
	if err := expectAll(r, 2*time.Minute, "WORKLOAD VERIFY ok", "CGI ext4 written and unmounted", "CGI xfs written and unmounted", "CGI btrfs written and unmounted", "E2E exit rc=0"); err != nil {
		return err
	}
	if err := r.Wait(time.Minute); err != nil {
		return err
	}
	return fsckClean(disks)
}
