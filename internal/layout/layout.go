// Package layout plans the helper (or restore) kernel inside the reserved
// region: where its kernel, initramfs, page tables, purgatory and the
// handoff area go, the e820 map and ELF core header it boots with, and
// which memory is the original's.
package layout

import (
	"fmt"
	"strings"

	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/jump/purgatory"
	"github.com/kjump/kjump/internal/sysinfo"
)

// DefaultMinWorkRAM is the least memory the helper needs beyond its kernel
// and initramfs to run the image writer.
const DefaultMinWorkRAM = 48 << 20

// HelperConfig is everything needed to plan the helper image.
type HelperConfig struct {
	Kernel     *jump.BzImage
	Initrd     []byte
	Cmdline    string // appended to the helper's command line (console=, loglevel=)
	Region     Reservation
	Firmware   []sysinfo.FirmwareEntry // /sys/firmware/memmap of the original
	IOMem      []sysinfo.Resource      // /proc/iomem of the original
	VMCoreInfo Range                   // the original's VMCOREINFO note; may be empty
	ACPIRSDP   uint64
	MinWorkRAM uint64 // 0: DefaultMinWorkRAM
	// Restore plans a restore kernel for a plain kexec from a freshly
	// booted kernel instead of a preserve-context helper.
	Restore bool
}

// HelperPlan is the laid-out helper image.
type HelperPlan struct {
	Image     jump.Image
	Handoff   uint64 // physical address of the handoff area
	JumpStub  uint64 // page reserved for the helper's jump-back stub
	Backup    Range  // where the purgatory saves [0, jump.LowMemSize)
	HelperRAM Range  // the part of the region the helper may use
	Tail      Range  // top of the region, reserved for kjump's own pages
	E820      []jump.E820Entry
	Loads     []jump.CoreLoad // the original's RAM as the helper's /proc/vmcore shows it
	Cmdline   string
}

// Region is the whole reserved region: the helper's RAM and kjump's tail.
// An image records it; the key wipe clears it.
func (p *HelperPlan) Region() Range { return Range{Start: p.HelperRAM.Start, End: p.Tail.End} }

// OriginalRAM is the memory a hibernation image must hold: the kernel's
// System RAM, page aligned, minus the helper's reservation.
func OriginalRAM(iomem []sysinfo.Resource, region Range) Ranges {
	var rs Ranges
	for _, r := range sysinfo.SystemRAM(iomem) {
		if a := r.PageAligned(); !a.Empty() {
			rs = append(rs, a)
		}
	}
	return rs.Subtract(region).Normalize()
}

// PlanHelper lays out the reserved region, top down:
//
//	region.End  ┬ handoff area (handoff.Size)
//	            │ jump-back stub page, purgatory, boot_params, command line,
//	            │ ELF core header, identity page tables
//	tail.Start  ┴ low-memory backup (jump.LowMemSize)
//	            ┬ initrd (top of the helper's RAM)
//	            │ free: the helper's working memory
//	region.Start┴ kernel (aligned load address, init_size bytes)
func PlanHelper(c HelperConfig) (*HelperPlan, error) {
	if c.MinWorkRAM == 0 {
		c.MinWorkRAM = DefaultMinWorkRAM
	}
	region := c.Region.Range
	if region.Start%PageSize != 0 || region.End%PageSize != 0 {
		return nil, fmt.Errorf("reserved region %v is not page aligned", region)
	}
	if region.Start < 1<<20 {
		return nil, fmt.Errorf("reserved region %v starts below 1 MiB; reserve memory above 16 MiB", region)
	}
	t, err := planTail(c)
	if err != nil {
		return nil, err
	}
	p := &t.HelperPlan
	kernelAddr := alignUp(region.Start, c.Kernel.KernelAlignment)
	kernelEnd := kernelAddr + alignUp(c.Kernel.InitSize, PageSize)
	initrd := RangeOf(alignDown(p.Tail.Start-uint64(len(c.Initrd)), PageSize), uint64(len(c.Initrd)))
	p.HelperRAM = Range{Start: region.Start, End: p.Tail.Start}
	if initrd.Start < kernelEnd || initrd.Start-kernelEnd < c.MinWorkRAM {
		need := (kernelEnd - region.Start) + alignUp(uint64(len(c.Initrd)), PageSize) + c.MinWorkRAM + p.Tail.Size()
		return nil, fmt.Errorf("reserved region %v (%d MiB) is too small for the helper: its kernel needs %d MiB, its initramfs %d MiB, kjump %d MiB, plus %d MiB to work; reserve at least %d MiB",
			region, region.Size()>>20, (kernelEnd-kernelAddr)>>20, uint64(len(c.Initrd))>>20, p.Tail.Size()>>20, c.MinWorkRAM>>20, need>>20+1)
	}
	p.Cmdline = strings.Join(strings.Fields(fmt.Sprintf("%s nokaslr elfcorehdr=%#x@%#x kjump.handoff=%#x panic=-1",
		c.Cmdline, len(t.elfHdr), t.elfAddr, p.Handoff)), " ")
	if uint64(len(p.Cmdline)) >= t.cmdlineSize {
		return nil, fmt.Errorf("helper command line is %d bytes, limit %d", len(p.Cmdline), t.cmdlineSize-1)
	}
	if p.E820, err = helperE820(c.Firmware, p); err != nil {
		return nil, err
	}
	bp, err := jump.BootParams{Kernel: c.Kernel, Cmdline: t.cmdAddr, CmdlineLen: len(p.Cmdline), Initrd: initrd,
		E820: p.E820, ACPIRSDP: c.ACPIRSDP}.Build()
	if err != nil {
		return nil, err
	}
	purg, err := purgatory.Build(purgatory.Params{Handoff: p.Handoff, BackupSrc: 0, BackupDst: p.Backup.Start,
		BackupLen: jump.LowMemSize, PML4: t.pt.PML4, PML5: t.pt.PML5, BootParams: t.bpAddr, KernelEntry: c.Kernel.Entry64(kernelAddr)})
	if err != nil {
		return nil, err
	}
	p.Image = jump.Image{
		Entry:           t.purgAddr,
		PreserveContext: !c.Restore,
		Segments: []jump.Segment{
			{Buf: c.Kernel.Payload, Mem: kernelAddr, MemSize: kernelEnd - kernelAddr},
			jump.NewSegment(c.Initrd, initrd.Start),
			jump.NewSegment(t.elfHdr, t.elfAddr),
			jump.NewSegment(t.pt.Pages, t.ptAddr),
			jump.NewSegment(append([]byte(p.Cmdline), 0), t.cmdAddr),
			jump.NewSegment(bp, t.bpAddr),
			jump.NewSegment(purg, t.purgAddr),
		},
	}
	if err := p.Image.Validate(); err != nil {
		return nil, fmt.Errorf("internal: helper image: %w", err)
	}
	return p, nil
}

// tail is the top of the region as planTail lays it out: the plan's
// handoff, stub, backup and tail, and where the other small pieces go.
type tail struct {
	HelperPlan
	purgAddr, bpAddr, cmdAddr, elfAddr, ptAddr uint64
	cmdlineSize                                uint64
	elfHdr                                     []byte
	pt                                         jump.IdentityMap
}

// planTail lays out kjump's pages at the top of the region. Sizes first,
// addresses second: the tail's size depends on the ELF header and page
// tables, which do not depend on where they sit.
func planTail(c HelperConfig) (*tail, error) {
	region := c.Region.Range
	loads, err := coreLoads(OriginalRAM(c.IOMem, region), 0)
	if err != nil {
		return nil, err
	}
	elfProbe, err := jump.ElfCoreHeader(loads, c.VMCoreInfo)
	if err != nil {
		return nil, err
	}
	mapped := Ranges{{Start: 0, End: jump.LowMemSize}, region}
	ptSize := uint64(len(jump.NewIdentityMap(0, mapped).Pages))
	t := &tail{cmdlineSize: alignUp(uint64(max(c.Kernel.CmdlineSize, 2048)), PageSize)}
	top := region.End
	take := func(size uint64) uint64 { top -= alignUp(size, PageSize); return top }
	t.Handoff = take(handoff.Size)
	t.JumpStub = take(PageSize)
	t.purgAddr = take(uint64(purgatory.Size()))
	t.bpAddr = take(PageSize)
	t.cmdAddr = take(t.cmdlineSize)
	t.elfAddr = take(uint64(len(elfProbe)))
	t.ptAddr = take(ptSize)
	t.Backup = RangeOf(take(jump.LowMemSize), jump.LowMemSize)
	t.Tail = Range{Start: top, End: region.End}

	if loads, err = coreLoads(OriginalRAM(c.IOMem, region), t.Backup.Start); err != nil {
		return nil, err
	}
	t.Loads = loads
	if t.elfHdr, err = jump.ElfCoreHeader(loads, c.VMCoreInfo); err != nil {
		return nil, err
	}
	if len(t.elfHdr) != len(elfProbe) {
		return nil, fmt.Errorf("internal: ELF core header size changed while planning")
	}
	t.pt = jump.NewIdentityMap(t.ptAddr, mapped)
	return t, nil
}

// helperE820 is the helper's memory map: low memory (its SMP trampoline)
// and its RAM usable, kjump's tail reserved.
func helperE820(fw []sysinfo.FirmwareEntry, p *HelperPlan) ([]jump.E820Entry, error) {
	var lowRAM Ranges
	for _, f := range fw {
		if jump.FirmwareType(f.Type) == jump.E820RAM {
			if r := f.Intersect(Range{Start: 0, End: jump.LowMemSize}).PageAligned(); !r.Empty() {
				lowRAM = append(lowRAM, r)
			}
		}
	}
	if len(lowRAM) == 0 {
		return nil, fmt.Errorf("firmware memory map has no RAM below 640 KiB for the helper's SMP trampoline")
	}
	return HelperMemoryMap(fw, append(lowRAM, p.HelperRAM), Ranges{p.Tail}), nil
}

// coreLoads describes ram for the ELF core header; the low-memory part is
// read from the backup area at backup (0 while only sizing).
func coreLoads(ram Ranges, backup uint64) ([]jump.CoreLoad, error) {
	if len(ram) == 0 {
		return nil, fmt.Errorf("no System RAM found in /proc/iomem")
	}
	var loads []jump.CoreLoad
	low := Range{Start: 0, End: jump.LowMemSize}
	for _, r := range ram {
		if l := r.Intersect(low); !l.Empty() {
			loads = append(loads, jump.CoreLoad{PAddr: l.Start, Source: backup + l.Start, Size: l.Size()})
		}
		for _, h := range (Ranges{r}).Subtract(low) {
			loads = append(loads, jump.CoreLoad{PAddr: h.Start, Source: h.Start, Size: h.Size()})
		}
	}
	return loads, nil
}
