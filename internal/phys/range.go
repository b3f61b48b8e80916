// Package phys holds the physical address range type that the kexec
// machinery (internal/jump), the image format (internal/image) and the
// free-page walk (internal/freepages) share.
package phys

import (
	"fmt"
	"sort"
)

// PageSize is the x86-64 base page size.
const PageSize = 4096

// Range is a half-open physical address range [Start, End).
type Range struct {
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
}

// RangeOf returns the range of size bytes starting at start.
func RangeOf(start, size uint64) Range { return Range{Start: start, End: start + size} }

// Size is the number of bytes in r.
func (r Range) Size() uint64 {
	if r.End <= r.Start {
		return 0
	}
	return r.End - r.Start
}

// Empty reports whether r holds no bytes.
func (r Range) Empty() bool { return r.End <= r.Start }

// Contains reports whether addr lies in r.
func (r Range) Contains(addr uint64) bool { return addr >= r.Start && addr < r.End }

// Covers reports whether o lies entirely inside r.
func (r Range) Covers(o Range) bool { return o.Start >= r.Start && o.End <= r.End }

// Overlaps reports whether r and o share at least one byte.
func (r Range) Overlaps(o Range) bool { return r.Start < o.End && o.Start < r.End }

// Intersect returns the common part of r and o (empty if none).
func (r Range) Intersect(o Range) Range {
	s, e := max(r.Start, o.Start), min(r.End, o.End)
	if e <= s {
		return Range{}
	}
	return Range{Start: s, End: e}
}

// PageAligned shrinks r inward to whole pages: partial pages at either end
// belong to someone else (firmware, another range) and must not be touched.
func (r Range) PageAligned() Range {
	s := (r.Start + PageSize - 1) &^ (PageSize - 1)
	e := r.End &^ (PageSize - 1)
	if e <= s {
		return Range{}
	}
	return Range{Start: s, End: e}
}

func (r Range) String() string { return fmt.Sprintf("[%#x-%#x)", r.Start, r.End) }

// Ranges is a list of ranges, kept sorted and disjoint by its methods.
type Ranges []Range

// Normalize returns rs sorted, with overlapping or adjacent ranges merged
// and empty ones dropped; rs itself is left as it was.
func (rs Ranges) Normalize() Ranges {
	out := make(Ranges, 0, len(rs))
	for _, r := range rs {
		if !r.Empty() {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r.Start <= merged[n-1].End {
			merged[n-1].End = max(merged[n-1].End, r.End)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// Subtract returns rs without any byte of cut.
func (rs Ranges) Subtract(cut Range) Ranges {
	var out Ranges
	for _, r := range rs {
		if !r.Overlaps(cut) {
			out = append(out, r)
			continue
		}
		if r.Start < cut.Start {
			out = append(out, Range{Start: r.Start, End: cut.Start})
		}
		if cut.End < r.End {
			out = append(out, Range{Start: cut.End, End: r.End})
		}
	}
	return out
}

// Size is the total number of bytes in rs.
func (rs Ranges) Size() uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Size()
	}
	return n
}
