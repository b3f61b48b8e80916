package helper

import (
	"fmt"

	"github.com/dustin/go-humanize"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/sysinfo"
)

// fittingThreads caps want workers to what the helper's memory holds
// (image.ThreadsFor), saying so when it does: the reserved region is what
// the helper kernel has.
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

// writerThreads is fittingThreads for the capture, which refuses when not
// even one worker fits rather than start one the OOM killer would end.
func writerThreads(want int) (int, error) {
	avail, err := sysinfo.MemInfo("/proc/meminfo", "MemAvailable")
	if need := image.MemoryForThreads(1); err == nil && avail < need {
		return 0, fmt.Errorf("the helper has %s of memory free, and writing the image needs at least %s for one compression worker: "+
			"reserve more memory for the helper (helper.reserve in kjump.conf and the memmap= or crashkernel= size, then reboot)",
			humanize.IBytes(avail), humanize.IBytes(need))
	}
	return fittingThreads(want, "writing"), nil
}

// freeListBudget is how many entries the free-page list may hold: a
// quarter of the helper's free memory, at 64 bytes an entry (16 for the
// range, the rest for the list's growth and its sorted copy).
func freeListBudget() int {
	avail, err := sysinfo.MemInfo("/proc/meminfo", "MemAvailable")
	if err != nil {
		return 1 << 16
	}
	return max(1024, int(avail/4/64))
}
