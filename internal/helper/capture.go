package helper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/freepages"
	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/jump/purgatory"
	"github.com/kjump/kjump/internal/storage"
)

// capture writes the original's RAM, as /proc/vmcore shows it, to the
// target as a committed image.
func capture(h handoff.Handoff, gdt purgatory.GDTDesc, res *handoff.Result) error {
	in := h.Instructions
	src, err := openVMCore()
	if err != nil {
		return err
	}
	defer src.Close()
	t, cleanup, err := openTarget(&in.Target)
	if err != nil {
		return err
	}
	defer cleanup()
	opts, desc, err := writerOptions(in, src, res)
	if err != nil {
		return err
	}
	logf("writing image of %s to %s (%s)", humanize.IBytes(totalRAM(src.Ranges())), t, desc)
	step("writing")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	if dev := in.Target.Device; dev != "" && in.Target.FSType == "" {
		// Stop at the first failed write rather than at the final sync.
		stop := watchWriteErrors(filepath.Base(dev), func(string) {
			cancel(&storage.Error{Target: t.String(), Op: "write image to", Err: unix.EIO})
		})
		defer stop()
	}
	if server := nfsServer(in.Target); server != "" {
		// A soft mount fails each unanswered request, but only the final
		// sync would report the failed writes: stop at the first one.
		stop := watchNFSTimeouts(server, func(line string) {
			e := fmt.Errorf("the NFS server %s stopped answering while the image was written to %s (kernel: %q)", server, targetName(in.Target), line)
			pulse(message{Kind: "failed", What: e.Error()})
			cancel(e)
		})
		defer stop()
	}
	cpu0, cpuErr := readCPUTimes()
	st, err := image.WriteTarget(ctx, t, src, metadata(h, gdt), opts...)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		return serverNames(vanished(withKernelIOErrors(err, in.Target.Device), in.Target), in.Target)
	}
	committed(st, t, res)
	if cpu1, err := readCPUTimes(); err == nil && cpuErr == nil {
		logf("while writing: %s", cpu0.busySince(cpu1))
	}
	return nil
}

// metadata is what the image records about the original and the jump.
func metadata(h handoff.Handoff, gdt purgatory.GDTDesc) image.Metadata {
	in := h.Instructions
	md := image.Metadata{
		KernelRelease: in.Release, BootID: in.BootID, Hostname: in.Hostname, Created: in.Issued,
		JumpBack:    image.JumpBack{Entry: h.Entry, GDTLimit: gdt.Limit, GDTBase: gdt.Base},
		Filesystems: in.Filesystems,
		Extra: map[string]string{
			"saved_context": strconv.FormatUint(in.SavedContext, 16),
			"convention":    in.Convention.String(),
			"mode":          string(in.Mode),
		},
	}
	for k, v := range in.Extra {
		md.Extra[k] = v
	}
	md.Extra[handoff.RegionKey] = handoff.RegionText(in.Region)
	return md
}

// writerOptions are the image writer's settings from the instructions, and
// a description of them for the console. The free-page list comes first:
// the workers are counted in the memory it leaves.
func writerOptions(in handoff.Instructions, src *image.ELFSource, res *handoff.Result) ([]image.WriterOption, string, error) {
	level, codec := in.Level, in.Compression
	if level == 0 {
		level = image.LevelFast
	}
	if codec == 0 {
		codec = image.Zstd
	}
	threads := in.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	var opts []image.WriterOption
	if !in.KeepFree {
		opts = freePageOptions(in, src, res)
	}
	threads, err := writerThreads(threads)
	if err != nil {
		return nil, "", err
	}
	opts = append(opts, image.WithLevel(level), image.WithCompression(codec), image.WithThreads(threads), image.WithProgress(progress("saved")))
	enc := "unencrypted"
	if in.Key != nil {
		opts = append(opts, image.WithKey(in.Key))
		enc = "encrypted with a " + in.Key.Source.String()
	}
	return opts, fmt.Sprintf("%s level %s, %d threads, %s", codec, level, threads, enc), nil
}

// freePageOptions leave out the pages the original has free in its buddy
// allocator.
func freePageOptions(in handoff.Instructions, src *image.ELFSource, res *handoff.Result) []image.WriterOption {
	start := time.Now()
	step("finding free pages")
	free, err := freepages.FindLimited(src, src.VMCoreInfo(), src.Ranges(), freeListBudget())
	if err != nil {
		// Saving the free pages too costs time and space, never data.
		logf("saving free pages too: cannot read the original's free lists: %v", err)
		return nil
	}
	logf("free pages: %s of the original's RAM is free in its buddy allocator and is left out (found in %s)",
		humanize.IBytes(free.Pages*jump.PageSize), time.Since(start).Round(time.Millisecond))
	res.Details["free_pages"] = strconv.FormatUint(free.Pages, 10)
	if in.DiscardFree {
		// The original does not zero free pages: a restore need not
		// either (init_on_free off; see internal/hibernate).
		return []image.WriterOption{image.WithDiscard(free.Free)}
	}
	return []image.WriterOption{image.WithExclude(free.Free)}
}

// committed reports a committed image.
func committed(st image.Stats, t storage.Target, res *handoff.Result) {
	res.RAMBytes, res.ImageBytes = st.RAMBytes, st.ImageBytes
	res.Details["zero_pages"] = strconv.FormatUint(st.ZeroPages, 10)
	res.Details["stored_pages"] = strconv.FormatUint(st.StoredPages, 10)
	res.Details["write_seconds"] = strconv.FormatFloat(st.Duration.Seconds(), 'f', 2, 64)
	res.Details["target"] = t.String()
	res.Details["s2_chunks"] = strconv.Itoa(st.S2Chunks)
	logf("image committed: %s of RAM in %s (%.0f%% zero pages, %s) in %.2fs, %s/s",
		humanize.IBytes(st.RAMBytes), humanize.IBytes(st.ImageBytes), 100*float64(st.ZeroPages*jump.PageSize)/float64(max(st.RAMBytes, 1)), st.CodecMix(),
		st.Duration.Seconds(), humanize.IBytes(uint64(float64(st.RAMBytes)/max(st.Duration.Seconds(), 1e-3))))
}

// openVMCore opens the original's RAM as the helper's /proc/vmcore shows
// it (low memory from the purgatory's backup).
func openVMCore() (*image.ELFSource, error) {
	f, err := os.Open("/proc/vmcore")
	if err != nil {
		return nil, fmt.Errorf("opening /proc/vmcore: %w (the helper was not given an elfcorehdr)", err)
	}
	src, err := image.OpenELF(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("parsing /proc/vmcore: %w", err)
	}
	return src, nil
}

func totalRAM(rs []image.Range) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Size()
	}
	return n
}

// progress prints a console line every 10% so a person watching the
// machine sees it working.
func progress(verb string) func(done, total uint64) {
	start := time.Now()
	next := uint64(0)
	return func(done, total uint64) {
		pulse(message{Kind: "progress", Done: done, Total: total})
		if eatMemoryOnWrite && done*10 >= total {
			eatMemoryOnWrite = false
			go eatMemory()
		}
		if done == total {
			pulse(message{Kind: "finishing"})
		}
		if total == 0 || done*10/total < next && done != total {
			return
		}
		next = done*10/total + 1
		secs := max(time.Since(start).Seconds(), 1e-3)
		logf("%s %3d%%  %s of %s  %s/s", verb, done*100/total, humanize.IBytes(done), humanize.IBytes(total), humanize.IBytes(uint64(float64(done)/secs)))
	}
}

// serverNames names the image as the user knows it (server:/export/path)
// in an error: the storage layer names the files it opened, and those are
// under mountPoint here. Only the message changes; the chain is kept.
func serverNames(err error, ts handoff.TargetSpec) error {
	if err == nil || ts.Source == "" {
		return err
	}
	return &renamedError{err: err, old: mountPoint + "/", new: strings.TrimSuffix(ts.Source, "/") + "/"}
}

// renamedError is err with one name replaced by another in its message.
type renamedError struct {
	err      error
	old, new string
}

func (e *renamedError) Error() string { return strings.ReplaceAll(e.err.Error(), e.old, e.new) }
func (e *renamedError) Unwrap() error { return e.err }

// vanished names a disk that went away under the capture: once the kernel
// removes a block device, writes to it fail with ENOSPC (its size is
// zero) or EIO, which would read as "target full" or a bad sector.
func vanished(err error, ts handoff.TargetSpec) error {
	dev := ts.Device
	if ts.File != nil {
		dev = ts.File.Device
	}
	if err == nil || !strings.HasPrefix(dev, "/dev/") {
		return err
	}
	size, serr := os.ReadFile("/sys/class/block/" + filepath.Base(dev) + "/size")
	if serr == nil && strings.TrimSpace(string(size)) != "0" {
		return err
	}
	return &vanishedError{dev: dev, err: err}
}

type vanishedError struct {
	dev string
	err error
}

func (e *vanishedError) Error() string {
	return fmt.Sprintf("the disk %s vanished while the image was being written (unplugged, powered off, or its controller failed; "+
		"the write failed with %v): reconnect it or choose another target", e.dev, rootCause(e.err))
}

func (e *vanishedError) Unwrap() error { return e.err }

// rootCause is the innermost error of a chain (the errno of a failed
// write, say).
func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// nfsServer is the server of an NFS target ("" for others).
func nfsServer(ts handoff.TargetSpec) string {
	if ts.Source == "" || !strings.HasPrefix(ts.FSType, "nfs") {
		return ""
	}
	return nfsServerOf(ts.Source)
}

// nfsServerOf is the server of an NFS mount source: "10.0.2.1" of
// "10.0.2.1:/export", "fd00::1" of "[fd00::1]:/export".
func nfsServerOf(source string) string {
	server, _, _ := strings.Cut(source, ":/")
	return strings.Trim(server, "[]")
}
