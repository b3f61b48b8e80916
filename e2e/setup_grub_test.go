//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/prepare"
	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "setup-grub-real-boot", CPUs: 2, Exclusive: makeDeb, Timeout: 60 * time.Minute, Run: setupGrubRealBoot})
}

// The driver runs at every boot of the installed system (kjump-e2e.service)
// and goes by the stage it left in /var/lib/kjump-e2e: first boot,
// snapshot /etc and /boot, 'hibernate setup --dry-run', 'hibernate setup',
// 'hibernate setup' again, reboot; second boot, hibernate with
// `systemctl hibernate`; the resumed system goes on in the same script:
// workload check, journal, 'hibernate setup --undo', compare /etc and
// /boot with the first snapshot, power off.
const grubDriverScript = `#!/bin/sh
exec 2>&1
say() { echo "GRUBE2E $*"; }
st=/var/lib/kjump-e2e
mkdir -p $st
# Every directory, file and link below /etc and /boot with its mode, link
# target or content hash.
snapshot() {
	{ find /etc /boot -xdev -printf '%y %m %p -> %l\n'; find /etc /boot -xdev -type f -print0 | xargs -0 sha256sum; } | sort
}
# show NAME CMD...: run it, its output prefixed line by line as it comes
# (the journal's timestamps time each step), then its exit status.
show() {
	name=$1; shift
	{ "$@"; echo $? >$st/rc; } 2>&1 | sed -u "s/^/GRUBE2E $name: /"
	say "$name rc=$(cat $st/rc)"
}
stage=$(cat $st/stage 2>/dev/null)
systemctl is-system-running --wait >/dev/null
say "up stage=${stage:-0}: $(systemd-analyze | head -1)"
say "cmdline: $(cat /proc/cmdline)"
case "$stage" in
"")
	snapshot >$st/before
	show dry hibernate setup --dry-run
	snapshot >$st/now
	if cmp -s $st/before $st/now; then say "dry run changed nothing"; else diff $st/before $st/now | sed 's/^/GRUBE2E dry diff: /'; fi
	show run hibernate setup
	snapshot >$st/setup
	show again hibernate setup
	snapshot >$st/now
	if cmp -s $st/setup $st/now; then say "second setup changed nothing"; else diff $st/setup $st/now | sed 's/^/GRUBE2E again diff: /'; fi
	grep -h memmap /boot/grub/grub.cfg /etc/default/grub.d/kjump.cfg | sed 's/^/GRUBE2E file: /'
	echo 1 >$st/stage
	sync
	say "rebooting"
	systemctl reboot
	;;
1)
	show check hibernate check
	while [ ! -f /run/kjump-workload/pid ]; do sleep 1; done
	say "workload $(systemctl is-active kjump-workload.service)"
	say "before counter=$(cat /run/kjump-workload/counter)"
	echo 2 >$st/stage
	sync
	cursor=$(journalctl -n1 --show-cursor | sed -n 's/^-- cursor: //p')
	systemctl hibernate
	until journalctl --after-cursor="$cursor" -u systemd-hibernate.service -o cat | grep -q -e "returned from sleep state (resumed" -e "Failed to put system to sleep"; do sleep 1; done
	echo 3 >$st/stage
	sync
	say "after counter=$(cat /run/kjump-workload/counter)"
	kjump-workload verify
	journalctl -b -o short-monotonic --no-pager -u systemd-hibernate.service | sed 's/^/GRUBE2E journal: /'
	show status hibernate status
	show undo hibernate setup --undo
	snapshot >$st/now
	if cmp -s $st/before $st/now; then say "undo: /etc and /boot as before setup"; else diff $st/before $st/now | sed 's/^/GRUBE2E undo diff: /'; fi
	say "done"
	systemctl poweroff
	;;
2)
	say "cold boot after hibernating: the initramfs did not resume"
	systemctl poweroff
	;;
*)
	say "stage $stage: nothing to do"
	systemctl poweroff
	;;
esac
`

// setupGrubRealBoot: a Debian machine that boots from its own disk
// (SeaBIOS, GRUB in the MBR, no -kernel) with kjump installed from its
// .deb and nothing else set up is made to hibernate by 'hibernate setup'
// alone: the reservation reaches the next boot's command line through
// GRUB, `systemctl hibernate` powers it off, the power-on resumes through
// the direct restore entry GRUB boots once (no normal boot first), and
// 'hibernate setup --undo' leaves /etc and /boot as they were before
// setup.
func setupGrubRealBoot(s *S) error {
	kernel, err := testKernel("")
	if err != nil {
		return err
	}
	t0 := time.Now()
	base, err := vm.DebianBootDisk()
	if err != nil {
		return err
	}
	s.T.Logf("bootable disk %s (%s)", base, time.Since(t0).Round(time.Second))
	disk, err := s.installIntoBootDisk(base, kernel)
	if err != nil {
		return err
	}
	imageDisk := filepath.Join(s.Dir, "image.raw")
	if err := vm.CreateDisk(imageDisk, 2048); err != nil {
		return err
	}
	cfg := vm.Config{SMP: 2, Disks: []string{disk, imageDisk}}

	// First boot: setup, then reboot (QEMU ends at the reset: -no-reboot).
	cfg.Name = "setup"
	m, err := s.Start(cfg)
	if err != nil {
		return err
	}
	vmStart := time.Now()
	if _, err := m.Expect(`GRUBE2E up stage=0`, 15*time.Minute); err != nil {
		return err
	}
	s.T.Logf("power-on through GRUB to systemd up: %s", time.Since(vmStart).Round(time.Second))
	if err := expectAll(m, 10*time.Minute, "GRUBE2E dry rc=0", "GRUBE2E dry run changed nothing", "GRUBE2E run rc=0", "GRUBE2E again rc=0",
		"GRUBE2E second setup changed nothing", "GRUBE2E rebooting"); err != nil {
		return err
	}
	e, err := m.WaitExit(5 * time.Minute)
	if err != nil {
		return err
	}
	con := m.Console()
	if !strings.Contains(con, "reboot: Restarting system") || e.Panic != "" {
		return fmt.Errorf("the first boot did not end in a reboot (%+v)", e)
	}
	s.T.Logf("first boot (setup, reboot): %s", time.Since(vmStart).Round(time.Second))
	res, ok := match(`GRUBE2E run: reservation: (memmap=\d+M\$0x[0-9a-f]+) `, con)
	if !ok {
		return fmt.Errorf("setup did not say which reservation it chose")
	}
	for _, want := range []string{
		"GRUBE2E dry:   would create  /etc/default/grub.d/kjump.cfg",
		"GRUBE2E dry:   would change  /boot/grub/grub.cfg (update-grub)",
		"GRUBE2E dry:   would create  /boot/kjump/helper.bzImage",
		"GRUBE2E run:   created       /etc/default/grub.d/kjump.cfg",
		"GRUBE2E run:   changed       /boot/grub/grub.cfg (update-grub)",
		"GRUBE2E run:   changed       /boot/initrd.img-",
		"GRUBE2E dry:   would create  /etc/grub.d/42_kjump_direct",
		"GRUBE2E run:   created       /etc/grub.d/42_kjump_direct",
		"GRUBE2E again: nothing to change: this machine is set up",
	} {
		if !strings.Contains(con, want) {
			return fmt.Errorf("first boot: no %q on the console", want)
		}
	}
	// grub.cfg's entry has the dollar escaped for GRUB's parser.
	entry := `GRUBE2E file: \s*linux\s+/boot/vmlinuz-\S+ root=UUID=\S+ ro .*` + regexp.QuoteMeta(strings.Replace(res, "$", `\$`, 1))
	if !regexp.MustCompile(entry).MatchString(con) {
		return fmt.Errorf("grub.cfg has no entry with %s (escaped for GRUB)", res)
	}

	// Second boot through GRUB: the reservation is on the command line;
	// systemctl hibernate powers off.
	cfg.Name = "hibernate"
	if m, err = s.Start(cfg); err != nil {
		return err
	}
	vmStart = time.Now()
	line, err := m.Expect(`GRUBE2E cmdline: (.*)`, 15*time.Minute)
	if err != nil {
		return err
	}
	if !strings.Contains(" "+line[1]+" ", " "+res+" ") {
		return fmt.Errorf("the reservation %s is not on the command line GRUB passed: %s", res, line[1])
	}
	s.T.Logf("second boot to systemd up: %s; command line %s", time.Since(vmStart).Round(time.Second), line[1])
	if err := expectAll(m, 5*time.Minute, "GRUBE2E check rc=0", "GRUBE2E workload active", "GRUBE2E before counter="); err != nil {
		return err
	}
	if _, ok := match(`GRUBE2E check: PASS\s+direct-restore\s+(after 'hibernate now' GRUB boots the direct restore once.*)`, m.Console()); !ok {
		return fmt.Errorf("hibernate check does not say the direct restore is ready: %s", sectionOf(m.Console(), "GRUBE2E check:", "GRUBE2E check rc="))
	}
	hib := time.Now()
	if err := expectAll(m, 15*time.Minute, "kjump-helper: image committed; powering off"); err != nil {
		return err
	}
	if err := m.Wait(3 * time.Minute); err != nil {
		return fmt.Errorf("machine did not power off after systemctl hibernate: %w", err)
	}
	s.T.Logf("systemctl hibernate to power-off: %s", time.Since(hib).Round(time.Second))

	// Power on through GRUB: hibernate armed GRUB's one-shot entry, so
	// GRUB starts the helper kernel as a direct restore (issue 19): one
	// kernel boot, no initramfs resume; the driver goes on.
	cfg.Name = "resume"
	if m, err = s.Start(cfg); err != nil {
		return err
	}
	vmStart = time.Now()
	if _, err := m.ExpectString("kjump: restoring the hibernated system", 5*time.Minute); err != nil {
		return fmt.Errorf("GRUB did not boot the direct restore entry: %w", err)
	}
	if _, err := m.ExpectString("kjump-helper: direct restore", 10*time.Minute); err != nil {
		return err
	}
	after, err := m.Expect(`GRUBE2E after counter=(\d+)`, 10*time.Minute)
	if err != nil {
		return err
	}
	s.T.Logf("power-on through GRUB and the direct restore to the resumed system running: %s", time.Since(vmStart).Round(time.Second))
	con = m.Console()
	woke := strings.Index(con, "GRUBE2E after counter=")
	if n := kernelsBooted(con[:woke]); n != 1 {
		return fmt.Errorf("%d kernels booted before the original woke, want 1 (the direct restore)", n)
	}
	if strings.Contains(con[:woke], "resume: verifying image") {
		return fmt.Errorf("the initramfs resumed: the direct restore did not")
	}
	if b, _ := intMatch(`GRUBE2E before counter=(\d+)`, s.consoleOf("hibernate"), 1); atoi(after[1]) < b {
		return fmt.Errorf("workload counter went back: %d before hibernating, %s after resume (the workload restarted)", b, after[1])
	}
	if _, err := m.ExpectString("GRUBE2E done", 10*time.Minute); err != nil {
		return err
	}
	con = m.Console()
	for _, want := range []string{"WORKLOAD VERIFY ok", "GRUBE2E status rc=0", "the next power-on restores directly: GRUB boots kjump-direct once",
		"remove /boot/grub/kjump-direct.cfg (hibernate now, for the direct restore)", "GRUBE2E status: last hibernate:", "GRUBE2E undo rc=0", "GRUBE2E undo: /etc and /boot as before setup",
		"Entering sleep state 'hibernate' through kjump", "hibernate: RESUMED from image",
		"System returned from sleep state (resumed by kjump)"} {
		if !strings.Contains(con, want) {
			return fmt.Errorf("resumed system: no %q on the console", want)
		}
	}
	if strings.Contains(con, "GRUBE2E cold boot") || strings.Contains(con, "GRUBE2E up stage=") {
		return fmt.Errorf("the system booted cold instead of resuming")
	}
	// GRUB cleared its one-shot entry itself, so the resumed original had
	// nothing to clear; a failed hibernation would have.
	if strings.Contains(con, "one-shot direct restore entry cleared") {
		return fmt.Errorf("GRUB left next_entry=kjump-direct set: the resumed original had to clear it")
	}
	return m.Wait(5 * time.Minute)
}

// installIntoBootDisk copies the cached bootable disk and installs what a
// user would have before 'hibernate setup': the kernel as Debian installs
// one (/boot/vmlinuz-RELEASE, its config, its initramfs from
// update-initramfs, update-grub), kjump from its .deb, /etc/kjump.conf
// with the target, and the test's workload and driver units.
func (s *S) installIntoBootDisk(base, kernel string) (string, error) {
	start := time.Now()
	disk := filepath.Join(s.Dir, "boot.raw")
	if err := run("", "cp", "--sparse=always", base, disk); err != nil {
		return "", err
	}
	out, err := exec.Command("losetup", "--find", "--show", "--partscan", disk).Output()
	if err != nil {
		return "", fmt.Errorf("losetup %s: %v", disk, err)
	}
	loop := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", loop).Run()
	part := loop + "p1"
	exec.Command("partx", "-a", loop).Run()
	for i := 0; i < 100 && !exists(part); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	root := filepath.Join(s.Dir, "mnt")
	if err := os.Mkdir(root, 0o755); err != nil {
		return "", err
	}
	if err := run("", "mount", part, root); err != nil {
		return "", err
	}
	defer func() {
		exec.Command("umount", root).Run()
		os.Remove(root)
	}()
	release, err := prepare.KernelRelease(kernel)
	if err != nil {
		return "", err
	}
	repo, err := vm.RepoRoot()
	if err != nil {
		return "", err
	}
	debOut, err := exec.Command("make", "-s", "-C", repo, "deb").Output()
	if err != nil {
		return "", fmt.Errorf("make deb: %v", err)
	}
	deb := filepath.Join(repo, strings.TrimSpace(string(debOut)))
	files := []struct {
		path, from, data string
		mode             os.FileMode
	}{
		{path: "boot/vmlinuz-" + release, from: kernel, mode: 0o644},
		{path: "boot/config-" + release, from: filepath.Join(filepath.Dir(kernel), "config"), mode: 0o644},
		{path: "tmp/kjump.deb", from: deb, mode: 0o644},
		{path: "etc/kjump.conf", data: kjumpConf, mode: 0o644},
		{path: "usr/local/bin/kjump-workload", from: goBins["bin/kjump-workload"], mode: 0o755},
		{path: "usr/local/sbin/kjump-e2e", data: grubDriverScript, mode: 0o755},
		{path: "etc/systemd/system/kjump-workload.service", data: workloadUnit, mode: 0o644},
		{path: "etc/systemd/system/kjump-e2e.service", data: driverUnit, mode: 0o644},
		{path: "etc/systemd/journald.conf.d/console.conf", data: "[Journal]\nForwardToConsole=yes\nMaxLevelConsole=info\n", mode: 0o644},
	}
	// The test kernel has every driver built in: its module tree is only
	// the directory update-initramfs needs.
	if err := os.MkdirAll(filepath.Join(root, "lib/modules", release), 0o755); err != nil {
		return "", err
	}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		data := []byte(f.data)
		if f.from != "" {
			if data, err = os.ReadFile(f.from); err != nil {
				return "", err
			}
		}
		if err := os.WriteFile(p, data, f.mode); err != nil {
			return "", err
		}
	}
	// panic=-1: a kernel panic ends QEMU (-no-reboot) instead of hanging
	// until the scenario's timeout.
	grubDefault := filepath.Join(root, "etc/default/grub")
	b, err := os.ReadFile(grubDefault)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(grubDefault, []byte(strings.Replace(string(b), `GRUB_CMDLINE_LINUX="console=ttyS0 no_timer_check"`, `GRUB_CMDLINE_LINUX="console=ttyS0 no_timer_check panic=-1"`, 1)), 0o644); err != nil {
		return "", err
	}
	script := `set -e
mount -t proc proc "$R/proc"
mount -t sysfs sys "$R/sys"
# A /dev of its own: the host has no udev links, and grub-mkconfig writes
# root=UUID= only when /dev/disk/by-uuid/UUID exists (else the loop device).
mount -t tmpfs -o mode=755 dev "$R/dev"
cp -a /dev/null /dev/zero /dev/full /dev/random /dev/urandom "$LOOP" "${LOOP}p1" "$R/dev/"
mkdir -p "$R/dev/disk/by-uuid" "$R/dev/pts" "$R/dev/shm"
ln -s "../../${LOOP##*/}p1" "$R/dev/disk/by-uuid/$(blkid -s UUID -o value "${LOOP}p1")"
# grub-probe finds no BIOS drive for a loop device without a device map.
printf '(hd0) %s\n' "$LOOP" >"$R/boot/grub/device.map"
chroot "$R" /bin/sh -ec '
depmod ` + release + `
dpkg -i /tmp/kjump.deb
rm /tmp/kjump.deb
systemctl enable kjump-workload.service kjump-e2e.service
update-initramfs -c -k ` + release + `
update-grub
'
rm "$R/boot/grub/device.map"
grep -E "^[[:space:]]*linux" "$R/boot/grub/grub.cfg"
`
	cmd := exec.CommandContext(s.Ctx, "unshare", "-m", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "R="+root, "LOOP="+loop)
	o, err := cmd.CombinedOutput()
	s.T.Logf("installing the kernel and kjump on the boot disk:\n%s", o)
	if err != nil {
		return "", fmt.Errorf("installing into the boot disk: %v: %s", err, lastLines(string(o), 15))
	}
	if !regexp.MustCompile(`linux\s+/boot/vmlinuz-` + regexp.QuoteMeta(release) + ` root=UUID=`).Match(o) {
		return "", fmt.Errorf("update-grub made no entry for /boot/vmlinuz-%s", release)
	}
	s.T.Logf("boot disk ready: %s", time.Since(start).Round(time.Second))
	return disk, nil
}
