// Package launch starts a helper or restore kernel, the one path hibernate
// and resume share: plan the kernel in the reserved region for this
// system, write its handoff area, load it, jump, read its report, and wipe
// what it left there.
package launch

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/physmem"
	"github.com/kjump/kjump/internal/sysinfo"
)

// Kernel is the helper kernel to start: the restore kernel is the same one.
type Kernel struct {
	Path   string // bzImage
	Initrd string // its initramfs (kjump's static binary as /init)
	Args   string // extra command line; console= is inherited
}

// minReserve is the least reserved region a helper is planned in.
const minReserve = 64 << 20

// Plan lays out k for this system: a preserve-context helper that jumps
// back, or (restore) a restore kernel started by a plain kexec from a
// freshly booted kernel.
func Plan(sys *sysinfo.System, k Kernel, restore bool) (*layout.HelperPlan, error) {
	bz, err := jump.ReadBzImage(k.Path)
	if err != nil {
		return nil, err
	}
	initrd, err := os.ReadFile(k.Initrd)
	if err != nil {
		return nil, fmt.Errorf("reading helper initramfs: %w (run 'hibernate prepare')", err)
	}
	region, err := layout.FindReservation(sys.Cmdline, sys.IOMem, minReserve)
	if err != nil {
		return nil, err
	}
	return layout.PlanHelper(layout.HelperConfig{Kernel: bz, Initrd: initrd, Region: region,
		Cmdline: Cmdline(sys.Cmdline) + " " + k.Args, Firmware: sys.Firmware,
		IOMem: sys.IOMem, VMCoreInfo: sys.VMCoreInfo, ACPIRSDP: sys.ACPIRSDP, Restore: restore})
}

// Cmdline is the helper's (and restore kernel's) command line: quiet, the
// original's console settings, and no_timer_check: the IO-APIC timer check
// only proves what the original's boot on this same machine already
// proved, and under emulation on a busy host it panics kernels whose timer
// works. quiet keeps errors on the console and drops the boot log, which
// on a serial console took 0.5-0.8 s of each helper boot under TCG (330
// lines); an original's loglevel= and helper.args come after it and win.
func Cmdline(cmdline string) string {
	keep := []string{"quiet"}
	for _, a := range strings.Fields(cmdline) {
		if strings.HasPrefix(a, "console=") || strings.HasPrefix(a, "earlyprintk=") || strings.HasPrefix(a, "loglevel=") {
			keep = append(keep, a)
		}
	}
	return strings.Join(append(keep, "no_timer_check"), " ")
}

// Launch is one start of a planned kernel. Close it: it wipes the reserved
// region when the instructions carried a key.
type Launch struct {
	Plan  *layout.HelperPlan
	mem   *physmem.Mem
	area  handoff.Area
	keyed bool
	logf  func(string, ...any)
}

// Open prepares to launch plan: it opens physical memory.
func Open(plan *layout.HelperPlan, logf func(string, ...any)) (*Launch, error) {
	mem, err := physmem.Open("/dev/mem", true)
	if err != nil {
		return nil, err
	}
	return &Launch{Plan: plan, mem: mem, area: handoff.Area{Mem: mem, Addr: plan.Handoff}, logf: logf}, nil
}

// Write puts the instructions in the handoff area.
func (l *Launch) Write(in handoff.Instructions) error {
	// From here the area, and after the jump the kernel's memory, may
	// hold the key: wipe the region on Close whatever happens.
	l.keyed = l.keyed || in.Key != nil
	return l.area.Write(in)
}

// Load loads the planned kernel (unless a caller knows it is loaded).
func (l *Launch) Load() error { return l.Plan.Image.Load() }

// Jump starts the loaded kernel. A helper returns here when it jumps back
// (after away, wall time); a restore kernel never returns. The loaded image
// then starts at the helper's re-entry point, which skips the jump-back
// stub, so it is unloaded: it must never run again.
func (l *Launch) Jump() (away time.Duration, err error) {
	// Wall clock, not monotonic: the original's monotonic clock stands
	// still while it is away.
	start := time.Now().Round(0)
	err = jump.Jump()
	away = time.Now().Round(0).Sub(start)
	jump.Unload()
	return away, err
}

// Result reads the helper's report and clears the area: the instructions
// may hold a key.
func (l *Launch) Result() (*handoff.Result, error) {
	h, err := l.area.Read()
	if err != nil {
		return nil, fmt.Errorf("reading the helper's report: %w", err)
	}
	if h.Result == nil {
		return nil, fmt.Errorf("the helper returned without a report")
	}
	if err := l.area.Wipe(); err != nil {
		l.logf("could not clear the handoff area: %v", err)
	}
	return h.Result, nil
}

// Close wipes the reserved region if a key went through it, and closes
// physical memory.
func (l *Launch) Close() {
	if l.keyed {
		l.wipeRegion()
	}
	l.mem.Close()
}

// wipeRegion zeroes the reserved region after a launch that carried a key:
// the handoff area held the derived key, and the helper or restore kernel
// left its memory (with key schedules) in the region. The region is not
// part of any image and nothing in it is needed after the return.
func (l *Launch) wipeRegion() {
	zero := make([]byte, 1<<20)
	region := l.Plan.Region()
	for a := region.Start; a < region.End; {
		n := min(uint64(len(zero)), region.End-a)
		if _, err := l.mem.WriteAt(zero[:n], int64(a)); err != nil {
			l.logf("could not wipe the key from the reserved region at %#x: %v", a, err)
			return
		}
		a += n
	}
	l.logf("wiped the reserved region %#x-%#x (key material)", region.Start, region.End)
}
