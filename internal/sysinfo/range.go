package sysinfo

import "github.com/kjump/kjump/internal/phys"

// PageSize is the x86-64 base page size.
const PageSize = phys.PageSize

// Range and Ranges are physical address ranges (internal/phys).
type (
	Range  = phys.Range
	Ranges = phys.Ranges
)
