//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "checkpoint-continue-resume", CPUs: 2, Timeout: 25 * time.Minute, Run: func(s *S) error { return checkpointContinueResume(s, "") }})
	register(Scenario{Name: "checkpoint-continue-resume-linux7.3", Timeout: 45 * time.Minute, Run: func(s *S) error { return checkpointContinueResume(s, "7.3") }})
	register(Scenario{Name: "stale-disk-refused", CPUs: 2, Timeout: 25 * time.Minute, Run: staleDiskRefused})
}

// The checkpointing machine keeps its image in a file on its own mounted
// ext4 filesystem (hibernate preallocates it and writes its blocks from the
// helper kernel), keeps running, and is then cut off. The next boot resumes
// from the file, which early boot finds as kjump.resume=UUID=<fs>:/path on
// the kernel command line without mounting the filesystem read-write.
const checkpointFileBody = `
if grep -q kjtest=resume /proc/cmdline; then
  /bin/resume
  echo "CFR resume rc=$?"
  echo "CFR booted normally"
  return 0
fi
mkdir -p /data && mount -o noatime /dev/vda /data
` + workloadStart + `
echo "CFR before counter=$(cat /run/kjump-workload/counter)"
hibernate checkpoint --to /data/kjump/checkpoint.img >/tmp/ckpt.out 2>&1
rc=$?
cat /tmp/ckpt.out
if grep -q RESUMED /tmp/ckpt.out; then
  echo "CFR resumed rc=$rc counter=$(cat /run/kjump-workload/counter) cpus=$(cat /sys/devices/system/cpu/online)"
  kjump-workload verify
  return 0
fi
echo "CFR checkpoint rc=$rc"
/bin/resume image verify /data/kjump/checkpoint.img
echo "CFR verify rc=$?"
ls -ln /data/kjump
sleep 5
echo "CFR later counter=$(cat /run/kjump-workload/counter)"
kjump-workload verify
sync
echo "CFR ready to lose power"
sleep 100000
`

func checkpointContinueResume(s *S, version string) error {
	kernel, initrd, err := s.jumpingBoot(version, checkpointFileBody)
	if err != nil {
		return err
	}
	disk := filepath.Join(s.Dir, "data.ext4")
	if err := vm.MakeExt4(disk, 1280, "kjdata", ""); err != nil {
		return err
	}
	cfg := vm.Config{Name: "checkpoint", Kernel: kernel, Initrd: initrd, SMP: 2, Append: region, Disks: []string{disk}}
	m, err := s.Start(cfg)
	if err != nil {
		return err
	}
	before, err := m.Expect(`CFR before counter=(\d+)`, 5*time.Minute)
	if err != nil {
		return err
	}
	if _, err := m.Expect(`hibernate: preallocating [0-9.]+ MiB at /data/kjump/checkpoint.img`, 2*time.Minute); err != nil {
		return err
	}
	if _, err := m.Expect(`hibernate: checkpoint committed to /data/kjump/checkpoint.img \(on /dev/vda\)`, 10*time.Minute); err != nil {
		return err
	}
	if err := expectAll(m, 2*time.Minute, "CFR checkpoint rc=0", "CFR verify rc=0", "-rw-------"); err != nil {
		return err
	}
	later, err := m.Expect(`CFR later counter=(\d+)`, 2*time.Minute)
	if err != nil {
		return err
	}
	if err := expectAll(m, time.Minute, "WORKLOAD VERIFY ok", "CFR ready to lose power"); err != nil {
		return err
	}
	m.Kill() // power cut: no shutdown, no unmount

	// The filesystem the helper wrote behind the mounted kernel's back must
	// be consistent.
	if out, err := exec.Command("e2fsck", "-fn", disk).CombinedOutput(); err != nil {
		return fmt.Errorf("e2fsck of the disk after the checkpoint: %v\n%s", err, out)
	}

	uuid, err := exec.Command("blkid", "-o", "value", "-s", "UUID", disk).Output()
	if err != nil {
		return fmt.Errorf("blkid %s: %v", disk, err)
	}
	spec := "UUID=" + strings.TrimSpace(string(uuid)) + ":/kjump/checkpoint.img"
	cfg.Name, cfg.Append = "resume", region+" kjtest=resume kjump.resume="+spec
	r, err := s.Start(cfg)
	if err != nil {
		return err
	}
	// Resumable only because the machine wrote nothing to the disk after
	// the checkpoint (noatime; it only read the image back): the guard
	// proves the ext4 journal where the checkpoint left it.
	if _, err := r.ExpectString("resume: filesystems proven unchanged since the image: ext4 /dev/vda", 5*time.Minute); err != nil {
		return err
	}
	if _, err := r.Expect(`resume: image \w+ verified and invalidated`, 5*time.Minute); err != nil {
		return err
	}
	if _, err := r.Expect(`hibernate: RESUMED from image \w+ on `+regexp.QuoteMeta(spec), 5*time.Minute); err != nil {
		return err
	}
	res, err := r.Expect(`CFR resumed rc=0 counter=(\d+) cpus=(\S+)`, 2*time.Minute)
	if err != nil {
		return err
	}
	// The machine is back at the checkpoint, not where it was cut off.
	if c := atoi(res[1]); c < atoi(before[1]) || c >= atoi(later[1]) {
		return fmt.Errorf("resumed counter %d: want the checkpoint's state, between %s (before the checkpoint) and %s (when power was cut)", c, before[1], later[1])
	}
	if res[2] != "0-1" {
		return fmt.Errorf("CPUs online after resume: %s, want 0-1", res[2])
	}
	if err := expectAll(r, time.Minute, "WORKLOAD VERIFY ok", "E2E exit rc=0"); err != nil {
		return err
	}
	return r.Wait(time.Minute)
}

// staleDiskRefused: between hibernating and resuming, the machine boots
// normally and writes to a filesystem the hibernated kernel had mounted.
// Resuming now would corrupt it: resume must refuse, name the filesystem,
// invalidate the image and boot on.
func staleDiskRefused(s *S) error {
	h, err := hibernateOnce(s, "")
	if err != nil {
		return err
	}
	if !strings.Contains(h.consoleText, "HIB file cached") {
		return fmt.Errorf("the hibernating boot did not mount the data disk")
	}
	// An ordinary boot in between: mount the data filesystem and write.
	initrd, err := s.Initramfs(`
mount /dev/vdb /mnt && echo "STALE wrote" > /mnt/new-file && umount /mnt && echo "STALE other boot wrote the data disk"
`, nil)
	if err != nil {
		return err
	}
	o, err := s.Start(vm.Config{Name: "other-boot", Kernel: h.kernel, Initrd: initrd, SMP: 1, Disks: []string{h.imageDisk, h.dataDisk}})
	if err != nil {
		return err
	}
	if err := expectAll(o, 3*time.Minute, "STALE other boot wrote the data disk", "E2E exit rc=0"); err != nil {
		return err
	}
	if err := o.Wait(time.Minute); err != nil {
		return err
	}

	m, err := h.bootResume(s, "resume-stale")
	if err != nil {
		return err
	}
	refusal, err := m.Expect(`resume: (image \w+ on /dev/vda is stale and was invalidated, booting normally: .*)`, 5*time.Minute)
	if err != nil {
		return err
	}
	// The hibernated kernel had it mounted read-only (mount count 0 from
	// mkfs); the other boot's read-write mount made it 1.
	for _, want := range []string{"filesystem", "ext4 on /dev/vdb", "changed since hibernation", "was: mounts=0", "now: mounts=1"} {
		if !strings.Contains(refusal[1], want) {
			return fmt.Errorf("refusal does not say %q: %q", want, refusal[1])
		}
	}
	if err := expectAll(m, time.Minute, "HIB resume rc=1", "HIB booted normally", "E2E exit rc=0"); err != nil {
		return err
	}
	if strings.Contains(m.Console(), "restore kernel") {
		return fmt.Errorf("a restore kernel was started for a stale image")
	}
	if err := m.Wait(time.Minute); err != nil {
		return err
	}
	// Invalidated: the next boot does not even consider it.
	m2, err := h.bootResume(s, "resume-after-stale")
	if err != nil {
		return err
	}
	if _, err := m2.Expect(`resume: no image to resume: image \w+ on /dev/vda was already used or refused \(invalidated\)`, 5*time.Minute); err != nil {
		return err
	}
	if err := expectAll(m2, time.Minute, "HIB resume rc=0", "E2E exit rc=0"); err != nil {
		return err
	}
	return m2.Wait(time.Minute)
}
