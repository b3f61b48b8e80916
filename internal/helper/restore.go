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
// and returns how to jump into it. The image was verified and invalidated
// by resume before this kernel was started; every chunk is checked again as
// it is written.
func restore(h handoff.Handoff, mem *physmem.Mem, res *handoff.Result) (jump.JumpBack, error) {
	in := h.Instructions
	t, cleanup, err := openTarget(in.Target)
	if err != nil {
		return jump.JumpBack{}, err
	}
	defer cleanup()
	var opts []image.ReaderOption
	if in.Key != nil {
		opts = append(opts, image.WithKey(in.Key))
	}
	r, err := image.OpenTarget(t, opts...)
	if err != nil {
		return jump.JumpBack{}, err
	}
	defer r.Close()
	info := r.Info()
	if info.ID != in.ImageID {
		return jump.JumpBack{}, fmt.Errorf("image on %s is %s, but resume verified %s: refusing to restore a different image", t, info.ID, in.ImageID)
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
	ropts := []image.ReaderOption{image.WithForce(), image.WithZeroFill(), image.WithThreads(fittingThreads(2*runtime.NumCPU(), "restoring")), image.WithProgress(progress("restored"))}
	if v, err := strconv.ParseUint(in.StoredHeaders, 16, 32); err == nil {
		// resume checked every stored byte: the pages' CRCs and the
		// headers' stand in for a second pass of record CRCs.
		ropts = append(ropts, image.WithVerifiedStored(uint32(v)))
	}
	cpu0, cpuErr := readCPUTimes()
	st, err := r.Restore(context.Background(), sink, ropts...)
	if err != nil {
		return jump.JumpBack{}, err
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
