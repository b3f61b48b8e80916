package helper

import (
	"github.com/dustin/go-humanize"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/sysinfo"
)

// fittingThreads caps want workers to what the helper's memory holds
// (image.ThreadsFor), saying so when it does: the reserved region is what
// the helper kernel has, and running out panics it.
func fittingThreads(want int, what string) int {
	avail, err := sysinfo.MemInfo("/proc/meminfo", "MemAvailable")
	if err != nil {
		logf("cannot read the free memory (%v): %s with one thread", err, what)
		return 1
	}
	n := image.ThreadsFor(want, avail)
	if n < min(want, image.MaxThreads) {
		logf("%s with %d threads, not %d: %s of memory free in the reserved region (reserve more for more)",
			what, n, want, humanize.IBytes(avail))
	}
	return n
}
