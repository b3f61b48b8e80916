// Package hibernate is the original kernel's side of a kexec-jump
// hibernation: check the machine, lay out and load the helper kernel, hand
// it its instructions, jump, and report what the helper did once it returns.
package hibernate

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/fsstate"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/physmem"
	"github.com/kjump/kjump/internal/storage"
)

// Options select the helper and what it does.
type Options struct {
	Mode         string // "checkpoint", "now" or "probe"
	HelperKernel string // bzImage of the helper kernel
	HelperInitrd string // its initramfs (kjump's static binary as /init)
	HelperArgs   string // extra helper command line; console= is inherited
	Target       string
	Level        string
	Compression  string // "auto", "zstd" or "s2"
	Threads      int
	// KeepFree saves free pages too (image.free_pages = "keep").
	KeepFree bool
	// Key encrypts the image (see image.NewKey); nil writes a plain image.
	Key *image.Key
	// NetInterface and NetAddress override the network the helper brings
	// up for an NFS target (network.* in /etc/kjump.conf).
	NetInterface string
	NetAddress   string
	// AllowUnproven (resume.allow_unproven) accepts filesystems the
	// stale-disk guard cannot check; without it such an image would be
	// refused at resume, so the jump is refused now instead.
	AllowUnproven bool
	Log           func(format string, args ...any)
	// System, when set, is this kernel as Check just read it (kallsyms,
	// memory map: 0.2 s under emulation), else the jump reads it.
	System *System
}

// Outcome is what a completed jump reports.
type Outcome struct {
	Result   jump.Result
	Away     time.Duration // wall time between jump and return
	Plan     *jump.HelperPlan
	Symbols  jump.Symbols
	Returned bool
}

// System is a snapshot of what the running kernel tells about itself.
type System struct {
	Cmdline    string
	IOMem      []jump.Resource
	Firmware   []jump.FirmwareEntry
	Symbols    jump.Symbols
	VMCoreInfo jump.Range
}

// ReadSystem gathers the kernel facts a plan needs.
func ReadSystem() (*System, error) {
	s := &System{}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	s.Cmdline = strings.TrimSpace(string(b))
	if s.IOMem, err = jump.ReadIOMem(); err != nil {
		return nil, err
	}
	if s.Firmware, err = jump.ReadFirmwareMemmap("/sys/firmware/memmap"); err != nil {
		return nil, err
	}
	if s.Symbols, err = jump.ReadKallsyms(jump.KernelSymbolsWanted...); err != nil {
		return nil, err
	}
	if r, err := jump.ReadVMCoreInfo(); err == nil {
		s.VMCoreInfo = r
	}
	return s, nil
}

// CheckKernel refuses kernels that cannot kexec-jump, naming the fix.
// 'hibernate check' runs the same pieces one by one.
func CheckKernel() error {
	for _, c := range []func() error{checkRoot, checkKexec, checkKexecJump} {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}

func checkRoot() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root")
	}
	return nil
}

func checkKexec() error {
	if _, err := os.Stat("/sys/kernel/kexec_loaded"); err != nil {
		return fmt.Errorf("kernel %s has no kexec support (CONFIG_KEXEC): use a kernel built with CONFIG_KEXEC=y and CONFIG_KEXEC_JUMP=y", jump.KernelRelease())
	}
	return nil
}

// checkKexecJump returns where it learnt that the kernel has KEXEC_JUMP.
func checkKexecJump() error { _, err := kexecJumpSource(); return err }

func kexecJumpSource() (string, error) {
	cfg, ok, err := jump.ReadKernelConfig()
	if err != nil {
		return "", err
	}
	if ok && !cfg.Enabled("CONFIG_KEXEC_JUMP") {
		return "", noKexecJump(cfg.Source)
	}
	if ok {
		return cfg.Source, nil
	}
	// No config to read: ask the kernel. kexec_load rejects the
	// preserve-context flag outright when KEXEC_JUMP is not built in.
	// A preloaded helper already proves it, and probing would replace it.
	if p, err := os.ReadFile(PreloadRecord); err == nil && strings.Contains(string(p), bootID()) {
		return "the preloaded helper was loaded with KEXEC_PRESERVE_CONTEXT", nil
	}
	if err := probePreserveContext(); err != nil {
		return "", err
	}
	return "kexec_load accepted KEXEC_PRESERVE_CONTEXT", nil
}

func noKexecJump(source string) error {
	return fmt.Errorf("kernel %s was built without CONFIG_KEXEC_JUMP (%s): kjump needs a kernel with CONFIG_KEXEC_JUMP=y (see docs/setup.md); nothing was changed", jump.KernelRelease(), source)
}

func probePreserveContext() error {
	probe := jump.Image{Entry: 16 << 20, PreserveContext: true,
		Segments: []jump.Segment{jump.NewSegment(make([]byte, jump.PageSize), 16<<20)}}
	err := probe.Load()
	jump.Unload()
	if errors.Is(err, unix.EINVAL) {
		return noKexecJump("kexec_load refused KEXEC_PRESERVE_CONTEXT")
	}
	return err
}

// helperCmdline is the helper's (and restore kernel's) command line: the
// original's console settings, and no_timer_check: the IO-APIC timer check
// only proves what the original's boot on this same machine already
// proved, and under emulation on a busy host it panics kernels whose timer
// works.
func helperCmdline(cmdline string) string {
	var keep []string
	for _, a := range strings.Fields(cmdline) {
		if strings.HasPrefix(a, "console=") || strings.HasPrefix(a, "earlyprintk=") || strings.HasPrefix(a, "loglevel=") {
			keep = append(keep, a)
		}
	}
	return strings.Join(append(keep, "no_timer_check"), " ")
}

// pagePoisoning reports whether the kernel fills free pages with a pattern
// it checks on allocation (page_poison=1): free pages restored as zeros
// would then be reported as corrupt, so the helper keeps them.
func pagePoisoning(cmdline string) bool {
	for _, a := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(a, "page_poison="); ok {
			switch v {
			case "1", "on", "y", "yes", "true":
				return true
			}
		}
	}
	return false
}

// Plan lays out the helper for this machine.
func Plan(sys *System, o Options) (*jump.HelperPlan, error) { return plan(sys, o, false) }

// PlanRestore lays out the restore kernel: the same helper, started by a
// plain kexec from a freshly booted kernel.
func PlanRestore(sys *System, o Options) (*jump.HelperPlan, error) { return plan(sys, o, true) }

func plan(sys *System, o Options, restore bool) (*jump.HelperPlan, error) {
	k, err := jump.ReadBzImage(o.HelperKernel)
	if err != nil {
		return nil, err
	}
	initrd, err := os.ReadFile(o.HelperInitrd)
	if err != nil {
		return nil, fmt.Errorf("reading helper initramfs: %w (run 'hibernate prepare')", err)
	}
	region, err := jump.FindReservation(sys.Cmdline, sys.IOMem, 64<<20)
	if err != nil {
		return nil, err
	}
	return jump.PlanHelper(jump.HelperConfig{Kernel: k, Initrd: initrd, Region: region,
		Cmdline: helperCmdline(sys.Cmdline) + " " + o.HelperArgs, Firmware: sys.Firmware,
		IOMem: sys.IOMem, VMCoreInfo: sys.VMCoreInfo, ACPIRSDP: acpiRSDP(), Restore: restore})
}

// acpiRSDP reads the RSDP from the EFI system table when there is one; BIOS
// machines let the helper scan for it.
func acpiRSDP() uint64 {
	b, err := os.ReadFile("/sys/firmware/efi/systab")
	if err != nil {
		return 0
	}
	var v uint64
	for _, line := range strings.Fields(string(b)) {
		for _, key := range []string{"ACPI20=", "ACPI="} {
			if s, ok := strings.CutPrefix(line, key); ok && v == 0 {
				fmt.Sscanf(s, "0x%x", &v)
			}
		}
	}
	return v
}

// ImageFileSize is the size of a preallocated image file for ram bytes of
// RAM: room for an image of incompressible, non-zero memory (zstd adds
// well under 1%, chunk records and the header a few MiB).
func ImageFileSize(ram uint64) uint64 { return ram + ram/64 + 16<<20 }

// planHere checks this kernel and lays out the helper for it.
func planHere(o Options) (*System, *jump.HelperPlan, error) {
	if err := CheckKernel(); err != nil {
		return nil, nil, err
	}
	sys := o.System
	if sys == nil {
		var err error
		if sys, err = ReadSystem(); err != nil {
			return nil, nil, err
		}
	}
	plan, err := Plan(sys, o)
	return sys, plan, err
}

// Jump runs one kexec jump: it returns when the helper jumps back. A helper
// told to power off never returns.
func Jump(o Options) (*Outcome, error) {
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	sys, plan, err := planHere(o)
	if err != nil {
		return nil, err
	}
	conv := sys.Symbols.JumpConvention()
	savedCtx, err := sys.Symbols.SavedContextAddr(sys.IOMem)
	if err != nil && conv == jump.ConventionClassic {
		return nil, err
	}
	var target jump.TargetSpec
	if o.Target != "" {
		ram := jump.OriginalRAM(sys.IOMem, jump.Range{Start: plan.HelperRAM.Start, End: plan.Tail.End}).Size()
		if target, err = PrepareTarget(o.Target, int64(ImageFileSize(ram)), logf); err != nil {
			return nil, err
		}
		if err := overrideNet(&target, o.NetInterface, o.NetAddress); err != nil {
			return nil, err
		}
	} else if o.Mode == "now" {
		return nil, fmt.Errorf("no target: give --to with a raw partition, UUID=, LABEL= or an NFS path")
	}
	if o.Target != "" {
		ram := jump.OriginalRAM(sys.IOMem, jump.Range{Start: plan.HelperRAM.Start, End: plan.Tail.End})
		warning, err := checkRoom(o.Target, target, ram)
		if err != nil {
			return nil, err
		}
		if warning != "" {
			logf("%s", warning)
		}
	}
	host, _ := os.Hostname()
	bootID, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	in := jump.Instructions{Mode: o.Mode, SavedContext: savedCtx, Convention: conv.String(),
		Backup: plan.Backup.Start, JumpStub: plan.JumpStub, Target: target, Level: o.Level, Compression: o.Compression,
		Threads: o.Threads, KeepFree: o.KeepFree || pagePoisoning(sys.Cmdline), Release: jump.KernelRelease(), Hostname: host,
		BootID: strings.TrimSpace(string(bootID)), Issued: time.Now().UTC(),
		Extra: map[string]string{}, Key: o.Key}
	in.Extra["region"] = fmt.Sprintf("%#x-%#x", plan.HelperRAM.Start, plan.Tail.End)
	kcfg, found, _ := jump.ReadKernelConfig() // unreadable: free pages are zeroed
	zeroed, why := zeroesFreePages(sys.Cmdline, kcfg, found)
	in.DiscardFree = !zeroed
	in.Extra["free_pages_zeroed"] = fmt.Sprintf("%v (%s)", zeroed, why)
	mem, err := physmem.Open("/dev/mem", true)
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	// A preload (kjump-preload.service) stays in use only while provably
	// ours; afterwards the loaded image is spent, so load it again then.
	ok, why := preloaded(plan.Image)
	repreload := ok || why != ""
	if ok {
		logf("using the helper preloaded at boot: region %v, helper RAM %v, handoff %#x, %s", plan.Tail, plan.HelperRAM, plan.Handoff, conv)
	} else {
		if why != "" {
			logf("not using the preloaded helper: %s; loading it now", why)
		}
		if err := plan.Image.Load(); err != nil {
			return nil, err
		}
		logf("helper loaded: region %v, helper RAM %v, handoff %#x, %s", plan.Tail, plan.HelperRAM, plan.Handoff, conv)
	}
	if repreload {
		defer func() {
			if err := loadAndRecord(plan.Image); err != nil {
				logf("could not preload the helper again: %v (the next hibernate loads it)", err)
			} else {
				logf("helper preloaded again for the next hibernate")
			}
		}()
	}
	unix.Sync()
	// Fingerprints last, after the sync: they must match the disks as the
	// image will find them at resume.
	if in.Filesystems, err = fsstate.Mounted("/proc/self/mountinfo"); err != nil {
		jump.Unload()
		return nil, err
	}
	if err := unprovenRefusal(in.Filesystems, o.AllowUnproven, logf); err != nil {
		jump.Unload()
		return nil, err
	}
	handoff, err := jump.EncodeHandoff(in)
	if err == nil {
		_, err = mem.WriteAt(handoff, int64(plan.Handoff))
		clear(handoff)
		if o.Key != nil {
			// Runs after the report is read: after a checkpoint, after a
			// resume (the restore kernel's key), and when the jump failed.
			defer WipeRegion(mem, plan, logf)
		}
	}
	if err != nil {
		jump.Unload()
		return nil, fmt.Errorf("writing the handoff area: %w", err)
	}
	logf("%s: jumping to the helper kernel", o.Mode)
	// Wall clock, not monotonic: the original's monotonic clock stands
	// still while it is away.
	start := time.Now().Round(0)
	jerr := jump.Jump()
	away := time.Now().Round(0).Sub(start)
	if target.File != nil {
		// The helper wrote the file's blocks on the device: forget our copy.
		storage.DropCache(target.File.Path)
	}
	// The loaded image now starts at the helper's re-entry point, which
	// skips the jump-back stub: never run it again.
	jump.Unload()
	if jerr != nil {
		return nil, jerr
	}
	out := &Outcome{Away: away, Plan: plan, Symbols: sys.Symbols, Returned: true}
	buf := make([]byte, jump.HandoffSize)
	if _, err := mem.ReadAt(buf, int64(plan.Handoff)); err != nil {
		return out, fmt.Errorf("reading the helper's report: %w", err)
	}
	h, err := jump.DecodeHandoff(buf)
	if err != nil {
		return out, err
	}
	if h.Result == nil {
		return out, fmt.Errorf("the helper returned without a report")
	}
	// The instructions may hold a key: do not leave them lying around.
	if _, err := mem.WriteAt(make([]byte, jump.HandoffSize), int64(plan.Handoff)); err != nil {
		logf("could not clear the handoff area: %v", err)
	}
	out.Result = *h.Result
	if !h.Result.OK {
		where := ""
		if o.Target != "" {
			where = " on " + o.Target
		}
		return out, fmt.Errorf("hibernation failed, this machine keeps running: the helper stopped after %.1fs and jumped back (away %s); no image was committed%s: %s",
			h.Result.Seconds, away.Round(100*time.Millisecond), where, h.Result.Error)
	}
	return out, nil
}

// WipeRegion zeroes the reserved region after a jump that carried a key:
// the handoff area held the derived key, and the helper or restore kernel
// left its memory (with key schedules) in the region. The region is not
// part of any image and nothing in it is needed after the return.
func WipeRegion(mem *physmem.Mem, plan *jump.HelperPlan, logf func(string, ...any)) {
	zero := make([]byte, 1<<20)
	start, end := plan.HelperRAM.Start, plan.Tail.End
	for a := start; a < end; {
		n := min(uint64(len(zero)), end-a)
		if _, err := mem.WriteAt(zero[:n], int64(a)); err != nil {
			logf("could not wipe the key from the reserved region at %#x: %v", a, err)
			return
		}
		a += n
	}
	logf("wiped the reserved region %#x-%#x (key material)", start, end)
}

// overrideNet applies the configured helper network to an NFS target.
func overrideNet(t *jump.TargetSpec, ifname, addr string) error {
	if t.Net == nil || ifname == "" && addr == "" {
		return nil
	}
	if ifname != "" {
		b, err := os.ReadFile("/sys/class/net/" + ifname + "/address")
		if err != nil {
			return fmt.Errorf("network.interface %q: no such interface: fix network.interface in /etc/kjump.conf", ifname)
		}
		t.Net.MAC = strings.TrimSpace(string(b))
	}
	if addr != "" {
		t.Net.Address = addr
	}
	return nil
}

// unprovenRefusal refuses to jump when resume would refuse the image
// because a mounted filesystem cannot be proven unchanged: better a
// machine that keeps running than an image that cannot be used.
func unprovenRefusal(fps []image.Fingerprint, allow bool, logf func(string, ...any)) error {
	var names []string
	for _, f := range fps {
		if r := fsstate.Unproven(f); r != "" {
			names = append(names, fmt.Sprintf("%s (%s, UUID %s): %s", f.Device, f.Type, f.UUID, r))
		}
	}
	switch {
	case len(names) == 0:
		return nil
	case allow:
		logf("warning: resume will not be able to prove these filesystems unchanged (accepted by resume.allow_unproven): %s", strings.Join(names, "; "))
		return nil
	}
	return fmt.Errorf("resume would refuse this image: kjump cannot prove these mounted filesystems unchanged at resume: %s; unmount them, or set resume.allow_unproven = true in kjump.conf if nothing else can write them", strings.Join(names, "; "))
}
