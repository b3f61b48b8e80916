package helper

import (
	"context"
	"fmt"
	"runtime"
	"strconv"

	"github.com/dustin/go-humanize"

	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/jump/purgatory"
	"github.com/kjump/kjump/internal/physmem"
)

// restore writes the image's pages back to the original's physical memory
// and returns how to jump into it. resume checked the image's header,
// index and commit record and marked it restoring before this kernel was
// started; this kernel trusts nothing it reads again: it opens the image
// only if its header and index are those resume checked (the digest in the
// handoff) and its RAM lies in the original's RAM as resume found it, less
// the reserved region, and checks every chunk before writing its pages.
// Once every page is back it marks the image spent, so a retry switch left
// on the command line cannot resume it twice.
func restore(h handoff.Handoff, mem *physmem.Mem, res *handoff.Result) (jump.JumpBack, error) {
	in := h.Instructions
	opts, err := restoreOptions(in)
	if err != nil {
		return jump.JumpBack{}, err
	}
	t, cleanup, err := openTarget(&in.Target)
	if err != nil {
		return jump.JumpBack{}, err
	}
	defer cleanup()
	r, err := image.OpenTarget(t, opts...)
	if err != nil {
		return jump.JumpBack{}, err
	}
	closed := false
	defer func() {
		if !closed {
			r.Close()
		}
	}()
	info := r.Info()
	if info.ID != in.ImageID {
		return jump.JumpBack{}, fmt.Errorf("image on %s is %s, but resume verified %s: refusing to restore a different image", t, info.ID, in.ImageID)
	}
	if err := image.Usable(r.Status(), true); err != nil {
		return jump.JumpBack{}, fmt.Errorf("image %s on %s: %w", info.ID, t, err)
	}
	md := r.Metadata()
	// The saved RAM above low memory is the original's, never this
	// kernel's, so /dev/mem maps it in shared windows.
	var above []image.Range
	for _, rg := range r.Ranges() {
		if rg = rg.Intersect(image.Range{Start: jump.LowMemSize, End: ^uint64(0)}); !rg.Empty() {
			above = append(above, rg)
		}
	}
	mem.UseWindows(above)
	sink := &ramSink{mem: mem, low: make([]byte, jump.LowMemSize)}
	logf("restoring %s from image %s on %s", humanize.IBytes(info.RAMBytes), info.ID, t)
	// WithZeroFill: pages that were zero are not stored, and the memory
	// under them holds whatever the kernels booted since left there.
	// Two workers per CPU (at most image.MaxThreads): a worker waits for
	// each O_DIRECT read, which has no readahead (one per CPU left the
	// CPUs 6-10 % idle waiting for the disk in bench-vm).
	// No WithVerifiedStored: each record's CRC (or tag) is checked here,
	// before its chunk is decoded into place.
	ropts := []image.ReaderOption{image.WithForce(), image.WithZeroFill(), image.WithThreads(fittingThreads(2*runtime.NumCPU(), "restoring")), image.WithProgress(progress("restored"))}
	cpu0, cpuErr := readCPUTimes()
	st, err := r.Restore(context.Background(), sink, ropts...)
	if err != nil {
		return jump.JumpBack{}, err
	}
	r.Close()
	closed = true
	// Spent from here: a retry (kjump.force=1) must not resume it again.
	// Without the mark, refuse to jump: the restore kernel reboots and the
	// image stays retryable rather than resumable twice.
	if err := image.InvalidateTarget(t, opts...); err != nil {
		return jump.JumpBack{}, fmt.Errorf("every page of image %s is restored, but marking it spent on %s failed (refusing to jump: a retry could resume it twice): %w", info.ID, t, err)
	}
	logf("restored in %.2fs, of which %.2fs zeroing RAM no chunk covers; %s of free pages left as they were", st.Duration.Seconds(), st.ZeroFill.Seconds(), humanize.IBytes(st.Discarded))
	if cpu1, err := readCPUTimes(); err == nil && cpuErr == nil {
		logf("while restoring: %s", cpu0.busySince(cpu1))
	}
	res.RAMBytes, res.ImageBytes = st.RAMBytes, st.ImageBytes
	res.Details["image_id"] = info.ID
	res.Details["hibernated_at"] = md.Created.Format("2006-01-02T15:04:05Z07:00")
	res.Details["restore_seconds"] = strconv.FormatFloat(st.Duration.Seconds(), 'f', 2, 64)
	res.Details["target"] = t.String()

	entry := md.JumpBack.Entry
	page := make([]byte, jump.PageSize)
	if base := entry &^ (jump.PageSize - 1); base+jump.PageSize <= jump.LowMemSize {
		copy(page, sink.low[base:])
	} else if _, err := mem.ReadAt(page, int64(base)); err != nil {
		return jump.JumpBack{}, fmt.Errorf("reading back the entry page: %w", err)
	}
	return jump.JumpBack{Entry: entry, GDT: purgatory.GDTDesc{Limit: md.JumpBack.GDTLimit, Base: md.JumpBack.GDTBase},
		StubAddr: in.JumpStub, EntryPage: page, LowMem: sink.low}, nil
}

// restoreOptions are the checks the restore kernel reads the image with:
// the key, the digest of the header and index resume checked, and the
// original's RAM less the reserved region this kernel runs in.
func restoreOptions(in handoff.Instructions) ([]image.ReaderOption, error) {
	if in.ImageDigest == "" || len(in.RAM) == 0 {
		return nil, fmt.Errorf("the handoff names no image digest or RAM map: resume and this restore kernel are different kjump builds; run 'hibernate prepare'")
	}
	ram := in.RAM.Normalize()
	if !in.Region.Empty() {
		ram = ram.Subtract(in.Region)
	}
	if len(ram) == 0 {
		return nil, fmt.Errorf("the handoff's RAM map %v lies inside the reserved region %v", in.RAM, in.Region)
	}
	opts := []image.ReaderOption{image.WithDigest(in.ImageDigest), image.WithMachineRAM([]image.Range(ram))}
	if in.Key != nil {
		opts = append(opts, image.WithKey(in.Key))
	}
	return opts, nil
}

// ramSink writes restored pages to physical memory; low memory, which this
// kernel itself is using, is collected for the jump-back image instead.
type ramSink struct {
	mem *physmem.Mem
	low []byte
}

func (s *ramSink) WriteAt(p []byte, off int64) (int, error) {
	n := 0
	if off < jump.LowMemSize {
		k := copy(s.low[off:], p)
		n, p, off = k, p[k:], off+int64(k)
	}
	if len(p) == 0 {
		return n, nil
	}
	k, err := s.mem.WriteAt(p, off)
	return n + k, err
}

// Lend lends RAM above low memory for a chunk to decode in place
// (image.Lender); low memory goes to the copy through WriteAt.
func (s *ramSink) Lend(off int64, n int) ([]byte, func(), bool) {
	if off < jump.LowMemSize {
		return nil, nil, false
	}
	return s.mem.Lend(off, n)
}

// ZeroAt clears RAM in place (image.Zeroer), low memory in the copy.
func (s *ramSink) ZeroAt(off, n int64) error {
	if off < jump.LowMemSize {
		k := min(n, jump.LowMemSize-off)
		clear(s.low[off : off+k])
		off, n = off+k, n-k
	}
	if n == 0 {
		return nil
	}
	return s.mem.ZeroAt(off, n)
}
