package layout

import (
	"fmt"
	"strings"

	"github.com/kjump/kjump/internal/sysinfo"
)

// suggestAlign is the alignment of a suggested reservation: round numbers
// people can check by eye, and any page size.
const suggestAlign = 16 << 20

// suggestFloors are the lowest addresses tried, in order. Above 256 MiB
// the reservation stays clear of what boot loaders and the kernel put low
// (the kernel at 16 MiB without KASLR; KASLR itself avoids memmap= ranges)
// and of the top of low memory, where boot loaders put the initramfs.
var suggestFloors = []uint64{256 << 20, 64 << 20}

// SuggestReservation picks where to reserve size bytes for the helper
// kernel: the lowest 16 MiB-aligned range at or above 256 MiB (64 MiB on
// small machines) that lies in System RAM below 4 GiB in /proc/iomem,
// clear of everything the running kernel placed in it. The helper and the
// restore kernel run from it as 32-bit-reachable memory, so it stays below
// 4 GiB. 'hibernate check' suggests it and 'hibernate setup' uses it.
func SuggestReservation(iomem []sysinfo.Resource, size uint64) (Reservation, error) {
	if size == 0 {
		return Reservation{}, fmt.Errorf("reservation size is zero")
	}
	size = alignUp(size, 1<<20)
	var busy Ranges // what lies inside System RAM: kernel code and data, crash kernel
	for _, r := range iomem {
		if r.Depth > 0 {
			busy = append(busy, r.Range)
		}
	}
	busy = busy.Normalize()
	for _, floor := range suggestFloors {
		for _, ram := range sysinfo.SystemRAM(iomem) {
			start := alignUp(max(ram.Start, floor), suggestAlign)
			for start+size <= min(ram.End, 4<<30) {
				cand := RangeOf(start, size)
				clash := false
				for _, b := range busy {
					if b.Overlaps(cand) {
						clash, start = true, alignUp(b.End, suggestAlign)
						break
					}
				}
				if !clash {
					return Reservation{Range: cand, Source: MemmapArg(cand)}, nil
				}
			}
		}
	}
	return Reservation{}, fmt.Errorf("no free System RAM range of %d MiB below 4 GiB in /proc/iomem: lower helper.reserve, or reserve with crashkernel=%dM", size>>20, size>>20)
}

// MemmapArg is the kernel parameter reserving r: memmap=SIZE$ADDR.
func MemmapArg(r Range) string {
	sz := r.Size()
	s := fmt.Sprintf("%dK", sz>>10)
	if sz%(1<<20) == 0 {
		s = fmt.Sprintf("%dM", sz>>20)
	}
	return fmt.Sprintf("memmap=%s$%#x", s, r.Start)
}

// GrubEscape is arg as it must be written in /etc/default/grub: GRUB's
// scripts expand "$" twice, so it becomes "\\\$".
func GrubEscape(arg string) string { return strings.ReplaceAll(arg, "$", `\\\$`) }
