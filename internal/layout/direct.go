package layout

import (
	"fmt"
	"sort"

	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/sysinfo"
)

// A restore kernel the boot loader starts directly (no kexec from a booted
// kernel, so nobody hands it an e820 map confined to the reserved region)
// is confined by its command line instead: every firmware RAM range outside
// the region, from 1 MiB up, is marked reserved with memmap=SIZE$START. Its
// KASLR decompressor avoids those ranges when it places the kernel, which
// leaves the region (arch/x86/boot/compressed/kaslr.c, mem_avoid_memmap),
// and the kernel proper never uses them as RAM (e820: reserved outranks
// RAM where they overlap, firmware types outrank reserved). Low memory
// below 1 MiB stays RAM, as for a kexec'd restore kernel: its SMP
// trampoline lives there, and the jump back puts the original's copy in
// place.

// DirectMaxRanges is how many memmap= ranges the KASLR decompressor
// honours (MAX_MEMMAP_REGIONS); with more it stops avoiding them and may
// place the kernel in the original's RAM.
const DirectMaxRanges = 4

// DirectMinAddr is the lowest address KASLR places a kernel at
// (LOAD_PHYSICAL_ADDR, CONFIG_PHYSICAL_START's default): the region must
// lie above it.
const DirectMinAddr = 16 << 20

// DirectGuard is the page at 1 MiB, which a directly booted restore kernel
// keeps as RAM. A reserved range starting at 1 MiB would merge with the
// firmware's reserved BIOS area just below it into one range that starts
// below 1 MiB, which Linux marks busy (e820 do_mark_busy), and under
// IO_STRICT_DEVMEM /dev/mem cannot map a busy range: the restore could not
// write the original's RAM there. The kernel may use the page; the
// original's copy of it travels in the jump back, like low memory.
var DirectGuard = Range{Start: 1 << 20, End: 1<<20 + PageSize}

// DirectKeep is the RAM outside the region a directly booted restore
// kernel uses: low memory and the guard page.
func DirectKeep() Ranges {
	return Ranges{{Start: 0, End: jump.LowMemSize}, DirectGuard}
}

// DirectArgs is the command line that confines a kernel started by the
// boot loader to region (and DirectKeep) on the machine whose firmware
// memory map is fw, and tells kjump's init it is a direct restore:
// kjump.direct=START-END. It refuses maps KASLR cannot be made to honour.
func DirectArgs(fw []sysinfo.FirmwareEntry, region Range) ([]string, error) {
	if region.Start < DirectMinAddr || region.Start%PageSize != 0 || region.End%PageSize != 0 {
		return nil, fmt.Errorf("reserved region %v cannot hold a kernel the boot loader starts: it must be page aligned and start at or above %#x, where KASLR places kernels", region, DirectMinAddr)
	}
	var ram Ranges
	for _, f := range fw {
		if jump.FirmwareType(f.Type) == jump.E820RAM {
			ram = append(ram, f.Range)
		}
	}
	ram = ram.Normalize()
	if !covers(ram, region) {
		return nil, fmt.Errorf("reserved region %v is not RAM in the firmware memory map %v", region, ram)
	}
	var outside Ranges
	for _, r := range ram.Subtract(region) {
		if r = r.Intersect(Range{Start: DirectGuard.End, End: ^uint64(0)}); !r.Empty() {
			outside = append(outside, r.PageAligned())
		}
	}
	outside = mergeCovered(outside, fw, region)
	if len(outside) > DirectMaxRanges {
		return nil, fmt.Errorf("this machine's RAM outside the reserved region is %d separate ranges (%v); a kernel the boot loader starts can be kept out of at most %d (KASLR's memmap= limit): resume through a normal boot", len(outside), outside, DirectMaxRanges)
	}
	var args []string
	for _, r := range outside {
		args = append(args, fmt.Sprintf("memmap=%#x$%#x", r.Size(), r.Start))
	}
	return append(args, "kjump.direct="+handoff.RegionText(region)), nil
}

// mergeCovered joins neighbouring ranges whose gap the firmware map fully
// describes (reserved, ACPI: marking it reserved changes nothing, the
// higher e820 type wins) and that do not straddle the region. A gap the
// map leaves out is an MMIO hole: marked reserved, Linux would trim the
// PCI host bridge windows there (pci_use_e820) and lose devices.
func mergeCovered(rs Ranges, fw []sysinfo.FirmwareEntry, region Range) Ranges {
	var known Ranges
	for _, f := range fw {
		known = append(known, f.Range)
	}
	known = known.Normalize()
	sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
	var out Ranges
	for _, r := range rs {
		if n := len(out); n > 0 {
			gap := Range{Start: out[n-1].End, End: r.Start}
			if !gap.Overlaps(region) && (gap.Empty() || covers(known, gap)) {
				out[n-1].End = r.End
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// covers reports whether one range of normalized rs holds all of r.
func covers(rs Ranges, r Range) bool {
	for _, x := range rs {
		if x.Covers(r) {
			return true
		}
	}
	return false
}

// HandoffAddr is where a helper or restore kernel planned in region finds
// its handoff area (the top of the region; see PlanHelper): the original
// reads its report there after the jump back.
func HandoffAddr(region Range) uint64 { return region.End - alignUp(handoff.Size, PageSize) }

// JumpStubAddr is the page below the handoff area, for the jump-back stub.
func JumpStubAddr(region Range) uint64 { return HandoffAddr(region) - PageSize }
