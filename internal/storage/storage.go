// Package storage puts kjump images on disk: a file target (any local or
// NFS-mounted filesystem) or a raw block device target (by path, UUID=,
// LABEL=, PARTUUID= or PARTLABEL=).
//
// Both follow one protocol: Create makes any previous image on the target
// non-resumable before anything is written and checks there is room for
// the worst case; the image is written through Writer (WriteAt + Sync);
// Writer.Commit syncs and publishes it atomically — a rename for files, a
// signature block at the device start, written last, for block devices.
// Open returns the published image for reading, or for in-place update
// (invalidation).
package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Target is a place that holds at most one image.
type Target interface {
	// String names the target in messages (path, and the spec it came from).
	String() string
	// Create starts a new image of at most maxSize bytes. Any previous
	// image stops being resumable first.
	Create(maxSize uint64) (Writer, error)
	// Open opens the committed image for reading; writable also allows
	// WriteAt (used to invalidate it).
	Open(writable bool) (Image, error)
}

// Writer receives a new image; offset 0 is the image start.
type Writer interface {
	io.WriterAt
	// Sync flushes written data to stable storage.
	Sync() error
	// Commit syncs and publishes the image; only then can Open find it.
	Commit() error
	// Abort discards an unfinished image.
	Abort() error
}

// Image is a published image.
type Image interface {
	io.ReaderAt
	io.WriterAt
	Size() int64
	Sync() error
	Close() error
}

// ErrNoImage means the target holds no published image.
var ErrNoImage = errors.New("no committed kjump image")

// Open resolves spec: UUID=, LABEL=, PARTUUID= or PARTLABEL= name a block
// device; a path to a block device is a raw target; a file made by
// Preallocate is a mapped file; anything else is a file target (a
// directory gets the file DefaultName inside it).
func Open(spec string) (Target, error) {
	ps, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if ps.Path != "" {
		return nil, errDevicePath(spec)
	}
	if ps.Tag != "" {
		dev, err := Resolve(spec)
		if err != nil {
			return nil, err
		}
		return openBlock(dev, spec)
	}
	fi, err := os.Stat(spec)
	switch {
	case err == nil && fi.Mode()&os.ModeDevice != 0:
		return openBlock(spec, spec)
	case err == nil && fi.IsDir():
		return newFileTarget(spec+"/"+DefaultName, spec)
	case err == nil && fi.Mode().IsRegular() && isMappedFile(spec):
		return openMappedFile(spec, spec)
	case err == nil && fi.Mode().IsRegular():
		return newFileTarget(spec, spec)
	case err == nil:
		return nil, fmt.Errorf("target %s is neither a file, a directory nor a block device", spec)
	case strings.HasPrefix(spec, "/dev/"):
		return nil, &Error{Target: spec, Op: "open", Err: err}
	case errors.Is(err, os.ErrNotExist):
		return newFileTarget(spec, spec)
	default:
		return nil, &Error{Target: spec, Op: "open", Err: err}
	}
}

// OpenDevice opens the block device dev as the raw target the tag spec
// named (found by Resolve, or by Carries in another kernel), as Open(spec)
// would.
func OpenDevice(dev, spec string) (Target, error) { return openBlock(dev, spec) }

func isTag(k string) bool {
	switch k {
	case "UUID", "LABEL", "PARTUUID", "PARTLABEL":
		return true
	}
	return false
}

// Named shows t under another name in messages: the name a user gave it,
// rather than where this kernel happens to reach it.
func Named(t Target, name string) Target { return namedTarget{t, name} }

type namedTarget struct {
	Target
	name string
}

func (t namedTarget) String() string { return t.name }

// Unfinished is implemented by targets that can show an image whose writing
// was interrupted before it was published (power loss, crash, write error).
// It is only for telling the user why there is nothing to resume: such an
// image is never resumed.
type Unfinished interface {
	// OpenUnfinished opens the unpublished image read-only, or returns
	// ErrNoImage when there is none.
	OpenUnfinished() (Image, error)
}

// ErrDevicePath is the refusal of a "DEVICE:/path" target where only
// boot-time resume understands it.
func ErrDevicePath(spec string) error { return errDevicePath(spec) }

// OpenUnfinished passes through to the named target.
func (t namedTarget) OpenUnfinished() (Image, error) {
	u, ok := t.Target.(Unfinished)
	if !ok {
		return nil, ErrNoImage
	}
	return u.OpenUnfinished()
}

// startWriteback starts writeback of a file range without waiting
// (sync_file_range SYNC_FILE_RANGE_WRITE). It is only a head start for the
// Sync that follows, so failures (filesystems without it) are ignored.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
