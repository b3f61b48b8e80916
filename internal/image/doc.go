// Package image reads and writes kjump hibernation images: the RAM of a
// stopped kernel, zero pages dropped, the rest in independent zstd chunks,
// each checksummed, behind a header with the saved system's metadata and
// ended by a commit record. docs/image-format.md specifies the bytes.
//
// Saving (hibernate path, in the helper kernel):
//
//	f, _ := os.Open("/proc/vmcore")
//	src, err := image.OpenELF(f)              // or image.RangeSource(devMem, ranges)
//	t, err := storage.Open("PARTUUID=…")      // file, directory or block device
//	st, err := image.WriteTarget(ctx, t, src, image.Metadata{…},
//		image.WithLevel(image.LevelFast), image.WithProgress(fn))
//
// Restoring (resume path):
//
//	r, err := image.OpenTarget(t)             // checks header, commit, index
//	defer r.Close()
//	md := r.Metadata()                        // kernel release, boot id, jump-back, fingerprints
//	err = image.Usable(r.Status(), force)     // committed (or invalidated and forced)?
//	_, err = r.VerifyStored(ctx)              // every record; nil only if resumable
//	err = image.InvalidateTarget(t)           // before the restore starts: a crash
//	                                          // during it must not resume the image twice
//	_, err = r.Restore(ctx, devMem, image.WithForce()) // restore kernel: pages written at physical addresses
//
// Options are typed by side (WriterOption, ReaderOption; WithThreads,
// WithProgress and WithKey are both) and checked when applied: a bad one
// is an error from Write or Open before anything is written or read.
//
// Errors: ErrNotImage, ErrNotCommitted, ErrInvalidated, *VersionError and
// *CorruptError (errors.Is(err, ErrCorrupt)) each say what is wrong and what
// to do. WithForce accepts an invalidated image, never an uncommitted or
// corrupt one; Usable is that rule for callers deciding before Verify.
//
// Write and Restore run a bounded pool of workers (WithThreads, default one
// per CPU, at most MaxThreads) with memory under MemoryCeiling regardless of
// the amount of RAM saved; Write keeps chunk order, Restore writes chunks
// in any order since each page goes to its own address.
package image
