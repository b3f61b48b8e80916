//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/storage"
	"github.com/kjump/kjump/internal/vm"
)

// The helper never strands the machine (issue 16 section 4): whatever
// happens to the target or to the helper's memory while it writes, the
// original comes back and says what happened.
func init() {
	register(Scenario{Name: "nfs-server-lost-jumps-back", CPUs: 3, Timeout: 25 * time.Minute, Run: func(s *S) error { return nfsServerLostJumpsBack(s, false) }})
	register(Scenario{Name: "nfs-hard-mount-lost-jumps-back", CPUs: 3, Timeout: 25 * time.Minute, Run: func(s *S) error { return nfsServerLostJumpsBack(s, true) }})
	register(Scenario{Name: "helper-oom-jumps-back", CPUs: 2, Timeout: 20 * time.Minute, Run: helperOOMJumpsBack})
	register(Scenario{Name: "target-pulled-jumps-back", CPUs: 2, Timeout: 20 * time.Minute, Run: func(s *S) error { return targetPulledJumpsBack(s, "") }})
}

// midWrite matches the helper's progress line once a tenth of the image or
// more is written: the moment to pull the target.
const midWrite = `kjump-helper: saved\s+[1-9]\d%`

// nfsServerLostJumpsBack: the NFS server stops answering while the helper
// writes a checkpoint to it. The server VM is stopped (QEMU's "stop": for
// the client exactly a lost server, since nothing answers, while its export
// survives to prove that nothing was committed). Within 90 s the original
// runs again and names the server; then the server answers again and the
// export holds no image, and the original's own mount works.
//
// hard mounts the export in the helper without timeouts (the test knob
// kjump.test_nfs_hard, as the helper did before it mounted soft): the
// capture then blocks in the kernel for good, and only PID 1's watchdog,
// the forced unmount and the retried jump (a task blocked on the server
// cannot be frozen) bring the original back.
func nfsServerLostJumpsBack(s *S, hard bool) error {
	args := ""
	if hard {
		args = " --helper-args kjump.test_nfs_hard"
	}
	server, err := s.startNFSServer(0)
	if err != nil {
		return err
	}
	kernel, initrd, err := s.jumpingBoot("", nfsClientMount+workloadStart+`
echo "HIB before counter=$(cat /run/kjump-workload/counter)"
hibernate checkpoint --to /mnt/nfs/ckpt`+args+`
echo "NFS checkpoint rc=$?"
echo "HIB cpus=$(cat /sys/devices/system/cpu/online)"
sleep 2   # the thawed workload ticks once a second
echo "HIB after counter=$(cat /run/kjump-workload/counter)"
kjump-workload verify || return 1
echo "NFS waiting for the server"
read -r _
/bin/resume image verify /mnt/nfs/ckpt   # by path: busybox sh has a "resume" applet
echo "NFS verify rc=$?"
echo "NFS export holds: [$(ls -A /mnt/nfs | tr '\n' ' ')]"
`)
	if err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Name: "client", Kernel: kernel, Initrd: initrd, SMP: 2, Append: region,
		Net: &vm.Net{Port: server.port, MAC: nfsClientMAC}})
	if err != nil {
		return err
	}
	if _, err := m.Expect(`kjump-helper: writing image`, 8*time.Minute); err != nil {
		return err
	}
	if _, err := m.Expect(midWrite, 5*time.Minute); err != nil {
		return err
	}
	if out, err := server.m.Monitor("stop", time.Minute); err != nil || out != "" {
		return fmt.Errorf("stopping the NFS server: %q, %v", out, err)
	}
	lost := time.Now()
	if _, err := m.Expect(`kjump-helper: failed: .*; jumping back`, 5*time.Minute); err != nil {
		return err
	}
	msg, err := m.Expect(`hibernate checkpoint: (.*)`, 5*time.Minute)
	if err != nil {
		return err
	}
	back := time.Since(lost)
	wants := []string{nfsServerAddr, "this machine keeps running", "no image was committed"}
	if hard {
		wants = append(wants, "helper watchdog: no progress for 1m0s", "the NFS server "+nfsServerAddr+" stopped answering")
	}
	for _, w := range wants {
		if !strings.Contains(msg[1], w) {
			return fmt.Errorf("hibernate's error does not say %q: %q", w, msg[1])
		}
	}
	fmt.Printf("  %s: server lost mid-write; the original printed the error %.1fs later: %s\n", s.Name, back.Seconds(), msg[1])
	if state, ok := match(`kjump-helper: (ending the capture worker .*)`, m.Console()); ok {
		fmt.Printf("  %s: %s\n", s.Name, state)
	}
	// Soft: the first request that times out (5 + 10 + 15 s) ends the
	// capture. Hard: nothing fails, the page cache fills, progress stops,
	// and the 60 s watchdog ends it.
	within := 90 * time.Second
	if hard {
		within = 3 * time.Minute
	}
	if back > within {
		return fmt.Errorf("the original ran again %s after the server was lost, want within %s", back.Round(time.Second), within)
	}
	if _, err := m.ExpectString("NFS checkpoint rc=1", time.Minute); err != nil {
		return err
	}
	if err := expectWorkloadAfterJumpBack(m, true); err != nil {
		return err
	}
	if _, err := m.ExpectString("NFS waiting for the server", time.Minute); err != nil {
		return err
	}
	// The server answers again: nothing committed is on the export (the
	// helper could not remove its unfinished file while the server was
	// gone, which resume reports as unfinished, never as an image).
	if out, err := server.m.Monitor("cont", time.Minute); err != nil || out != "" {
		return fmt.Errorf("continuing the NFS server: %q, %v", out, err)
	}
	if err := m.SendConsole("go\n"); err != nil {
		return err
	}
	rc, err := m.Expect(`NFS verify rc=(\d+)`, 5*time.Minute)
	if err != nil {
		return err
	}
	ls, err := m.Expect(`NFS export holds: \[(.*)\]`, time.Minute)
	if err != nil {
		return err
	}
	// 3: the file is there, nothing committed in it; 5: the image file
	// does not exist (a file image is published by renaming ckpt.tmp last).
	if rc[1] != "3" && rc[1] != "5" {
		return fmt.Errorf("resume image verify on the export exited %s, want 3 or 5 (no committed image); the export holds %q", rc[1], ls[1])
	}
	for _, f := range strings.Fields(ls[1]) {
		if f == "ckpt" {
			return fmt.Errorf("the export holds a committed image file: %q", ls[1])
		}
	}
	fmt.Printf("  %s: after the server came back the export holds [%s]; resume image verify exits %s\n", s.Name, strings.TrimSpace(ls[1]), rc[1])
	if _, err := m.ExpectString("E2E exit rc=0", time.Minute); err != nil {
		return err
	}
	if err := m.Wait(time.Minute); err != nil {
		return err
	}
	server.m.SendConsole("poweroff -f\n")
	return server.m.Wait(time.Minute)
}

// helperOOMJumpsBack: the helper's capture runs out of memory (the test
// knob kjump.test_oom makes its worker allocate until the kernel's OOM
// killer ends it). PID 1 survives, jumps back, and the original names the
// cause and the fix; nothing is committed and the machine keeps running.
func helperOOMJumpsBack(s *S) error {
	h, m, err := startHibernating(s, "", func(o *hibSetup) { o.hibArgs = "--helper-args kjump.test_oom" }, withScript("", verifyTarget))
	if err != nil {
		return err
	}
	if _, err := expectJumpedBack(s, h, m, "helper ran out of memory at", "the kernel's OOM killer ended the capture worker", "reserve more with helper.reserve", "fewer workers",
		"this machine keeps running", "no image was committed"); err != nil {
		return err
	}
	if l, ok := match(`(Out of memory: Killed process \d+ \(kjump-capture\).*)`, m.Console()); ok {
		fmt.Printf("  %s: helper kernel: %s\n", s.Name, l)
	} else if l, ok := match(`(Out of memory: Killed process .*)`, m.Console()); ok {
		// The kernel names the victim by its thread group leader's name.
		return fmt.Errorf("the helper kernel's OOM kill does not name the capture worker: %s", l)
	} else {
		return fmt.Errorf("the helper kernel's log has no OOM kill")
	}
	return expectRunningAfter(m)
}

// targetPulledJumpsBack: the image disk is hot-unplugged (QEMU monitor,
// device_del of its virtio-blk PCI device, or with opts the USB stick
// it is on) while the helper writes. The helper jumps back; the original
// names the disk and keeps running; the disk holds no committed image.
func targetPulledJumpsBack(s *S, version string, opts ...hibOption) error {
	h, m, err := startHibernating(s, version, append([]hibOption{func(o *hibSetup) { o.unpluggable = true },
		withScript("", `echo "HIB disks after: $(ls /sys/block | tr '\n' ' ')"`)}, opts...)...)
	if err != nil {
		return err
	}
	if _, err := m.ExpectString("HIB before counter=", 5*time.Minute); err != nil {
		return err
	}
	if _, err := m.ExpectString("kjump-helper: writing image", 5*time.Minute); err != nil {
		return err
	}
	if _, err := m.Expect(midWrite, 5*time.Minute); err != nil {
		return err
	}
	if err := m.UnplugDisk(0); err != nil {
		return err
	}
	pulled := time.Now()
	if _, err := m.Expect(`kjump-helper: failed: .*; jumping back`, 5*time.Minute); err != nil {
		return err
	}
	msg, err := m.Expect(`hibernate now: (.*)`, 5*time.Minute)
	if err != nil {
		return err
	}
	for _, w := range []string{"the disk " + h.device + " vanished while the image was being written", "this machine keeps running", "no image was committed"} {
		if !strings.Contains(msg[1], w) {
			return fmt.Errorf("hibernate's error does not say %q: %q", w, msg[1])
		}
	}
	fmt.Printf("  %s: disk pulled mid-write; the original printed the error %.1fs later: %s\n", s.Name, time.Since(pulled).Seconds(), msg[1])
	if _, err := m.ExpectString("HIB now rc=1", time.Minute); err != nil {
		return err
	}
	if present, err := m.DiskPresent(0); err != nil || present {
		return fmt.Errorf("QEMU still has the pulled disk (%v, %v)", present, err)
	}
	if err := expectRunningAfter(m); err != nil {
		return err
	}
	return notCommitted(h.imageDisk, h.imageOffset)
}

// notCommitted checks on the host, through a loop device and kjump's own
// storage and image code, that a raw disk image holds no committed image
// at byte offset off (its partition).
func notCommitted(disk string, off int64) error {
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", "--offset", fmt.Sprint(off), disk).Output()
	if err != nil {
		return fmt.Errorf("losetup: %w", err)
	}
	loop := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", loop).Run()
	t, err := storage.Open(loop)
	if err != nil {
		return err
	}
	r, err := image.OpenTarget(t)
	if err == nil {
		r.Close()
		return fmt.Errorf("%s holds a committed image after the disk was pulled mid-write", disk)
	}
	if !errors.Is(err, image.ErrNotCommitted) {
		return fmt.Errorf("reading %s: %w", disk, err)
	}
	return nil
}
