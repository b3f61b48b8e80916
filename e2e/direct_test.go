//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

// Direct boot (issue 19): the boot loader starts the helper kernel and
// initramfs straight from the entry `resume boot-entry` prints, confined to
// the reserved region; its PID 1 does resume's checks and restores in
// place. One kernel boot between power-on and the original waking, instead
// of a normal boot plus the restore kernel.
func init() {
	register(Scenario{Name: "direct-boot-resume", CPUs: 2, Timeout: 40 * time.Minute, Run: func(s *S) error { return directBootResume(s, "") }})
	register(Scenario{Name: "direct-boot-resume-linux7.3", Timeout: 50 * time.Minute, Run: func(s *S) error { return directBootResume(s, "7.3") }})
	register(Scenario{Name: "direct-boot-refuses-falls-back", CPUs: 2, Timeout: 30 * time.Minute, Run: directBootRefusesFallsBack})
}

// directEntryScript runs in the original before `hibernate now`: it prints
// the direct boot entry between markers, and the SHA-256 of the two files
// it names, which the test compares with the host files it boots.
func directEntryScript(target string) string {
	return strings.ReplaceAll(`
/bin/resume boot-entry --from $TARGET >/tmp/entry 2>/tmp/entry.err
echo "HIB entry rc=$?"
echo "HIB entry begin"
cat /tmp/entry
echo "HIB entry end"
cat /tmp/entry.err
for f in $(awk '$1 == "linux" || $1 == "initrd" {print $2}' /tmp/entry); do
  echo "HIB entry file $(sha256sum "$f")"
done
`, "$TARGET", target)
}

// directBoot is what the host boots for a direct entry: the entry's files
// (host copies, checked against the guest's checksums) and its options,
// as a boot loader would.
type directBoot struct {
	entry          vm.DirectEntry
	kernel, initrd string // host paths
}

// hibernateForDirect hibernates as hibernate-resume does, with the boot
// entry printed before `hibernate now`, and returns the direct boot that
// entry describes. The helper files are the host's: the helper kernel is
// the test kernel, the helper initramfs the one helperFiles built in the
// run directory and put into the guest at /boot/kjump/helper.cpio.gz
// (there is no `hibernate prepare` in the guest for the built-in-driver
// test kernels). Their checksums in the guest must match.
func hibernateForDirect(s *S, version string, opts ...hibOption) (*hibernated, *directBoot, error) {
	h, err := hibernateOnce(s, version, append([]hibOption{withScript(directEntryScript("/dev/vda")+freedRandom, "")}, opts...)...)
	if err != nil {
		return nil, nil, err
	}
	con := h.consoleText
	if rc, ok := match(`HIB entry rc=(\d+)`, con); !ok || rc != "0" {
		return nil, nil, fmt.Errorf("resume boot-entry failed (rc=%q): %s", rc, sectionOf(con, "HIB entry rc=", "HIB before counter="))
	}
	e, err := vm.ParseDirectEntry(con, "HIB entry begin", "HIB entry end")
	if err != nil {
		return nil, nil, fmt.Errorf("boot entry: %w: %s", err, sectionOf(con, "HIB entry begin", "HIB before counter="))
	}
	fmt.Printf("  %s: entry: linux %s, initrd %s, options %s\n", s.Name, e.Linux, e.Initrd, e.Options)
	d := &directBoot{entry: e, kernel: h.kernel, initrd: filepath.Join(s.Dir, "helper.cpio.gz")}
	for _, f := range []struct{ guest, host string }{{e.Linux, d.kernel}, {e.Initrd, d.initrd}} {
		sum, ok := match(`(?m)HIB entry file (\w+)  `+regexp.QuoteMeta(f.guest)+`\s*$`, con)
		if !ok {
			return nil, nil, fmt.Errorf("no checksum of the entry's %s in the guest (does it exist?)", f.guest)
		}
		hs, err := fileSHA(f.host)
		if err != nil {
			return nil, nil, err
		}
		if hs != sum {
			return nil, nil, fmt.Errorf("the entry's %s (sha256 %s) is not the host's %s (%s)", f.guest, sum, f.host, hs)
		}
	}
	for _, want := range []string{"kjump.direct=", "kjump.resume="} {
		if !strings.Contains(e.Options, want) {
			return nil, nil, fmt.Errorf("the entry's options lack %s: %q", want, e.Options)
		}
	}
	return h, d, nil
}

// bootDirect starts the hibernated machine's disks with the direct entry
// instead of a normal boot. vm adds console=ttyS0, panic=-1 and
// no_timer_check where the options lack them.
func (h *hibernated) bootDirect(s *S, name string, d *directBoot) (*vm.Machine, error) {
	return s.Start(vm.Config{Name: name, Kernel: d.kernel, Initrd: d.initrd, SMP: 2, MemMiB: h.memMiB, Append: d.entry.Options,
		Disks: append([]string{h.imageDisk, h.dataDisk}, h.extraDisks...), Bus: h.bus})
}

// directBootResume: the direct entry resumes the original (everything
// hibernate-resume checks), with one kernel boot; the image is spent
// afterwards (a second direct boot refuses and reboots, a normal boot finds
// nothing). For the timing, the same image (a copy of the disks taken
// before the direct boot) is then resumed the normal way.
func directBootResume(s *S, version string) error {
	h, d, err := hibernateForDirect(s, version)
	if err != nil {
		return err
	}
	normal := *h
	normal.imageDisk, normal.dataDisk = filepath.Join(s.Dir, "image-copy.raw"), filepath.Join(s.Dir, "data-copy.ext4")
	for _, c := range [][2]string{{h.imageDisk, normal.imageDisk}, {h.dataDisk, normal.dataDisk}} {
		if out, err := exec.Command("cp", "--sparse=always", c[0], c[1]).CombinedOutput(); err != nil {
			return fmt.Errorf("copying %s: %v: %s", c[0], err, out)
		}
	}

	m, err := h.bootDirect(s, "direct", d)
	if err != nil {
		return err
	}
	if _, err := m.ExpectString("kjump-helper: direct restore", 5*time.Minute); err != nil {
		return err
	}
	if err := h.expectResumed(m); err != nil {
		return err
	}
	con := m.Console()
	woke := strings.Index(con, "hibernate: RESUMED")
	if n := kernelsBooted(con[:woke]); n != 1 {
		return fmt.Errorf("%d kernels booted before the original woke, want 1 (the direct one)", n)
	}
	for _, normalBoot := range []string{"E2E init:", "resume: verifying", "starting the restore kernel"} {
		if strings.Contains(con[:woke], normalBoot) {
			return fmt.Errorf("the direct boot went through a normal boot: %q on its console", normalBoot)
		}
	}
	if strings.Contains(con, "direct restore refused") {
		return fmt.Errorf("the direct kernel logged a refusal and still resumed")
	}
	// The stale-disk guard ran in the direct kernel.
	if !strings.Contains(con[:woke], "kjump-helper: filesystems proven unchanged since the image: ext4 /dev/vdb") {
		return fmt.Errorf("the direct kernel did not prove the data filesystem unchanged before restoring")
	}
	direct, err := wakeTimes(m.ConsolePath(), directMarks)
	if err != nil {
		return err
	}

	// Spent: the same entry again refuses and reboots, writing nothing.
	img, err := fileSHA(h.imageDisk)
	if err != nil {
		return err
	}
	m2, err := h.bootDirect(s, "direct-again", d)
	if err != nil {
		return err
	}
	refusal, err := expectDirectRefusal(m2)
	if err != nil {
		return err
	}
	if !strings.Contains(refusal, "no image to resume") || !strings.Contains(refusal, "already used or refused (invalidated)") {
		return fmt.Errorf("the second direct boot's refusal does not say the image is spent: %q", refusal)
	}
	if after, err := fileSHA(h.imageDisk); err != nil {
		return err
	} else if after != img {
		return fmt.Errorf("the refused direct boot changed the image disk")
	}
	fmt.Printf("  %s: second direct boot: %s\n", s.Name, refusal)
	m3, err := h.bootResume(s, "resume-after-direct")
	if err != nil {
		return err
	}
	if _, err := m3.Expect(`resume: no image to resume: image \w+ on /dev/vda was already used or refused \(invalidated\)`, 5*time.Minute); err != nil {
		return err
	}
	if err := expectAll(m3, time.Minute, "HIB resume rc=0", "HIB booted normally", "E2E exit rc=0"); err != nil {
		return err
	}
	if err := m3.Wait(time.Minute); err != nil {
		return err
	}

	// The same image the normal way, for the comparison.
	n, err := normal.resumeWhole(s, "normal-resume")
	if err != nil {
		return fmt.Errorf("normal resume of the copied disks: %w", err)
	}
	two, err := wakeTimes(n.ConsolePath(), normalMarks)
	if err != nil {
		return err
	}
	fmt.Printf("  %s: power-on to original awake: direct %.1fs (%s); normal %.1fs (%s)\n", s.Name, direct.total, direct.phases, two.total, two.phases)
	return nil
}

// directBootRefusesFallsBack: the direct kernel refuses before the point
// of no return, reboots, and the normal boot that follows behaves as it
// does without direct boot. First a corrupt index (as
// corrupt-image-refused): the direct kernel refuses without writing to
// either disk, and the normal boot refuses the image too and boots on.
// Then, the index repaired, another boot writes to the data filesystem the
// original had mounted (as stale-disk-refused), the data-loss guard: the
// direct kernel must prove the change, refuse, never write that
// filesystem, and invalidate the image "as any boot would"
// (docs/design.md, direct restore), so the normal boot finds nothing to
// resume.
func directBootRefusesFallsBack(s *S) error {
	h, d, err := hibernateForDirect(s, "")
	if err != nil {
		return err
	}
	disks := []string{h.imageDisk, h.dataDisk}
	sums := func() ([]string, error) {
		out := make([]string, len(disks))
		for i, p := range disks {
			var err error
			if out[i], err = fileSHA(p); err != nil {
				return nil, err
			}
		}
		return out, nil
	}

	// A corrupt index.
	f, err := os.OpenFile(h.imageDisk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := rawImageLen(f)
	if err != nil {
		return err
	}
	idx := rawImageOffset + n - 8192 - 1 // as corrupt-image-refused
	if err := flipByte(f, idx); err != nil {
		return err
	}
	before, err := sums()
	if err != nil {
		return err
	}
	m, err := h.bootDirect(s, "direct-corrupt", d)
	if err != nil {
		return err
	}
	refusal, err := expectDirectRefusal(m)
	if err != nil {
		return err
	}
	if !strings.Contains(refusal, "image is corrupt") {
		return fmt.Errorf("the direct kernel's refusal does not say the image is corrupt: %q", refusal)
	}
	if after, err := sums(); err != nil {
		return err
	} else if after[0] != before[0] || after[1] != before[1] {
		return fmt.Errorf("the direct kernel refused a corrupt image but wrote to a disk (image %v, data %v)", after[0] != before[0], after[1] != before[1])
	}
	fmt.Printf("  %s: direct kernel, corrupt index: %s\n", s.Name, refusal)
	r, err := h.bootResume(s, "resume-corrupt")
	if err != nil {
		return err
	}
	if _, err := normalBootRefusesCorrupt(r); err != nil {
		return err
	}
	if err := r.Wait(time.Minute); err != nil {
		return err
	}
	if err := flipByte(f, idx); err != nil {
		return err
	}

	// A stale data disk.
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
	if before, err = sums(); err != nil {
		return err
	}
	m, err = h.bootDirect(s, "direct-stale", d)
	if err != nil {
		return err
	}
	if refusal, err = expectDirectRefusal(m); err != nil {
		return err
	}
	for _, want := range []string{"stale and was invalidated", "ext4 on /dev/vdb", "changed since hibernation", "was: mounts=0", "now: mounts=1"} {
		if !strings.Contains(refusal, want) {
			return fmt.Errorf("the direct kernel's refusal does not say %q: %q", want, refusal)
		}
	}
	if after, err := sums(); err != nil {
		return err
	} else if after[1] != before[1] {
		return fmt.Errorf("the direct kernel wrote to the stale data disk")
	}
	fmt.Printf("  %s: direct kernel, stale disk: %s\n", s.Name, refusal)
	r, err = h.bootResume(s, "resume-after-stale")
	if err != nil {
		return err
	}
	if _, err := r.Expect(`resume: no image to resume: image \w+ on /dev/vda was already used or refused \(invalidated\)`, 5*time.Minute); err != nil {
		return err
	}
	if err := expectAll(r, time.Minute, "HIB resume rc=0", "HIB booted normally", "E2E exit rc=0"); err != nil {
		return err
	}
	if strings.Contains(r.Console(), "restore kernel") {
		return fmt.Errorf("a restore kernel was started for a stale image")
	}
	return r.Wait(time.Minute)
}

// flipByte flips a bit of the byte at off and syncs.
func flipByte(f *os.File, off int64) error {
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		return err
	}
	return f.Sync()
}

// expectDirectRefusal waits for the direct kernel's refusal and for it to
// reboot (QEMU ends: -no-reboot), never jumping into the original.
func expectDirectRefusal(m *vm.Machine) (string, error) {
	if _, err := m.ExpectString("kjump-helper: direct restore", 5*time.Minute); err != nil {
		return "", err
	}
	r, err := m.Expect(`kjump-helper: direct restore refused: (.*); rebooting into a normal boot`, 5*time.Minute)
	if err != nil {
		return "", err
	}
	e, err := m.WaitExit(2 * time.Minute)
	if err != nil {
		return "", err
	}
	con := m.Console()
	if e.PowerDown || e.Panic != "" || e.Killed || !strings.Contains(m.Console(), "reboot: Restarting system") {
		return "", fmt.Errorf("the refusing direct kernel should reboot, got %+v", e)
	}
	for _, bad := range []string{"jumping into the restored", "hibernate: RESUMED", "kjump-helper: restoring"} {
		if strings.Contains(con, bad) {
			return "", fmt.Errorf("the direct kernel refused but went on: %q on its console", bad)
		}
	}
	return r[1], nil
}

// Console lines that start the phases of a resume machine, from QEMU's
// start (power-on) to the original's first words after the jump.
var (
	directMarks = []mark{{Name: "kernel boot", Line: ""}, {Name: "checks", Line: "kjump-helper: direct restore"}, {Name: "restore", Line: "kjump-helper: restoring"},
		{Name: "jump back", Line: "jumping into the restored"}, {Name: "", Line: "hibernate: RESUMED"}}
	normalMarks = []mark{{Name: "boot", Line: ""}, {Name: "verify", Line: "resume: verifying"}, {Name: "restore kernel boot", Line: "verified and invalidated"},
		{Name: "restore", Line: "kjump-helper: restoring"}, {Name: "jump back", Line: "jumping into the restored"}, {Name: "", Line: "hibernate: RESUMED"}}
)

type mark = vm.Mark // phase name, console line that starts it ("" = QEMU start)

type wake struct {
	total  float64 // s from QEMU start to the last mark
	phases string
}

// wakeTimes reads a console log ("[host seconds] line") and returns the
// time to the last mark and each phase's share.
func wakeTimes(path string, marks []mark) (wake, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return wake{}, err
	}
	at := vm.MarkTimes(b, marks)
	w := wake{total: at[len(marks)-1], phases: vm.Phases(marks, at)}
	if w.total < 0 {
		return w, fmt.Errorf("%s: no %q line", path, marks[len(marks)-1].Line)
	}
	return w, nil
}

// fileSHA is a file's SHA-256, hex.
func fileSHA(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sectionOf is the console text from the line holding from up to the one
// holding to (or its end), for error messages.
func sectionOf(con, from, to string) string {
	i := strings.Index(con, from)
	if i < 0 {
		return fmt.Sprintf("(no %q on the console)", from)
	}
	s := con[i:]
	if j := strings.Index(s, to); j >= 0 {
		s = s[:j]
	}
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return strings.TrimSpace(s)
}

// kernelsBooted counts the kernels a console shows starting: a banner for
// each normal boot, and the up line of each quiet kjump helper or restore
// kernel (they boot with quiet, so without a banner).
func kernelsBooted(con string) int {
	return strings.Count(con, "Linux version ") + strings.Count(con, "kjump-helper: up in ") + strings.Count(con, "kjump-helper: direct restore: up in ")
}
