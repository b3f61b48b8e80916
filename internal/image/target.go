package image

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kjump/kjump/internal/storage"
)

// WriteTarget writes src as a new image on t and commits it: the image's
// own commit record first, then the target's publish step (rename, or the
// device signature block). Any previous image on t stops being resumable
// before the first byte is written. On error nothing resumable is left.
func WriteTarget(ctx context.Context, t storage.Target, src Source, md Metadata, opts ...WriterOption) (Stats, error) {
	o, err := newWriterOptions(opts)
	if err != nil {
		return Stats{}, err // before anything on t changes
	}
	w, err := t.Create(maxImageSize(src, md, o))
	if err != nil {
		return Stats{}, err
	}
	st, err := Write(ctx, w, src, md, opts...)
	if err != nil {
		w.Abort()
		return Stats{}, err
	}
	if err := w.Commit(); err != nil {
		return Stats{}, err
	}
	return st, nil
}

// OpenTarget opens the committed image on t; Close the Reader when done.
// A target with no published image gives an error matching ErrNotCommitted.
func OpenTarget(t storage.Target, opts ...ReaderOption) (*Reader, error) {
	img, err := t.Open(false)
	if err != nil {
		if errors.Is(err, storage.ErrNoImage) {
			if ue := unfinished(t, opts...); ue != nil {
				return nil, ue
			}
			return nil, &notCommitted{err}
		}
		return nil, err
	}
	r, err := Open(img, opts...)
	if err != nil {
		img.Close()
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	r.closer = img
	return r, nil
}

// InvalidateTarget invalidates the image on t (see Invalidate).
func InvalidateTarget(t storage.Target, opts ...ReaderOption) error {
	return changeTarget(t, Invalidate, opts)
}

// MarkRestoringTarget marks the image on t as being restored (see
// MarkRestoring).
func MarkRestoringTarget(t storage.Target, opts ...ReaderOption) error {
	return changeTarget(t, MarkRestoring, opts)
}

func changeTarget(t storage.Target, change func(ReadWriter, ...ReaderOption) error, opts []ReaderOption) error {
	img, err := t.Open(true)
	if err != nil {
		if errors.Is(err, storage.ErrNoImage) {
			return &notCommitted{err}
		}
		return err
	}
	defer img.Close()
	return change(img, opts...)
}

// Close releases the target a Reader from OpenTarget holds.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// notCommitted keeps the storage layer's message and matches ErrNotCommitted.
type notCommitted struct{ err error }

func (e *notCommitted) Error() string   { return e.err.Error() }
func (e *notCommitted) Unwrap() []error { return []error{e.err, ErrNotCommitted} }

// UnfinishedError is a target holding an image whose writing stopped
// before it was committed: power loss, a crash or a write error during
// hibernation. It matches ErrNotCommitted and storage.ErrNoImage.
type UnfinishedError struct {
	Target  string
	ID      string
	Created time.Time // when hibernation started
}

func (e *UnfinishedError) Error() string {
	return fmt.Sprintf("an unfinished image from %s on %s (image %s): hibernation was interrupted before it committed, so it cannot be resumed",
		e.Created.UTC().Format("2006-01-02 15:04:05 MST"), e.Target, e.ID)
}

func (e *UnfinishedError) Is(target error) bool {
	return target == ErrNotCommitted || target == storage.ErrNoImage
}

// unfinished describes an interrupted image on t, or returns nil.
func unfinished(t storage.Target, opts ...ReaderOption) *UnfinishedError {
	u, ok := t.(storage.Unfinished)
	if !ok {
		return nil
	}
	img, err := u.OpenUnfinished()
	if err != nil {
		return nil
	}
	defer img.Close()
	r, err := Open(img, opts...)
	if err != nil || r.Status() == nil || errors.Is(r.Status(), ErrInvalidated) {
		return nil
	}
	info := r.Info()
	return &UnfinishedError{Target: t.String(), ID: info.ID, Created: info.Created}
}
