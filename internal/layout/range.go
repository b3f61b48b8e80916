package layout

import "github.com/kjump/kjump/internal/phys"

// PageSize is the x86-64 base page size; kexec segments are multiples of it.
const PageSize = phys.PageSize

// Range and Ranges are physical address ranges (internal/phys).
type (
	Range  = phys.Range
	Ranges = phys.Ranges
)

// RangeOf returns the range of size bytes starting at start.
func RangeOf(start, size uint64) Range { return phys.RangeOf(start, size) }

func alignUp(v, a uint64) uint64   { return (v + a - 1) &^ (a - 1) }
func alignDown(v, a uint64) uint64 { return v &^ (a - 1) }
