package hibernate

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/storage"
	"github.com/kjump/kjump/internal/sysinfo"
)

// compressGuess is the ratio the estimate assumes for pages in use: zstd's
// fastest level does 2:1 to 3:1 on typical RAM (kernel, heaps, page cache;
// docs/benchmarks.md). Incompressible data needs more, which is why running
// out while writing is handled too: the helper jumps back.
const compressGuess = 2

// room compares a target's room with the image this machine needs.
type room struct {
	Target   string
	Room     uint64 // bytes the target can hold
	InUse    uint64 // RAM not free
	Estimate uint64 // in-use RAM compressed compressGuess:1, plus framing
	Worst    uint64 // every page stored, incompressible
}

func newRoom(target string, have uint64, ram layout.Ranges, memFree uint64) room {
	rs := make([]image.Range, len(ram))
	for i, r := range ram {
		rs[i] = image.Range{Start: r.Start, End: r.End}
	}
	total := ram.Size()
	worst := image.MaxImageSize(image.RangeSource(nil, rs), image.Metadata{})
	inUse := total - min(memFree, total)
	return room{Target: target, Room: have, InUse: inUse, Worst: worst, Estimate: inUse/compressGuess + (worst - total)}
}

// check refuses a target smaller than the estimate (a jump that would
// certainly fail costs the whole write) and warns about one smaller than
// the worst case.
func (r room) check() (warning string, err error) {
	switch {
	case r.Room < r.Estimate:
		return "", fmt.Errorf("target %s has room for %s, but an image of this machine is estimated at %s (%s of RAM in use, assumed to compress %d:1; at worst %s): free space on it or choose a larger target; nothing was changed",
			r.Target, humanize.IBytes(r.Room), humanize.IBytes(r.Estimate), humanize.IBytes(r.InUse), compressGuess, humanize.IBytes(r.Worst))
	case r.Room < r.Worst:
		return fmt.Sprintf("target %s has room for %s: enough for the estimated %s image, not for the worst case of %s (all RAM incompressible); if the image outgrows it, the helper stops and this machine keeps running",
			r.Target, humanize.IBytes(r.Room), humanize.IBytes(r.Estimate), humanize.IBytes(r.Worst)), nil
	}
	return "", nil
}

// checkRoom runs the room check for a resolved target. A target whose room
// cannot be measured here is left to the helper.
func checkRoom(spec string, ts handoff.TargetSpec, ram layout.Ranges) (string, error) {
	have, ok := targetRoom(spec, ts)
	if !ok {
		return "", nil
	}
	free, ok := memFree("/proc/meminfo")
	if !ok {
		return "", nil
	}
	name := spec
	if ts.Device != "" && ts.Device != spec {
		name = ts.Device + " (" + spec + ")"
	}
	return newRoom(name, have, ram, free).check()
}

// targetRoom is how many image bytes the target can take: a raw device's
// or preallocated file's size after the signature block, or a file
// system's free space plus the image files that Create replaces.
func targetRoom(spec string, ts handoff.TargetSpec) (uint64, bool) {
	if ts.File != nil { // a preallocated file: its own size
		return uint64(max(ts.File.Size-storage.SignatureSize, 0)), true
	}
	if ts.FSType == "" && ts.Device != "" {
		f, err := os.Open(ts.Device)
		if err != nil {
			return 0, false
		}
		defer f.Close()
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil || size < storage.SignatureSize {
			return 0, err == nil
		}
		return uint64(size - storage.SignatureSize), true
	}
	path, err := filepath.Abs(spec)
	if err != nil {
		return 0, false
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, storage.DefaultName)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(path), &fs); err != nil {
		return 0, false
	}
	have := fs.Bavail * uint64(fs.Bsize)
	for _, old := range []string{path, path + ".tmp"} {
		if fi, err := os.Stat(old); err == nil && fi.Mode().IsRegular() {
			have += uint64(fi.Size())
		}
	}
	return have, true
}

// memFree reads MemFree from a meminfo file, in bytes.
func memFree(path string) (uint64, bool) {
	v, err := sysinfo.MemInfo(path, "MemFree")
	return v, err == nil
}
