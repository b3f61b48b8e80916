package layout

import (
	"fmt"
	"strings"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/sysinfo"
)

// Where a suggested reservation may go. Below suggestFloor sit the
// kernel's own load address (16 MiB) and its decompression area (its
// init_size, up to ~64 MiB for distribution kernels) when KASLR is off;
// above 4 GiB the helper's 32-bit boot path cannot reach. Addresses are
// 16 MiB aligned so the command line stays short and the helper kernel's
// 2 MiB alignment holds.
const (
	suggestFloor     = 256 << 20
	suggestLowFloor  = 96 << 20 // machines with little RAM below 4 GiB
	suggestCeiling   = 4 << 30
	suggestAlign     = 16 << 20
	suggestSizeAlign = 16 << 20
)

// helperKernelRuntime is what the helper kernel itself uses at run time
// beyond its image's init_size: page tables and struct pages of its RAM,
// slab, the tmpfs the initramfs unpacks into (counted separately), stacks.
const helperKernelRuntime = 24 << 20

// HelperSize is how much memory to reserve for a helper kernel whose
// bzImage has the given init_size, with an initramfs of initrdSize bytes
// (gzip: it unpacks to about three times that, and the packed copy stays
// until the unpacking is done), running workers compression workers (one
// per CPU, at most image.MaxThreads) so none is dropped for lack of
// memory. The result is rounded up to 16 MiB and is never below minimum
// (helper.reserve). 'hibernate setup' reserves it and 'hibernate check'
// suggests it, so both agree.
func HelperSize(kernelInitSize, initrdSize uint64, workers int, minimum uint64) uint64 {
	workers = max(1, min(workers, image.MaxThreads))
	// The least free memory for which image.ThreadsFor grants every worker.
	var pipeline uint64
	for pipeline = 16 << 20; image.ThreadsFor(workers, pipeline) < workers; pipeline += 1 << 20 {
	}
	need := alignUp(kernelInitSize, 2<<20) + 4*alignUp(initrdSize, PageSize) + pipeline + helperKernelRuntime + tailEstimate
	return max(alignUp(need, suggestSizeAlign), alignUp(minimum, suggestSizeAlign))
}

// tailEstimate bounds kjump's pages at the top of the region (handoff
// area, purgatory, boot parameters, ELF core header, page tables and the
// 640 KiB low-memory backup; planTail has the exact figure).
const tailEstimate = 4 << 20

// SuggestReservation chooses where to reserve size bytes for the helper:
// the lowest 16 MiB-aligned address at or above 256 MiB (96 MiB on small
// machines) whose whole range lies in one free System RAM range of
// /proc/iomem below 4 GiB, clear of the running kernel's image and of a
// crashkernel= region. Ranges that memmap=SIZE$ADDR on cmdline already
// reserves count as free (the old reservation is what a new one replaces,
// so it may grow in place). Low addresses are preferred because boot
// loaders put the initramfs as high as they can below 2 or 4 GiB.
func SuggestReservation(iomem []sysinfo.Resource, cmdline string, size uint64) (Reservation, error) {
	if size == 0 || size%PageSize != 0 {
		return Reservation{}, fmt.Errorf("reservation size %#x is not a positive multiple of the page size", size)
	}
	free := sysinfo.SystemRAM(iomem)
	old, err := ParseMemmapReservations(cmdline)
	if err != nil {
		return Reservation{}, err
	}
	for _, r := range old {
		free = append(free, r.Range)
	}
	var busy Ranges
	for _, r := range iomem {
		switch r.Name {
		case "Kernel code", "Kernel rodata", "Kernel data", "Kernel bss", "Crash kernel":
			busy = append(busy, r.Range)
		}
	}
	free = free.Normalize()
	for _, b := range busy {
		free = free.Subtract(b)
	}
	for _, floor := range []uint64{suggestFloor, suggestLowFloor} {
		for _, f := range free {
			start := alignUp(max(f.Start, floor), suggestAlign)
			if start+size <= min(f.End, suggestCeiling) && start+size > start {
				return Reservation{Range: RangeOf(start, size), Source: MemmapArg(RangeOf(start, size))}, nil
			}
		}
	}
	var total uint64
	for _, f := range free {
		total += f.Intersect(Range{Start: 0, End: suggestCeiling}).Size()
	}
	return Reservation{}, fmt.Errorf("no free System RAM range below 4 GiB holds %d MiB for the helper (%d MiB of RAM below 4 GiB in /proc/iomem): reserve it by hand with memmap=SIZE$ADDR, or crashkernel=SIZE",
		size>>20, total>>20)
}

// MemmapArg is the kernel parameter that reserves r:
// memmap=SIZE$ADDR, the size in MiB when it is a whole number of them.
func MemmapArg(r Range) string {
	size := fmt.Sprintf("%#x", r.Size())
	if r.Size()%(1<<20) == 0 {
		size = fmt.Sprintf("%dM", r.Size()>>20)
	}
	return fmt.Sprintf("memmap=%s$%#x", size, r.Start)
}

// GrubEscape writes a memmap=SIZE$ADDR argument the way it must appear in
// /etc/default/grub (GRUB_CMDLINE_LINUX="..."): grub-mkconfig's shell and
// GRUB's own parser each take one level of escaping off the '$'.
func GrubEscape(arg string) string { return strings.ReplaceAll(arg, "$", `\\\$`) }
