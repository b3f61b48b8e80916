package image

import (
	"fmt"

	"github.com/kjump/kjump/internal/phys"
)

// Range is a half-open physical address range [Start, End) (internal/phys).
// Ranges stored in an image are page aligned.
type Range = phys.Range

// totalSize sums the sizes of rs.
func totalSize(rs []Range) uint64 { return phys.Ranges(rs).Size() }

// normalize widens every range to whole pages, sorts them and merges
// overlapping or touching ones. Core files list the same RAM twice (the
// kernel text segment duplicates part of a RAM segment) and firmware ranges
// need not end on a page boundary; the image stores each page once.
func normalize(rs []Range, pageSize uint64) []Range {
	out := make([]Range, 0, len(rs))
	for _, r := range rs {
		if r.End <= r.Start {
			continue
		}
		s := r.Start &^ (pageSize - 1)
		e := r.End
		if e > ^uint64(0)-pageSize {
			e = ^uint64(0) &^ (pageSize - 1)
		} else {
			e = (e + pageSize - 1) &^ (pageSize - 1)
		}
		out = append(out, Range{Start: s, End: e})
	}
	return phys.Ranges(out).Normalize()
}

// checkRanges reports whether rs is sorted, disjoint, page aligned and
// below maxPhysAddr: the form Write stores and Open accepts.
func checkRanges(rs []Range, pageSize uint64) error {
	var prevEnd uint64
	for i, r := range rs {
		if r.Start%pageSize != 0 || r.End%pageSize != 0 || r.End <= r.Start {
			return fmt.Errorf("range %d %v is empty or not aligned to %d-byte pages", i, r, pageSize)
		}
		if r.End > maxPhysAddr {
			return fmt.Errorf("range %d %v ends above the %d-bit physical address space", i, r, 52)
		}
		if i > 0 && r.Start < prevEnd {
			return fmt.Errorf("range %d %v overlaps or precedes the previous range", i, r)
		}
		prevEnd = r.End
	}
	return nil
}

// ForeignRAMError is an image that saved RAM this machine does not have
// (WithMachineRAM): made on another machine or with another memory map,
// or forged. Its index is not read.
type ForeignRAMError struct {
	Range   Range   // the image's first range outside the machine's RAM
	Machine []Range // the machine's RAM as given
}

func (e *ForeignRAMError) Error() string {
	return fmt.Sprintf("image saved RAM %v that is not RAM on this machine (%d RAM ranges, %s): it was made on another machine or with another memory map (memmap=, mem=), or forged; it cannot be resumed here",
		e.Range, len(e.Machine), humanBytes(totalSize(e.Machine)))
}

// checkMachineRAM checks that every range of an image lies inside the
// machine's RAM; nil machine means no check (inspecting an image made
// elsewhere).
func checkMachineRAM(image, machine []Range) error {
	if machine == nil {
		return nil
	}
	ram := phys.Ranges(machine).Normalize() // adjacent firmware entries are one run
	for _, r := range image {
		if !inRanges(ram, r.Start, r.Size()) {
			return &ForeignRAMError{Range: r, Machine: machine}
		}
	}
	return nil
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
