package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultName is the image file name in a directory target.
const DefaultName = "kjump.img"

// fileTarget stores the image as one file, written under a temporary name
// and renamed into place on Commit.
type fileTarget struct {
	path, spec string
	// real is path with its directory's symbolic links resolved: the
	// directories checkPrivate checked, which every open goes through (a
	// link on the way, re-pointed by whoever owns its directory, could
	// lead elsewhere later).
	real string
}

func newFileTarget(path, spec string) (*fileTarget, error) {
	path = filepath.Clean(path)
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		if err == nil {
			err = unix.ENOTDIR
		}
		return nil, &Error{Target: spec, Op: "open directory of", Err: err}
	}
	real, err := checkPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", spec, err)
	}
	return &fileTarget{path: path, spec: spec, real: real}, nil
}

// checkPrivate refuses an image path other users could change: a
// directory (or any directory above it) they can write, or an existing
// image file they can write. They could replace the image with a forged
// one that resume would run with root's trust, or plant one. The image
// itself is created 0600; directories kjump creates are 0700. It returns
// the path through the directories it checked (symbolic links resolved);
// files there are opened with openPrivate, which checks the file again on
// the opened descriptor.
func checkPrivate(path string) (string, error) {
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return "", err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", err
	}
	real := filepath.Join(dir, filepath.Base(path))
	if fi, err := os.Lstat(real); err == nil {
		if err := notShared(path, fi, "image file", false); err != nil {
			return "", err
		}
	}
	for d, first := dir, true; ; first = false {
		fi, err := os.Stat(d)
		if err != nil {
			return "", err
		}
		// Above the image's own directory a sticky bit is enough (as on
		// /tmp): others cannot rename or remove what they do not own.
		if err := notShared(d, fi, "directory", !first); err != nil {
			return "", err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return real, nil
		}
		d = parent
	}
}

// openPrivate opens an image file without following a symbolic link and
// checks owner and mode on the opened descriptor: the file checked is the
// file used, whatever was swapped in after checkPrivate. name is the path
// for messages.
func openPrivate(path, name string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("image file %s is a symbolic link, which whoever can change it could point anywhere: give the real path", name)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("image file %s is not a regular file (mode %v): give the path of an image file", name, fi.Mode())
	}
	if err == nil {
		err = notShared(name, fi, "image file", false)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// notShared checks that only root or this user can change fi.
func notShared(path string, fi os.FileInfo, what string, stickyOK bool) error {
	if fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%s %s is a symbolic link, which whoever can change it could point anywhere: give the real path", what, path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("cannot read the owner of %s", path)
	}
	perm := st.Mode & 0o7777
	if st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s %s belongs to user %d, who could replace the image: use a %s owned by root (chown root %s; chmod go-w %s)",
			what, path, st.Uid, what, path, path)
	}
	if perm&0o022 != 0 && !(stickyOK && perm&unix.S_ISVTX != 0) {
		fix := "chmod go-w " + path
		if what == "directory" {
			fix = "chmod 0700 " + path + ", or use a directory only root can write"
		}
		return fmt.Errorf("%s %s is writable by other users (mode %04o), who could replace or plant an image: %s", what, path, perm, fix)
	}
	return nil
}

func (t *fileTarget) String() string {
	if t.spec == t.path {
		return t.path
	}
	return t.path + " (" + t.spec + ")"
}

func (t *fileTarget) tmp() string { return t.real + ".tmp" }

func (t *fileTarget) Create(maxSize uint64) (Writer, error) {
	dir := filepath.Dir(t.real)
	if err := checkReplaceable(t.real, t.path); err != nil {
		return nil, &Error{Target: t.String(), Op: "create image on", Err: err}
	}
	// The old image goes first: a crash while writing the new one must not
	// leave an older image looking resumable.
	if err := os.Remove(t.real); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, wrap(t.String(), "remove old image", err)
	}
	if err := os.Remove(t.tmp()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, wrap(t.String(), "remove stale temporary image", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, wrap(t.String(), "sync directory of", err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return nil, wrap(t.String(), "check free space on", err)
	}
	if fs.Flags&unix.ST_RDONLY != 0 {
		return nil, &Error{Target: t.String(), Op: "create image on", Err: unix.EROFS}
	}
	if have, need := fs.Bavail*uint64(fs.Bsize), min(maxSize, MinRoom); have < need {
		return nil, &SpaceError{Target: t.String(), Need: need, Have: have}
	}
	f, err := os.OpenFile(t.tmp(), os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, wrap(t.String(), "create image", err)
	}
	return &fileWriter{t: t, f: f}, nil
}

type fileWriter struct {
	t *fileTarget
	f *os.File
}

func (w *fileWriter) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.f.WriteAt(p, off)
	return n, wrap(w.t.String(), "write image to", err)
}

func (w *fileWriter) Sync() error { return wrap(w.t.String(), "sync image on", w.f.Sync()) }

// StartWriteback asks the kernel to start writing [off, off+n) now
// (image.Write calls it as it goes); errors show up at Sync.
func (w *fileWriter) StartWriteback(off, n int64) { startWriteback(w.f, off, n) }

func (w *fileWriter) Commit() error {
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return wrap(w.t.String(), "sync image on", err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.t.tmp())
		return wrap(w.t.String(), "close image on", err)
	}
	if err := os.Rename(w.t.tmp(), w.t.real); err != nil {
		os.Remove(w.t.tmp())
		return wrap(w.t.String(), "publish image on", err)
	}
	return wrap(w.t.String(), "sync directory of", syncDir(filepath.Dir(w.t.real)))
}

func (w *fileWriter) Abort() error {
	w.f.Close()
	return wrap(w.t.String(), "remove unfinished image", os.Remove(w.t.tmp()))
}

func (t *fileTarget) Open(writable bool) (Image, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := openPrivate(t.real, t.path, flag)
	if errors.Is(err, os.ErrNotExist) {
		if _, terr := os.Stat(t.tmp()); terr == nil {
			return nil, &Error{Target: t.String(), Op: "open image on", Err: errUnfinished}
		}
		return nil, &Error{Target: t.String(), Op: "open image on", Err: ErrNoImage}
	}
	if err != nil {
		return nil, wrap(t.String(), "open image on", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, wrap(t.String(), "stat image on", err)
	}
	return &fileImage{f: f, size: fi.Size(), name: t.String()}, nil
}

var errUnfinished = fmt.Errorf("%w (only an unfinished temporary image, left by an interrupted write; it cannot be resumed)", ErrNoImage)

type fileImage struct {
	f    *os.File
	size int64
	name string
}

func (i *fileImage) ReadAt(p []byte, off int64) (int, error) {
	n, err := i.f.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, wrap(i.name, "read image from", err)
	}
	return n, err
}
func (i *fileImage) WriteAt(p []byte, off int64) (int, error) {
	n, err := i.f.WriteAt(p, off)
	return n, wrap(i.name, "write image to", err)
}
func (i *fileImage) Size() int64  { return i.size }
func (i *fileImage) Sync() error  { return wrap(i.name, "sync image on", i.f.Sync()) }
func (i *fileImage) Close() error { return i.f.Close() }

// checkReplaceable refuses to replace an existing file that is not a kjump
// image: a mistyped --to must not destroy someone's data.
func checkReplaceable(path, name string) error {
	f, err := openPrivate(path, name, os.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	magic := make([]byte, len(imageMagic))
	n, _ := io.ReadFull(f, magic)
	if n == 0 || string(magic) == imageMagic {
		return nil // empty, or an image (valid, partial or invalidated)
	}
	return fmt.Errorf("%s exists and is not a kjump image; remove it or choose another path", name)
}

// imageMagic starts every image (see internal/image).
const imageMagic = "KJUMPIMG"

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return err // EINVAL: filesystems that cannot sync directories
	}
	return nil
}

// OpenUnfinished opens the temporary file an interrupted write left.
func (t *fileTarget) OpenUnfinished() (Image, error) {
	f, err := openPrivate(t.tmp(), t.path+".tmp", os.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoImage
	}
	if err != nil {
		return nil, wrap(t.String(), "open unfinished image on", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, wrap(t.String(), "stat unfinished image on", err)
	}
	return &fileImage{f: f, size: fi.Size(), name: t.String()}, nil
}
