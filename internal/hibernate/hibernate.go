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

	"github.com/kjump/kjump/internal/bootonce"
	"github.com/kjump/kjump/internal/fsstate"
	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/launch"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/resolve"
	"github.com/kjump/kjump/internal/storage"
	"github.com/kjump/kjump/internal/sysinfo"
)

// Options select the helper and what it does.
type Options struct {
	Mode         handoff.Mode // Checkpoint, Now or Probe
	HelperKernel string       // bzImage of the helper kernel
	HelperInitrd string       // its initramfs (kjump's static binary as /init)
	HelperArgs   string       // extra helper command line; console= is inherited
	Target       string
	Level        string // a token of image.ParseLevel; "" for the helper's default
	Compression  string // "auto", "zstd" or "s2"; "" for the helper's default
	Threads      int
	// Watchdog is helper.watchdog: seconds without progress before the
	// helper aborts the capture and jumps back (0: its default).
	Watchdog int
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
	// BootOnce, for Now, is the GRUB that boots the direct restore entry
	// on the next power-on (nil: resume through a normal boot).
	BootOnce *bootonce.GRUB
	// System, when set, is this kernel as Check just read it (kallsyms,
	// memory map: 0.2 s under emulation), else the jump reads it.
	System *System
}

func (o Options) logf() func(string, ...any) {
	if o.Log == nil {
		return func(string, ...any) {}
	}
	return o.Log
}

func (o Options) kernel() launch.Kernel {
	return launch.Kernel{Path: o.HelperKernel, Initrd: o.HelperInitrd, Args: o.HelperArgs}
}

// Outcome is what a completed jump reports.
type Outcome struct {
	Result   handoff.Result
	Away     time.Duration // wall time between jump and return
	Plan     *layout.HelperPlan
	Symbols  sysinfo.Symbols
	Returned bool
}

// System is a snapshot of what the running kernel tells about itself.
type System = sysinfo.System

// ReadSystem gathers the kernel facts a plan needs.
func ReadSystem() (*System, error) { return sysinfo.Read() }

// ResolveTarget resolves a target an image would be read from or written
// to, changing nothing (see internal/resolve).
func ResolveTarget(spec string) (handoff.TargetSpec, error) { return resolve.Target(spec) }

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
		return fmt.Errorf("kernel %s has no kexec support (CONFIG_KEXEC): use a kernel built with CONFIG_KEXEC=y and CONFIG_KEXEC_JUMP=y", sysinfo.KernelRelease())
	}
	return nil
}

// checkKexecJump returns where it learnt that the kernel has KEXEC_JUMP.
func checkKexecJump() error { _, err := kexecJumpSource(); return err }

func kexecJumpSource() (string, error) {
	cfg, ok, err := sysinfo.ReadKernelConfig()
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
	return fmt.Errorf("kernel %s was built without CONFIG_KEXEC_JUMP (%s): kjump needs a kernel with CONFIG_KEXEC_JUMP=y (see docs/setup.md); nothing was changed", sysinfo.KernelRelease(), source)
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

// ImageFileSize is the size of a preallocated image file for ram bytes of
// RAM: room for an image of incompressible, non-zero memory (zstd adds
// well under 1%, chunk records and the header a few MiB).
func ImageFileSize(ram uint64) uint64 { return ram + ram/64 + 16<<20 }

// planHere checks this kernel and lays out the helper for it.
func planHere(o Options) (*System, *layout.HelperPlan, error) {
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
	plan, err := launch.Plan(sys, o.kernel(), false)
	return sys, plan, err
}

// Jump runs one kexec jump: it returns when the helper jumps back. A helper
// told to power off never returns. Its phases: plan the helper, say what
// it must do, load it, hand over, jump, read its report.
func Jump(o Options) (*Outcome, error) {
	logf := o.logf()
	sys, plan, err := planHere(o)
	if err != nil {
		return nil, err
	}
	in, err := instructions(o, sys, plan, logf)
	if err != nil {
		return nil, err
	}
	l, err := launch.Open(plan, logf)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	rearm, err := loadHelper(l, in.Convention, logf)
	if err != nil {
		return nil, err
	}
	defer rearm()
	mark := markLoaded() // lock.go: checked again right before the jump
	// Before handOver's sync and fingerprints: arming writes to /boot.
	defer armBootOnce(o, sys, logf)()
	if err := handOver(l, &in, o, logf); err != nil {
		jump.Unload()
		return nil, err
	}
	logf("%s: jumping to the helper kernel", o.Mode)
	if err := mark.stillOurs(); err != nil {
		// Another program replaced or unloaded the helper: never jump
		// into an image kjump did not load.
		return nil, err
	}
	away, err := l.Jump()
	if in.Target.File != nil {
		// The helper wrote the file's blocks on the device: forget our copy.
		storage.DropCache(in.Target.File.Path)
	}
	if err != nil {
		return nil, err
	}
	return helperReport(l, o, sys, away)
}

// instructions are what the helper is told: where to write, how, and how
// to come back.
func instructions(o Options, sys *System, plan *layout.HelperPlan, logf func(string, ...any)) (handoff.Instructions, error) {
	in := handoff.Instructions{Mode: o.Mode, Convention: sys.Symbols.JumpConvention(), Region: plan.Region(),
		Backup: plan.Backup.Start, JumpStub: plan.JumpStub, Threads: o.Threads, Watchdog: o.Watchdog,
		KeepFree: o.KeepFree || pagePoisoning(sys.Cmdline), Release: sysinfo.KernelRelease(),
		Issued: time.Now().UTC(), Extra: map[string]string{}, Key: o.Key}
	var err error
	in.SavedContext, err = sys.Symbols.SavedContextAddr(sys.IOMem)
	if err != nil && in.Convention.NeedsSavedGDT() {
		return in, err
	}
	if in.Target, err = target(o, sys, plan, logf); err != nil {
		return in, err
	}
	if in.Level, in.Compression, err = codec(o); err != nil {
		return in, err
	}
	in.Hostname, _ = os.Hostname()
	in.BootID = bootID()
	kcfg, found, _ := sysinfo.ReadKernelConfig() // unreadable: free pages are zeroed
	zeroed, why := zeroesFreePages(sys.Cmdline, kcfg, found)
	in.DiscardFree = !zeroed
	in.Extra["free_pages_zeroed"] = fmt.Sprintf("%v (%s)", zeroed, why)
	return in, nil
}

// codec reads the level and codec tokens; "" leaves the helper's default.
func codec(o Options) (level image.Level, c image.Compression, err error) {
	if o.Level != "" {
		if level, err = image.ParseLevel(o.Level); err != nil {
			return 0, 0, err
		}
	}
	if o.Compression != "" {
		if c, err = image.ParseCompression(o.Compression); err != nil {
			return 0, 0, err
		}
	}
	return level, c, nil
}

// target resolves where the image goes (preallocating an image file) and
// checks it has room. Without one only a probe or checkpoint may run.
func target(o Options, sys *System, plan *layout.HelperPlan, logf func(string, ...any)) (handoff.TargetSpec, error) {
	if o.Target == "" {
		if o.Mode == handoff.Now {
			return handoff.TargetSpec{}, fmt.Errorf("no target: give --to with a raw partition, UUID=, LABEL= or an NFS path")
		}
		return handoff.TargetSpec{}, nil
	}
	ram := layout.OriginalRAM(sys.IOMem, plan.Region())
	ts, err := resolve.Prepare(o.Target, int64(ImageFileSize(ram.Size())), logf)
	if err != nil {
		return ts, err
	}
	if err := overrideNet(&ts, o.NetInterface, o.NetAddress); err != nil {
		return ts, err
	}
	warning, err := checkRoom(o.Target, ts, ram)
	if err != nil {
		return ts, err
	}
	if warning != "" {
		logf("%s", warning)
	}
	return ts, nil
}

// loadHelper loads the helper unless kjump-preload.service did and it is
// provably ours. A preload is spent by the jump: rearm loads it again for
// the next hibernate.
func loadHelper(l *launch.Launch, conv jump.Convention, logf func(string, ...any)) (rearm func(), err error) {
	plan := l.Plan
	ok, why := preloaded(plan.Image)
	rearm = func() {}
	if ok || why != "" {
		rearm = func() {
			if err := loadAndRecord(plan.Image); err != nil {
				logf("could not preload the helper again: %v (the next hibernate loads it)", err)
			} else {
				logf("helper preloaded again for the next hibernate")
			}
		}
	}
	if ok {
		logf("using the helper preloaded at boot: region %v, helper RAM %v, handoff %#x, %s", plan.Tail, plan.HelperRAM, plan.Handoff, conv)
		return rearm, nil
	}
	if why != "" {
		logf("not using the preloaded helper: %s; loading it now", why)
	}
	if err := l.Load(); err != nil {
		return nil, err
	}
	logf("helper loaded: region %v, helper RAM %v, handoff %#x, %s", plan.Tail, plan.HelperRAM, plan.Handoff, conv)
	return rearm, nil
}

// handOver syncs, takes the stale-disk guard's fingerprints and writes the
// instructions. Fingerprints last, after the sync: they must match the
// disks as the image will find them at resume.
func handOver(l *launch.Launch, in *handoff.Instructions, o Options, logf func(string, ...any)) error {
	unix.Sync()
	var err error
	if in.Filesystems, err = fsstate.Mounted("/proc/self/mountinfo"); err != nil {
		return err
	}
	if err := unprovenRefusal(in.Filesystems, o.AllowUnproven, logf); err != nil {
		return err
	}
	return l.Write(*in)
}

// helperReport reads what the helper did; a failed helper is an error, and
// this machine keeps running.
func helperReport(l *launch.Launch, o Options, sys *System, away time.Duration) (*Outcome, error) {
	out := &Outcome{Away: away, Plan: l.Plan, Symbols: sys.Symbols, Returned: true}
	r, err := l.Result()
	if err != nil {
		return out, err
	}
	out.Result = *r
	if !r.OK {
		where := ""
		if o.Target != "" {
			where = " on " + o.Target
		}
		committed := "no image was committed" + where
		if r.Details["commit_uncertain"] == "true" {
			committed = "the helper stopped while committing the image" + where
		}
		return out, fmt.Errorf("hibernation failed, this machine keeps running: the helper stopped after %.1fs and jumped back (away %s); %s: %s",
			r.Seconds, away.Round(100*time.Millisecond), committed, r.Error)
	}
	return out, nil
}

// overrideNet applies the configured helper network to an NFS target.
func overrideNet(t *handoff.TargetSpec, ifname, addr string) error {
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

// armBootOnce makes the next power-on boot the direct restore entry when
// o asks for it and the image can be restored that way; the returned
// func disarms it once this kernel runs again (a failed hibernation, or
// a resume: GRUB cleared it then, unless it could not write grubenv). A
// failure to arm only costs speed: the normal boot resumes.
func armBootOnce(o Options, sys *System, logf func(string, ...any)) (disarm func()) {
	g := o.BootOnce
	if o.Mode != handoff.Now || g == nil {
		return func() {}
	}
	err := bootonce.ErrEncrypted
	var e bootonce.Entry
	if o.Key == nil {
		if e, err = bootonce.NewEntry(sys, o.kernel(), o.Target); err == nil {
			err = g.Arm(e)
		}
	}
	if err != nil {
		logf("the next power-on resumes through a normal boot, not directly: %v", err)
	} else {
		logf("the next power-on restores directly: GRUB boots %s once (%s/kjump-direct.cfg)", bootonce.ID, g.Dir)
	}
	return func() {
		if cleared, err := g.Disarm(); err != nil {
			logf("could not clear GRUB's one-shot direct restore entry: %v (the boot after the next one is normal either way)", err)
		} else if cleared {
			logf("GRUB's one-shot direct restore entry cleared: the next boot is a normal one")
		}
	}
}
