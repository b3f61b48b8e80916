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
		if i > 0 && r.Start < prevEnd {
			return fmt.Errorf("range %d %v overlaps or precedes the previous range", i, r)
		}
		prevEnd = r.End
	}
	return nil
}
