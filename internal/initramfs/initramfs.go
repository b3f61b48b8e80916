// Package initramfs writes Linux initramfs images: "newc" cpio archives,
// optionally gzip-compressed, as unpacked by the kernel's init/initramfs.c.
//
// The kernel creates each entry with a plain open/mkdir/mknod, so a parent
// directory must precede its children; the Writer adds missing parents itself.
// Timestamps and owners are fixed (mtime 0, root:root) so that the same
// inputs give byte-identical images.
package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// Writer appends entries to a newc archive. Close writes the trailer.
type Writer struct {
	w       io.Writer
	closers []io.Closer // gzip stream, then file, closed in order
	off     int64       // bytes written, for 4-byte alignment
	ino     uint32
	seen    map[string]bool
	err     error
}

// NewWriter returns a Writer producing an uncompressed archive on w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, seen: map[string]bool{}}
}

// NewGzipWriter returns a Writer producing a gzip-compressed archive on w.
// Close flushes the gzip stream but does not close w.
func NewGzipWriter(w io.Writer) *Writer {
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // BestSpeed is a valid level
	iw := NewWriter(zw)
	iw.closers = []io.Closer{zw}
	return iw
}

// Create creates the file at path and returns a gzip-compressing Writer on it.
// Close also closes the file.
func Create(path string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := NewGzipWriter(f)
	w.closers = append(w.closers, f)
	return w, nil
}

// clean turns a user path into the archive form: relative, no "./" or "..".
func clean(name string) (string, error) {
	p := strings.TrimPrefix(path.Clean("/"+name), "/")
	if p == "" {
		return "", fmt.Errorf("initramfs: empty or root path %q", name)
	}
	return p, nil
}

// Dir adds a directory (and any missing parents).
func (w *Writer) Dir(name string, perm fs.FileMode) error {
	p, err := clean(name)
	if err != nil {
		return err
	}
	if w.seen[p] {
		return nil
	}
	if err := w.parents(p); err != nil {
		return err
	}
	w.seen[p] = true
	return w.entry(p, modeDir|uint32(perm.Perm()), 2, 0, 0, 0, nil)
}

// File adds a regular file with the given contents.
func (w *Writer) File(name string, perm fs.FileMode, data []byte) error {
	return w.reader(name, perm, int64(len(data)), bytes.NewReader(data))
}

// CopyFile adds a regular file whose contents are read from src on disk.
func (w *Writer) CopyFile(name string, perm fs.FileMode, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("initramfs: %s is not a regular file", src)
	}
	return w.reader(name, perm, st.Size(), f)
}

func (w *Writer) reader(name string, perm fs.FileMode, size int64, r io.Reader) error {
	p, err := w.newName(name)
	if err != nil {
		return err
	}
	if size > 0xffffffff {
		return fmt.Errorf("initramfs: %s: newc cannot hold files of 4 GiB or more", name)
	}
	return w.entry(p, modeReg|uint32(perm.Perm()), 1, size, 0, 0, r)
}

// Symlink adds a symbolic link name -> target.
func (w *Writer) Symlink(name, target string) error {
	p, err := w.newName(name)
	if err != nil {
		return err
	}
	return w.entry(p, modeLink|0o777, 1, int64(len(target)), 0, 0, strings.NewReader(target))
}

// CharDev adds a character device node, e.g. CharDev("dev/console", 0600, 5, 1).
// The kernel needs /dev/console in the archive to give PID 1 its stdio before
// devtmpfs is mounted.
func (w *Writer) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	p, err := w.newName(name)
	if err != nil {
		return err
	}
	return w.entry(p, modeChr|uint32(perm.Perm()), 1, 0, major, minor, nil)
}

// Close writes the trailer and closes the compressor and file, if any.
func (w *Writer) Close() error {
	if w.err == nil {
		w.err = w.entry("TRAILER!!!", 0, 1, 0, 0, 0, nil)
	}
	err := w.err
	for _, c := range w.closers {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	w.closers = nil
	if w.err == nil {
		w.err = errors.New("initramfs: writer closed")
	}
	return err
}

// newName validates a non-directory name, rejects duplicates and adds parents.
func (w *Writer) newName(name string) (string, error) {
	p, err := clean(name)
	if err != nil {
		return "", err
	}
	if w.seen[p] {
		return "", fmt.Errorf("initramfs: duplicate entry %s", p)
	}
	if err := w.parents(p); err != nil {
		return "", err
	}
	w.seen[p] = true
	return p, nil
}

func (w *Writer) parents(p string) error {
	if d := path.Dir(p); d != "." && !w.seen[d] {
		return w.Dir(d, 0o755)
	}
	return nil
}

// Mode bits of the cpio header (the st_mode file type values).
const (
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeLink = 0o120000
	modeChr  = 0o020000
)

// entry writes one newc header, the NUL-terminated name and the data, each
// padded to 4 bytes.
func (w *Writer) entry(name string, mode, nlink uint32, size int64, rmaj, rmin uint32, data io.Reader) error {
	if w.err != nil {
		return w.err
	}
	w.ino++
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		w.ino, mode, 0, 0, nlink, 0, size, 0, 0, rmaj, rmin, len(name)+1, 0)
	w.write([]byte(hdr + name + "\x00"))
	w.pad()
	if data != nil {
		n, err := io.Copy(writerFunc(w.write), io.LimitReader(data, size))
		if err == nil && n != size {
			err = fmt.Errorf("initramfs: %s: short read (%d of %d bytes)", name, n, size)
		}
		if err != nil && w.err == nil {
			w.err = err
		}
		w.pad()
	}
	return w.err
}

func (w *Writer) pad() {
	if r := w.off % 4; r != 0 {
		w.write(make([]byte, 4-r))
	}
}

func (w *Writer) write(b []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.w.Write(b)
	w.off += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
