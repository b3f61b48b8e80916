//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "write-eio-jumps-back", CPUs: 2, Timeout: 20 * time.Minute, Run: func(s *S) error { return writeEIOJumpsBack(s, "") }})
	register(Scenario{Name: "write-eio-jumps-back-linux7.3", Timeout: 40 * time.Minute, Run: func(s *S) error { return writeEIOJumpsBack(s, "7.3") }})
	register(Scenario{Name: "enospc-jumps-back", CPUs: 2, Timeout: 20 * time.Minute, Run: enospcJumpsBack})
	register(Scenario{Name: "power-loss-during-write", CPUs: 2, Timeout: 25 * time.Minute, Run: powerLossDuringWrite})
	register(Scenario{Name: "enospc-nfs-jumps-back", CPUs: 3, Timeout: 25 * time.Minute, Run: enospcNFSJumpsBack})
}

// verifyTarget runs after the helper jumped back: the target must hold no
// committed image (resume image verify exits 3: not committed).
const verifyTarget = `
/bin/resume image verify /dev/vda   # by path: busybox sh has a "resume" applet
echo "HIB verify rc=$?"
`

// eioOffset is where the image disk fails: 100 MiB into it, well inside
// the ~300 MiB image of a machine running the 256 MiB workload.
const eioOffset = 100 << 20

// writeEIOJumpsBack: the image disk fails writes at one sector (QEMU's
// blkdebug under the virtio disk, so the helper kernel sees the failure).
// The helper must stop, jump back, and the original's hibernate must say
// what failed, where, and what to do; no committed image may exist and the
// machine keeps running with its memory intact.
func writeEIOJumpsBack(s *S, version string) error {
	h, m, err := startHibernating(s, version, withWriteEIO(eioOffset), withScript("", verifyTarget))
	if err != nil {
		return err
	}
	msg, err := expectJumpedBack(s, h, m, "/dev/vda", "input/output error", "WRITE failed on /dev/vda at sector",
		"dmesg", "choose another target", "this machine keeps running", "no image was committed")
	if err != nil {
		return err
	}
	// The kernel names the first sector of the failed request, which
	// covers the bad one (requests are at most a few MiB here).
	sm := regexp.MustCompile(`at sector (\d+), byte offset (\d+)`).FindStringSubmatch(msg)
	if sm == nil {
		return fmt.Errorf("no sector and offset in %q", msg)
	}
	if off := atoi(sm[2]); off > eioOffset || off < eioOffset-(8<<20) || off != 512*atoi(sm[1]) {
		return fmt.Errorf("reported offset %s does not cover the failing byte offset %d", sm[2], eioOffset)
	}
	return expectRunningAfter(m)
}

// enospcJumpsBack: first a target far smaller than the estimated image is
// refused before any jump; then a 256 MiB target, larger than the estimate
// but smaller than the real ~300 MiB image, fills up while the helper
// writes: "target full", jump back, nothing committed.
func enospcJumpsBack(s *S) error {
	small := `
hibernate now --to /dev/vdc
echo "HIB small rc=$?"
`
	h, m, err := startHibernating(s, "", withImageDisk(256), withSmallDisk(64), withScript(small, verifyTarget))
	if err != nil {
		return err
	}
	rc, err := m.Expect(`HIB small rc=(\d+)`, 5*time.Minute)
	if err != nil {
		return err
	}
	con := m.Console()
	refusal := con[:strings.Index(con, rc[0])]
	refusal = refusal[strings.LastIndex(refusal, "WORKLOAD ready"):]
	for _, w := range []string{"/dev/vdc", "has room for", "estimated at", "of RAM in use", "choose a larger target", "nothing was changed"} {
		if !strings.Contains(refusal, w) {
			return fmt.Errorf("pre-jump refusal of a 64 MiB target does not say %q: %q", w, refusal)
		}
	}
	if rc[1] == "0" || strings.Contains(refusal, "jumping to the helper") {
		return fmt.Errorf("a 64 MiB target was not refused before the jump: %q", refusal)
	}
	if _, err := expectJumpedBack(s, h, m, "target full", "/dev/vda", "choose a larger target", "this machine keeps running", "no image was committed"); err != nil {
		return err
	}
	// Before jumping, hibernate said the target may be too small.
	warn := regexp.MustCompile(`hibernate: target /dev/vda has room for (\S+ \S+): enough for the estimated (\S+ \S+) image, not for the worst case of (\S+ \S+)`).FindStringSubmatch(m.Console())
	if warn == nil {
		return fmt.Errorf("hibernate did not warn that the 256 MiB target is below the worst case")
	}
	fmt.Printf("  enospc-jumps-back: 256 MiB target: room %s, estimate %s, worst case %s\n", warn[1], warn[2], warn[3])
	return expectRunningAfter(m)
}

// expectJumpedBack follows a `hibernate now` whose helper fails: the helper
// starts writing, fails, jumps back; hibernate exits non-zero printing an
// error with every one of wants; resume image verify finds nothing
// committed. It prints how long each step took.
func expectJumpedBack(s *S, h *hibernated, m *vm.Machine, wants ...string) (string, error) {
	if _, err := m.ExpectString("HIB before counter=", 5*time.Minute); err != nil {
		return "", err
	}
	if _, err := m.ExpectString("kjump-helper: writing image", 5*time.Minute); err != nil {
		return "", err
	}
	if _, err := m.Expect(`kjump-helper: failed: .*; jumping back`, 10*time.Minute); err != nil {
		return "", err
	}
	msg, err := m.Expect(`hibernate now: (.*)`, 5*time.Minute)
	if err != nil {
		return "", err
	}
	for _, w := range wants {
		if !strings.Contains(msg[1], w) {
			return "", fmt.Errorf("hibernate's error does not say %q: %q", w, msg[1])
		}
	}
	if _, err := m.ExpectString("HIB now rc=1", time.Minute); err != nil {
		return "", err
	}
	if _, err := m.Expect(`resume image: an unfinished image from .* on /dev/vda .*hibernation was interrupted before it committed`, 5*time.Minute); err != nil {
		return "", err
	}
	if _, err := m.ExpectString("HIB verify rc=3", time.Minute); err != nil {
		return "", err
	}
	t, err := consoleTimes(m.ConsolePath(), "hibernate: now: jumping to the helper kernel", "kjump-helper: up in", "kjump-helper: writing image",
		"kjump-helper: failed:", "hibernate now:")
	if err != nil {
		return "", err
	}
	fmt.Printf("  %s: helper up %.1fs after the jump, writing at %.1fs, failed at %.1fs, original printed the error at %.1fs (host seconds)\n",
		s.Name, t[1]-t[0], t[2]-t[0], t[3]-t[0], t[4]-t[0])
	fmt.Printf("  %s: %s\n", s.Name, msg[1])
	return msg[1], nil
}

// expectRunningAfter checks the machine carried on after a failed
// hibernation: both CPUs, a ticking workload with its checksum intact, and
// the script ran to its end.
func expectRunningAfter(m *vm.Machine) error {
	if err := expectWorkloadAfterJumpBack(m, false); err != nil {
		return err
	}
	if _, err := m.ExpectString("E2E exit rc=0", time.Minute); err != nil {
		return err
	}
	return m.Wait(time.Minute)
}

// expectWorkloadAfterJumpBack checks both CPUs are back and the workload's
// memory is intact after the helper jumped back; its counter must not go
// back, and with advance it must have moved on.
func expectWorkloadAfterJumpBack(m *vm.Machine, advance bool) error {
	con := m.Console()
	ready := regexp.MustCompile(`WORKLOAD ready .* checksum=(\w+)`).FindStringSubmatch(con)
	if ready == nil {
		return fmt.Errorf("no WORKLOAD ready line")
	}
	if cpus, err := m.Expect(`HIB cpus=(\S+)`, time.Minute); err != nil {
		return err
	} else if cpus[1] != "0-1" {
		return fmt.Errorf("CPUs online after the jump back: %s, want 0-1", cpus[1])
	}
	after, err := m.Expect(`HIB after counter=(\d+)`, time.Minute)
	if err != nil {
		return err
	}
	before, _ := intMatch(`HIB before counter=(\d+)`, con, 1)
	if atoi(after[1]) < before || advance && atoi(after[1]) == before {
		return fmt.Errorf("workload counter did not advance: %d before, %s after", before, after[1])
	}
	v, err := m.Expect(`WORKLOAD VERIFY ok checksum=(\w+)`, 2*time.Minute)
	if err != nil {
		return err
	}
	if v[1] != ready[1] {
		return fmt.Errorf("workload checksum %s after the jump back, %s before", v[1], ready[1])
	}
	return nil
}

// powerLossDuringWrite pulls the plug (kills QEMU) while the helper is
// half-way through the image. The next boot's resume finds no committed
// image, says there is an unfinished one from the time hibernation started,
// and the machine boots normally.
func powerLossDuringWrite(s *S) error {
	h, m, err := startHibernating(s, "")
	if err != nil {
		return err
	}
	before, err := m.Expect(`HIB before counter=\d+ date=(\d+)`, 5*time.Minute)
	if err != nil {
		return err
	}
	if _, err := m.Expect(`kjump-helper: saved\s+50%`, 10*time.Minute); err != nil {
		return err
	}
	m.Kill()
	if strings.Contains(m.Console(), "image committed") {
		return fmt.Errorf("the helper committed before the power was cut; cut earlier")
	}
	r, err := h.bootResume(s, "resume-after-power-loss")
	if err != nil {
		return err
	}
	msg, err := r.Expect(`resume: no image to resume: an unfinished image from (\S+ \S+) UTC on /dev/vda \(image \w+\): hibernation was interrupted before it committed, so it cannot be resumed`, 5*time.Minute)
	if err != nil {
		return err
	}
	if _, err := r.ExpectString("booting normally", time.Minute); err != nil {
		return err
	}
	at, err := time.Parse("2006-01-02 15:04:05", msg[1])
	if err != nil {
		return err
	}
	if d := at.Unix() - int64(atoi(before[1])); d < -5 || d > 300 {
		return fmt.Errorf("unfinished image dated %s, but hibernation started at %s", at, time.Unix(int64(atoi(before[1])), 0).UTC())
	}
	if err := expectAll(r, time.Minute, "HIB resume rc=0", "HIB booted normally", "E2E exit rc=0"); err != nil {
		return err
	}
	if strings.Contains(r.Console(), "restore kernel") {
		return fmt.Errorf("a restore kernel was started for an unfinished image")
	}
	fmt.Printf("  %s: %s\n", s.Name, strings.TrimSpace(msg[0]))
	return r.Wait(time.Minute)
}

// consoleTimes returns the host time (seconds since QEMU started) of the
// first console line containing each of subs, in order.
func consoleTimes(path string, subs ...string) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([]float64, len(subs))
	i := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() && i < len(subs) {
		l := sc.Text()
		if !strings.Contains(l, subs[i]) {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(l, "["), "]")
		v, err := strconv.ParseFloat(strings.TrimSpace(ts), 64)
		if err != nil {
			return nil, fmt.Errorf("console line without time: %q", l)
		}
		out[i] = v
		i++
	}
	if i < len(subs) {
		return nil, fmt.Errorf("console log has no %q", subs[i])
	}
	return out, nil
}

// enospcNFSJumpsBack: the same over NFS: a 250 MiB export, larger than the
// estimate, fills up while the helper writes through its own NFS client.
// The helper jumps back, hibernate says the target is full, and the export
// holds no image, not even the temporary file.
func enospcNFSJumpsBack(s *S) error {
	server, err := s.startNFSServer(250)
	if err != nil {
		return err
	}
	kernel, initrd, err := s.jumpingBoot("", nfsClientMount+workloadStart+`
echo "NFS before counter=$(cat /run/kjump-workload/counter)"
hibernate checkpoint --to /mnt/nfs/ckpt
echo "NFS checkpoint rc=$?"
echo "NFS export holds: [$(ls -A /mnt/nfs | tr '\n' ' ')]"
echo "HIB cpus=$(cat /sys/devices/system/cpu/online)"
sleep 2   # as every scenario: the thawed workload ticks once a second
echo "HIB after counter=$(cat /run/kjump-workload/counter)"
kjump-workload verify
`)
	if err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Name: "client", Kernel: kernel, Initrd: initrd, SMP: 2, Append: region,
		Net: &vm.Net{Port: server.port, MAC: nfsClientMAC}})
	if err != nil {
		return err
	}
	before, err := m.Expect(`NFS before counter=(\d+)`, 5*time.Minute)
	if err != nil {
		return err
	}
	warn, err := m.Expect(`hibernate: target /mnt/nfs/ckpt has room for (\S+ \S+): enough for the estimated (\S+ \S+) image, not for the worst case of (\S+ \S+)`, 3*time.Minute)
	if err != nil {
		return err
	}
	if _, err := m.Expect(`kjump-helper: failed: .*; jumping back`, 10*time.Minute); err != nil {
		return err
	}
	msg, err := m.Expect(`hibernate checkpoint: (.*)`, 5*time.Minute)
	if err != nil {
		return err
	}
	for _, w := range []string{nfsServerAddr + ":/export/ckpt", "full", "this machine keeps running", "no image was committed"} {
		if !strings.Contains(msg[1], w) {
			return fmt.Errorf("hibernate's error does not say %q: %q", w, msg[1])
		}
	}
	if _, err := m.ExpectString("NFS checkpoint rc=1", time.Minute); err != nil {
		return err
	}
	ls, err := m.Expect(`NFS export holds: \[(.*)\]`, time.Minute)
	if err != nil {
		return err
	}
	if strings.TrimSpace(ls[1]) != "" {
		return fmt.Errorf("the export still holds %q after the failed checkpoint", ls[1])
	}
	t, err := consoleTimes(m.ConsolePath(), "hibernate: checkpoint: jumping to the helper kernel", "kjump-helper: writing image",
		"kjump-helper: failed:", "hibernate checkpoint:")
	if err != nil {
		return err
	}
	fmt.Printf("  %s: export room %s, estimate %s, worst case %s; writing %.1fs after the jump, failed at %.1fs, original printed the error at %.1fs\n",
		s.Name, warn[1], warn[2], warn[3], t[1]-t[0], t[2]-t[0], t[3]-t[0])
	fmt.Printf("  %s: %s\n", s.Name, msg[1])
	if err := expectRunningAfter(m); err != nil {
		return err
	}
	if after, _ := intMatch(`HIB after counter=(\d+)`, m.Console(), 1); after <= atoi(before[1]) {
		return fmt.Errorf("workload counter did not advance: %s before, %d after", before[1], after)
	}
	server.m.SendConsole("poweroff -f\n")
	return server.m.Wait(time.Minute)
}
