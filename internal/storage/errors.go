package storage

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Error is a storage failure naming the target, what was being done, and
// how to fix it.
type Error struct {
	Target string
	Op     string
	Err    error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s %s: %v", e.Op, e.Target, e.Err)
	if fix := fixFor(e.Err); fix != "" {
		msg += ": " + fix
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

func fixFor(err error) string {
	switch {
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return "the target is full; free space on it or choose a larger target"
	case errors.Is(err, unix.EIO):
		return "the device reported an I/O error; check dmesg and the disk's health, and choose another target"
	case errors.Is(err, unix.EROFS):
		return "the target is read-only; remount it read-write (mount -o remount,rw) or choose another target"
	case errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
		return "the device is gone; check that the disk is attached (lsblk) and the target spec"
	case errors.Is(err, os.ErrNotExist):
		return "check the path, or for UUID=, LABEL=, PARTUUID= and PARTLABEL= the output of blkid or lsblk"
	case errors.Is(err, unix.EBUSY):
		return "the device is in use (mounted, active swap or held by another program); unmount or swapoff it, or choose another target"
	case errors.Is(err, ErrNoImage):
		return "hibernate first, or check that this is the right target"
	case errors.Is(err, os.ErrPermission):
		return "permission denied; run as root"
	}
	return ""
}

func wrap(target, op string, err error) error {
	if err == nil {
		return nil
	}
	var fe *FullError
	if errors.As(err, &fe) {
		return err
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	return &Error{Target: target, Op: op, Err: err}
}

// SpaceError reports that a target cannot hold even a minimal image.
type SpaceError struct {
	Target     string
	Need, Have uint64
}

func (e *SpaceError) Error() string {
	return fmt.Sprintf("%s has room for %s but an image needs at least %s: free space on it or choose a larger target",
		e.Target, bytesStr(e.Have), bytesStr(e.Need))
}

// MinRoom is the least room Create accepts. A target smaller than the
// worst case (all of RAM incompressible) is accepted above it: images are
// usually far smaller, and a write past the room fails with a FullError
// that the helper reports before jumping back.
const MinRoom = 1 << 20

// FullError is a write that ran past the target's room: the target is full.
type FullError struct {
	Target  string
	Room    uint64 // bytes the target can hold
	Written uint64 // image bytes written before it ran out
}

func (e *FullError) Error() string {
	return fmt.Sprintf("target full: the image outgrew the %s of room on %s after %s were written: free space on it or choose a larger target (RAM size plus 2%% always suffices)",
		bytesStr(e.Room), e.Target, bytesStr(e.Written))
}

func (e *FullError) Is(target error) bool { return target == unix.ENOSPC }

func (e *SpaceError) Is(target error) bool { return target == unix.ENOSPC }

func bytesStr(n uint64) string {
	const unit = 1 << 20
	return fmt.Sprintf("%.1f MiB", float64(n)/unit)
}
