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
	"github.com/kjump/kjump/internal/storage"
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
	t, cleanup, err := openTarget(&h.Instructions.Target)
	if err != nil {
		return jump.JumpBack{}, err
	}
	defer cleanup()
	return restoreFrom(h.Instructions, t, mem, res, jump.Ranges{{Start: 0, End: jump.LowMemSize}})
}

// restoreFrom restores the image in on t and returns the jump into the
// original. keep is the RAM this kernel itself uses outside the reserved
// region (low memory, and for a direct restore the guard page at 1 MiB):
// the original's pages there are collected for the jump, which puts them
// in place at the last moment.
func restoreFrom(in handoff.Instructions, t storage.Target, mem *physmem.Mem, res *handoff.Result, keep jump.Ranges) (jump.JumpBack, error) {
	opts, err := restoreOptions(in)
	if err != nil {
		return jump.JumpBack{}, err
	}
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
	sink := newRAMSink(mem, keep)
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
	if err := sink.readAt(page, int64(entry&^(jump.PageSize-1))); err != nil {
		return jump.JumpBack{}, fmt.Errorf("reading back the entry page: %w", err)
	}
	return sink.jumpBack(jump.JumpBack{Entry: entry, GDT: purgatory.GDTDesc{Limit: md.JumpBack.GDTLimit, Base: md.JumpBack.GDTBase},
		StubAddr: in.JumpStub, EntryPage: page})
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

// ramSink writes restored pages to physical memory; the RAM this kernel
// itself uses outside the reserved region (kept: low memory, and for a
// direct restore the guard page) is collected in copies for the jump-back
// image instead.
type ramSink struct {
	mem  *physmem.Mem
	kept []keptCopy // ascending, disjoint
}

type keptCopy struct {
	jump.Range
	buf []byte
}

func newRAMSink(mem *physmem.Mem, keep jump.Ranges) *ramSink {
	s := &ramSink{mem: mem}
	for _, r := range keep.Normalize() {
		s.kept = append(s.kept, keptCopy{Range: r, buf: make([]byte, r.Size())})
	}
	return s
}

// split calls inKept or inRAM for each part of [off, off+n), in order.
func (s *ramSink) split(off, n int64, inKept func(k *keptCopy, off, n int64) error, inRAM func(off, n int64) error) error {
	for n > 0 {
		end := off + n
		var in *keptCopy
		for i := range s.kept {
			k := &s.kept[i]
			if uint64(off) >= k.Start && uint64(off) < k.End {
				in = k
				break
			}
			if uint64(off) < k.Start && uint64(end) > k.Start {
				end = int64(k.Start)
				break
			}
		}
		var err error
		if in != nil {
			end = min(end, int64(in.End))
			err = inKept(in, off, end-off)
		} else {
			err = inRAM(off, end-off)
		}
		if err != nil {
			return err
		}
		n, off = n-(end-off), end
	}
	return nil
}

func (s *ramSink) WriteAt(p []byte, off int64) (int, error) {
	base := off
	err := s.split(off, int64(len(p)), func(k *keptCopy, o, n int64) error {
		copy(k.buf[uint64(o)-k.Start:], p[o-base:o-base+n])
		return nil
	}, func(o, n int64) error {
		_, err := s.mem.WriteAt(p[o-base:o-base+n], o)
		return err
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Lend lends RAM outside the kept ranges for a chunk to decode in place
// (image.Lender); kept ranges go to their copies through WriteAt.
func (s *ramSink) Lend(off int64, n int) ([]byte, func(), bool) {
	for _, k := range s.kept {
		if k.Overlaps(jump.Range{Start: uint64(off), End: uint64(off) + uint64(n)}) {
			return nil, nil, false
		}
	}
	return s.mem.Lend(off, n)
}

// ZeroAt clears RAM in place (image.Zeroer), kept ranges in their copies.
func (s *ramSink) ZeroAt(off, n int64) error {
	return s.split(off, n, func(k *keptCopy, o, n int64) error {
		clear(k.buf[uint64(o)-k.Start : uint64(o)-k.Start+uint64(n)])
		return nil
	}, s.mem.ZeroAt)
}

// readAt reads back restored memory, from the copies where kept.
func (s *ramSink) readAt(p []byte, off int64) error {
	base := off
	return s.split(off, int64(len(p)), func(k *keptCopy, o, n int64) error {
		copy(p[o-base:o-base+n], k.buf[uint64(o)-k.Start:])
		return nil
	}, func(o, n int64) error {
		_, err := s.mem.ReadAt(p[o-base:o-base+n], o)
		return err
	})
}

// jumpBack puts the copies in the jump: low memory as its own field, any
// other kept range as an extra segment.
func (s *ramSink) jumpBack(jb jump.JumpBack) (jump.JumpBack, error) {
	for _, k := range s.kept {
		switch {
		case k.Start == 0 && k.End == jump.LowMemSize:
			jb.LowMem = k.buf
		default:
			jb.Extra = append(jb.Extra, jump.NewSegment(k.buf, k.Start))
		}
	}
	if len(jb.LowMem) != jump.LowMemSize {
		return jb, fmt.Errorf("internal: the restore kept no copy of low memory")
	}
	return jb, nil
}
