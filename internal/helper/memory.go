package helper

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/kjump/kjump/internal/image"
)

// memAvailable reads MemAvailable from /proc/meminfo, in bytes.
func memAvailable(meminfo string) (uint64, error) {
	f, err := os.Open(meminfo)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "MemAvailable:"); ok {
			var kb uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("%s: MemAvailable %q: %v", meminfo, rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("%s has no MemAvailable", meminfo)
}

// fittingThreads caps want workers to what the helper's memory holds
// (image.ThreadsFor), saying so when it does: the reserved region is what
// the helper kernel has, and running out panics it.
func fittingThreads(want int, what string) int {
	avail, err := memAvailable("/proc/meminfo")
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
