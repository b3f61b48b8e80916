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

// ErrRestoreStarted is the status of an image whose restore started at
// boot (resume's point of no return) and never finished: power loss, a
// crash, or a chunk the restore kernel refused. The data is intact. It
// matches ErrInvalidated, so it is never resumed by default; resume
// retries it once with kjump.force=1 (or --force), and the restore kernel
// marks the image spent (ErrInvalidated) once every page is back.
var ErrRestoreStarted error = restoreStarted{}

type restoreStarted struct{}

func (restoreStarted) Error() string {
	return "a restore of this image started but did not finish (power loss, or the restore kernel failed): it is not resumed by default; boot once with kjump.force=1 on the kernel command line (or run 'resume --force') to retry it"
}

func (restoreStarted) Is(target error) bool { return target == ErrInvalidated }

// SwappedError is an image whose header and index are not those resume
// checked (WithDigest): it was replaced or changed between resume's check
// and the restore kernel's read. Nothing is written.
type SwappedError struct{ Want, Got string }

func (e *SwappedError) Error() string {
	return fmt.Sprintf("image changed after resume checked it: its header and index digest is %s, resume verified %s; refusing to restore it (nothing was written)", e.Got, e.Want)
}

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
	why := ""
	switch e.Major {
	case oldMajorPlain, oldMajorEnc:
		why = "whose single commit record a torn write could corrupt"
	case crc32MajorPlain, crc32MajorEnc:
		why = "which checked chunks with CRC32C"
	}
	if why != "" {
		return fmt.Sprintf("image format version %d.%d was written by an older kjump, %s; this kjump reads formats %d.x (plain) and %d.x (encrypted): resume with the kjump version that wrote it, or boot normally and hibernate again", e.Major, e.Minor, why, versionMajor, versionMajorEnc)
	}
	return fmt.Sprintf("image format version %d.%d is not supported (this kjump reads %d.x and %d.x): resume with the kjump version that wrote it", e.Major, e.Minor, versionMajor, versionMajorEnc)
}

// KeyRequiredError is an encrypted image opened without a key: nothing in
// it can be checked or restored.
type KeyRequiredError struct{ Source KeySource }

func (e *KeyRequiredError) Error() string {
	return fmt.Sprintf("image is encrypted (%s) and no key was given: %s", e.Source, keyHint(e.Source))
}

func keyHint(s KeySource) string {
	if s == KeySourcePassphrase {
		return "give the passphrase with --passphrase (asks on the terminal) or --passphrase-file FILE"
	}
	return "give the key with --key-file FILE (at boot: kjump.key=PATH on the kernel command line)"
}

// KeyMismatchError is a key file given for a passphrase image or the reverse.
type KeyMismatchError struct{ Have, Need KeySource }

func (e *KeyMismatchError) Error() string {
	return fmt.Sprintf("image is encrypted with a %s but a %s was given: %s", e.Need, e.Have, keyHint(e.Need))
}

var (
	// ErrWrongKey means the key check value in the header does not match
	// the given key: another key (or a forged header).
	ErrWrongKey = errors.New("wrong key or passphrase: the image was encrypted with a different key; nothing was restored")
	// ErrNotEncrypted means a key was given but the image is plain. An image
	// written with a key is always encrypted, so a plain one in its place
	// was not written by kjump with this key.
	ErrNotEncrypted = errors.New("image is not encrypted but a key was given: images written with a key are always encrypted, so this one was put there without the key (forged?) and is refused; resume without --key-file/--passphrase (and without kjump.key=) only if you wrote it unencrypted yourself")
	// ErrForged matches any *AuthError with errors.Is.
	ErrForged = errors.New("image forged or corrupt")
)

// AuthError is an encrypted image whose data does not authenticate under
// the key: modified after it was written, or not written with this key.
type AuthError struct {
	What  string // "chunk 3", "header, index and commit record"
	Chunk int    // -1 unless What is a chunk
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("image forged or corrupt: %s failed authentication (modified since it was written, or not written with this key); the image cannot be resumed", e.What)
}

func (e *AuthError) Is(target error) bool { return target == ErrForged || target == ErrCorrupt }
