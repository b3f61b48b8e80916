package image

import (
	"errors"
	"fmt"
)

var (
	// ErrNotImage means the target does not start with a kjump image header.
	ErrNotImage = errors.New("no kjump image here (header magic missing): check the target, or create an image first")
	// ErrNotCommitted means the image has no valid commit record: writing it
	// was interrupted, so it must not be resumed. Boot normally and hibernate again.
	ErrNotCommitted = errors.New("image is not committed (no commit record): it was never completely written and cannot be resumed; boot normally and hibernate again")
	// ErrInvalidated means the image was committed and later invalidated
	// (usually because it was resumed or the system booted past it). The data
	// is intact; `resume --force` re-validates and uses it anyway.
	ErrInvalidated = errors.New("image was invalidated (already resumed or superseded): it is not resumed by default; use --force only if you are sure the disks have not changed since it was written")
)

// CorruptError reports a failed check: which record, where, and what.
type CorruptError struct {
	Region string // "header", "chunk", "index", "commit record"
	Chunk  int    // chunk number for Region "chunk", else -1
	Offset int64  // byte offset in the image of the record (or field)
	Reason string
}

func (e *CorruptError) Error() string {
	where := e.Region
	if e.Chunk >= 0 {
		where = fmt.Sprintf("chunk %d", e.Chunk)
	}
	return fmt.Sprintf("image is corrupt: %s at offset %d: %s; the image cannot be resumed (boot normally; if this repeats, check the storage device)", where, e.Offset, e.Reason)
}

// ErrCorrupt matches any *CorruptError with errors.Is.
var ErrCorrupt = errors.New("image is corrupt")

func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corrupt(region string, off int64, format string, args ...any) *CorruptError {
	return &CorruptError{Region: region, Chunk: -1, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// VersionError is an image written by an incompatible kjump version.
type VersionError struct{ Major, Minor uint16 }

func (e *VersionError) Error() string {
	return fmt.Sprintf("image format version %d.%d is not supported (this kjump reads %d.x): resume with the kjump version that wrote it", e.Major, e.Minor, versionMajor)
}
