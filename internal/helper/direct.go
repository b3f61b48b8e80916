package helper

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/cmdline"
	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/phys"
	"github.com/kjump/kjump/internal/physmem"
	"github.com/kjump/kjump/internal/resume"
	"github.com/kjump/kjump/internal/storage"
	"github.com/kjump/kjump/internal/sysinfo"
)

// A direct restore: the boot loader started this kernel (a one-shot entry
// 'resume boot-entry' describes), confined to the reserved region by its
// command line, instead of a booted kernel's resume kexec'ing it. It does
// resume's checks itself and restores in place, one kernel boot instead of
// two. Until the image is marked restoring, any refusal reboots into the
// normal boot, which resumes the normal way; after it, a failure leaves
// the image for a retry with kjump.force=1, as a kexec'd restore kernel
// does.

// directTargetWait bounds the wait for the target's device to appear
// (USB enumeration, a module's probe).
const directTargetWait = 15 * time.Second

// directRegion reads kjump.direct=START-END from the command line line:
// ok is false for a kernel kexec started.
func directRegion(line string) (region phys.Range, ok bool, err error) {
	v, ok := cmdline.Value(line, "kjump.direct")
	if !ok {
		return phys.Range{}, false, nil
	}
	region, err = handoff.ParseRegion(v)
	if err != nil {
		return phys.Range{}, true, fmt.Errorf("kjump.direct=%q: %w", v, err)
	}
	return region, true, nil
}

// mainDirect runs a direct restore; it returns only if it could not even
// reboot.
func mainDirect(line string, region phys.Range, err error) error {
	if err == nil {
		logf("direct restore: up in %.2fs on %d CPUs (Linux %s), reserved region %s", uptime(), runtime.NumCPU(), sysinfo.KernelRelease(), handoff.RegionText(region))
		err = directRestore(line, region)
	}
	logf("direct restore refused: %v; rebooting into a normal boot", err)
	unix.Sync()
	time.Sleep(time.Second)
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	return err
}

func directRestore(line string, region phys.Range) error {
	iomem, err := sysinfo.ReadIOMem()
	if err != nil {
		return err
	}
	if err := confined(sysinfo.SystemRAM(iomem), region); err != nil {
		return err
	}
	fw, err := sysinfo.ReadFirmwareMemmap("/sys/firmware/memmap")
	if err != nil {
		return err
	}
	target, ok := cmdline.Value(line, "kjump.resume")
	if !ok || target == "" {
		return errors.New("no kjump.resume=TARGET on the command line: the boot entry names no image")
	}
	waitForTarget(target, directTargetWait)
	o := resume.Options{Target: target, Retry: cmdline.Switch(line, "kjump.force"), Log: logf,
		Here: &resume.Here{Region: region, RAM: firmwareRAM(fw).Subtract(region).Normalize(), Restore: restoreHere}}
	return resume.Run(o)
}

// confined checks that this kernel's RAM is what the command line left it:
// low memory, the guard page and the reserved region. A kernel placed
// anywhere else (KASLR off, or not honouring memmap=) runs in the
// original's RAM and must not restore into itself.
func confined(ram phys.Ranges, region phys.Range) error {
	allowed := append(layout.DirectKeep(), region).Normalize()
	for _, r := range ram {
		if !covered(allowed, r) {
			return fmt.Errorf("this kernel uses RAM %v outside the reserved region %s (the boot loader or the kernel ignored its memmap= confinement: is KASLR off, or nokaslr set?)", r, handoff.RegionText(region))
		}
	}
	return nil
}

func covered(rs phys.Ranges, r phys.Range) bool {
	for _, x := range rs {
		if x.Covers(r) {
			return true
		}
	}
	return false
}

// firmwareRAM is the firmware map's RAM, page aligned: the machine's RAM
// as a booted kernel sees it, before anything reserved part of it.
func firmwareRAM(fw []sysinfo.FirmwareEntry) phys.Ranges {
	var rs phys.Ranges
	for _, f := range fw {
		if jump.FirmwareType(f.Type) != jump.E820RAM {
			continue
		}
		if a := f.Range.PageAligned(); !a.Empty() {
			rs = append(rs, a)
		}
	}
	return rs.Normalize()
}

// waitForTarget waits until spec's device node (or tag) is there, at most
// limit; resume then opens it and names what is missing.
func waitForTarget(spec string, limit time.Duration) {
	ps, err := storage.ParseSpec(spec)
	if err != nil {
		return
	}
	present := func() bool {
		if ps.Tag != "" {
			_, err := storage.Resolve(storage.Spec{Tag: ps.Tag, Value: ps.Value}.String())
			return err == nil
		}
		if dev := strings.SplitN(spec, ":", 2)[0]; strings.HasPrefix(dev, "/dev/") {
			_, err := os.Stat(dev)
			return err == nil
		}
		return true
	}
	for deadline := time.Now().Add(limit); !present() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
}

// restoreHere writes the pages back and jumps into the original, which
// reads this restore's report in its own handoff area: that lies in this
// kernel's memory, so the jump puts it there with the original's pages.
func restoreHere(in handoff.Instructions, t storage.Target) error {
	start := time.Now()
	mem, err := physmem.Open("/dev/mem", true)
	if err != nil {
		return err
	}
	res := handoff.Result{Mode: handoff.Restore, CPUs: runtime.NumCPU(), Details: map[string]string{"direct": "true"}}
	jb, err := restoreFrom(in, t, mem, &res, layout.DirectKeep())
	if err != nil {
		return err
	}
	res.OK, res.Mode, res.Seconds = true, handoff.Resumed, time.Since(start).Seconds()
	area, err := handoff.Encode(handoff.Instructions{Mode: handoff.Restore, ImageID: in.ImageID, Region: in.Region})
	if err == nil {
		err = handoff.SetResult(area, res)
	}
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	jb.Extra = append(jb.Extra, jump.NewSegment(area, layout.HandoffAddr(in.Region)))
	im, err := jb.Image()
	if err == nil {
		err = im.Load()
	}
	if err != nil {
		return err
	}
	logf("jumping into the restored kernel at %#x", jb.Entry)
	return jump.Jump()
}
