package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// A raw block device holds, at offset 0, a signature block written last on
// commit, and the image from SignatureSize on.
//
//	off len field
//	  0   8 magic "KJUMPDEV"
//	  8   4 version (1)
//	 12   4 reserved, zero
//	 16   8 image offset (SignatureSize)
//	 24   8 image length
//	 32   4 CRC32C of bytes 0..31
//	 36   . zero up to SignatureSize
const (
	SignatureSize  = 4096
	signatureMagic = "KJUMPDEV"
	sigVersion     = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockTarget is a raw image area: a whole block device, or a mapped file
// (mapped.go) seen through its filesystem or directly on its device.
type blockTarget struct {
	name, spec string
	open       func(writable, excl bool) (volume, error)
	// blank replaces the signature when a new image starts; nil means zeros.
	blank []byte
	// dev is the block device when the volume is all of it: the image is
	// then written with O_DIRECT (direct.go).
	dev string
}

// volume is the byte range a blockTarget lays its signature and image on.
type volume interface {
	io.ReaderAt
	io.WriterAt
	Size() int64
	Sync() error
	Close() error
}

// fileVolume is a device or regular file used whole.
type fileVolume struct {
	*os.File
	size int64
}

func (v *fileVolume) Size() int64 { return v.size }

func openBlock(dev, spec string) (*blockTarget, error) {
	fi, err := os.Stat(dev)
	if err != nil {
		return nil, wrap(spec, "open device", err)
	}
	if err := checkDeviceNode(fi, dev, spec); err != nil {
		return nil, err
	}
	// The node the checks saw, links (/dev/mapper/NAME, /dev/disk/by-*)
	// resolved: opened without following links and checked again on the
	// descriptor, so a link re-pointed in between leads nowhere.
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return nil, wrap(spec, "open device", err)
	}
	rdev := fi.Sys().(*syscall.Stat_t).Rdev
	name := dev
	if spec != dev {
		name = dev + " (" + spec + ")"
	}
	return &blockTarget{name: name, spec: spec, dev: dev, open: func(writable, excl bool) (volume, error) {
		flag := os.O_RDONLY
		if writable {
			flag = os.O_RDWR
		}
		if excl {
			// O_EXCL on a block device refuses a mounted filesystem or active swap.
			flag |= os.O_EXCL
		}
		f, err := os.OpenFile(real, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, wrap(name, "open device", err)
		}
		if err := sameDevice(f, rdev, dev, spec); err != nil {
			f.Close()
			return nil, err
		}
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			f.Close()
			return nil, wrap(name, "get size of", err)
		}
		return &fileVolume{File: f, size: size}, nil
	}}, nil
}

// checkDeviceNode refuses what is not a block device, and a node every
// user can write.
func checkDeviceNode(fi os.FileInfo, dev, spec string) error {
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return fmt.Errorf("target %s is not a block device: give a partition such as /dev/sdb2", spec)
	}
	// Group write is the norm for disks (root:disk 0660): the disk group
	// can write every disk anyway. A node anyone can write is not.
	if fi.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("target %s: device node %s is writable by every user (mode %04o), who could forge or destroy the image: chmod o-w %s (and check the udev rule that made it so)",
			spec, dev, fi.Mode().Perm(), dev)
	}
	return nil
}

// sameDevice checks the opened node as openBlock checked its path: still a
// block device nobody else can write, and the same device.
func sameDevice(f *os.File, rdev uint64, dev, spec string) error {
	fi, err := f.Stat()
	if err != nil {
		return wrap(spec, "stat device", err)
	}
	if err := checkDeviceNode(fi, dev, spec); err != nil {
		return err
	}
	if got := fi.Sys().(*syscall.Stat_t).Rdev; got != rdev {
		return fmt.Errorf("target %s: %s is now device %d:%d, not the %d:%d checked a moment ago: something replaced the node; check what manages /dev",
			spec, dev, unix.Major(got), unix.Minor(got), unix.Major(rdev), unix.Minor(rdev))
	}
	return nil
}

func (t *blockTarget) String() string { return t.name }

func encodeSignature(length uint64) []byte {
	b := make([]byte, SignatureSize)
	copy(b, signatureMagic)
	binary.LittleEndian.PutUint32(b[8:], sigVersion)
	binary.LittleEndian.PutUint64(b[16:], SignatureSize)
	binary.LittleEndian.PutUint64(b[24:], length)
	binary.LittleEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
	return b
}

// parseSignature returns the image length, or ErrNoImage.
func parseSignature(b []byte, devSize int64) (int64, error) {
	if string(b[:8]) != signatureMagic {
		return 0, ErrNoImage
	}
	if crc32.Checksum(b[:32], castagnoli) != binary.LittleEndian.Uint32(b[32:]) {
		return 0, errors.New("kjump signature block is corrupt (checksum mismatch); the image cannot be trusted")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != sigVersion {
		return 0, fmt.Errorf("kjump signature version %d is not supported; resume with the kjump version that wrote it", v)
	}
	off, n := binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:])
	if off != SignatureSize || devSize < SignatureSize || n > uint64(devSize-SignatureSize) {
		return 0, fmt.Errorf("kjump signature block describes an image (%d bytes at %d) larger than the device (%d bytes)", n, off, devSize)
	}
	return int64(n), nil
}

func (t *blockTarget) Create(maxSize uint64) (Writer, error) {
	f, err := t.open(true, true)
	if err != nil {
		return nil, err
	}
	size := f.Size()
	room := uint64(max(size-SignatureSize, 0))
	if room < min(maxSize, MinRoom) {
		f.Close()
		return nil, &SpaceError{Target: t.String(), Need: min(maxSize, MinRoom), Have: room}
	}
	// Clear the signature first so an interrupted write is never resumable.
	blank := t.blank
	if blank == nil {
		blank = make([]byte, SignatureSize)
	}
	if _, err := f.WriteAt(blank, 0); err != nil {
		f.Close()
		return nil, wrap(t.String(), "clear signature on", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, wrap(t.String(), "sync", err)
	}
	w := &blockWriter{t: t, f: f, limit: int64(min(maxSize, room)), room: room}
	if t.dev != "" {
		// Without O_DIRECT (a device that refuses it) the page cache
		// path below works the same, only slower.
		w.direct, _ = openDirect(t.dev, size)
	}
	return w, nil
}

type blockWriter struct {
	t      *blockTarget
	f      volume
	direct *directWriter // nil: through the page cache
	limit  int64         // the announced maximum size, or the room if less
	room   uint64
	end    int64
}

func (w *blockWriter) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > w.limit {
		if uint64(off+int64(len(p))) > w.room {
			return 0, &FullError{Target: w.t.String(), Room: w.room, Written: uint64(w.end)}
		}
		return 0, &Error{Target: w.t.String(), Op: "write image to", Err: unix.ENOSPC}
	}
	var n int
	var err error
	if w.direct != nil {
		n, err = w.direct.WriteAt(p, SignatureSize+off)
	} else {
		n, err = w.f.WriteAt(p, SignatureSize+off)
	}
	w.end = max(w.end, off+int64(n))
	return n, wrap(w.t.String(), "write image to", err)
}

func (w *blockWriter) Sync() error {
	if w.direct != nil {
		return wrap(w.t.String(), "sync", w.direct.Sync())
	}
	return wrap(w.t.String(), "sync", w.f.Sync())
}

// StartWriteback asks the kernel to start writing [off, off+n) of the image
// now, where the volume is one file or device; errors show up at Sync.
func (w *blockWriter) StartWriteback(off, n int64) {
	if v, ok := w.f.(*fileVolume); ok && w.direct == nil {
		startWriteback(v.File, SignatureSize+off, n)
	}
}

func (w *blockWriter) Commit() error {
	defer w.f.Close()
	if w.direct != nil {
		defer w.direct.Close()
	}
	if err := w.Sync(); err != nil {
		return err
	}
	if _, err := w.f.WriteAt(encodeSignature(uint64(w.end)), 0); err != nil {
		return wrap(w.t.String(), "write signature to", err)
	}
	if err := w.f.Sync(); err != nil {
		// The signature may have reached the disk although the caller
		// is told the commit failed (and the machine keeps running):
		// take it back, best effort, so that image is never resumed.
		blank := w.t.blank
		if blank == nil {
			blank = make([]byte, SignatureSize)
		}
		w.f.WriteAt(blank, 0)
		w.f.Sync()
		return wrap(w.t.String(), "sync", err)
	}
	return nil
}

func (w *blockWriter) Abort() error {
	if w.direct != nil {
		w.direct.Close()
	}
	return w.f.Close()
}

func (t *blockTarget) Open(writable bool) (Image, error) {
	f, err := t.open(writable, false)
	if err != nil {
		return nil, err
	}
	size := f.Size()
	sig := make([]byte, SignatureSize)
	if size < SignatureSize {
		f.Close()
		return nil, &Error{Target: t.String(), Op: "open image on", Err: ErrNoImage}
	}
	if _, err := f.ReadAt(sig, 0); err != nil {
		f.Close()
		return nil, wrap(t.String(), "read signature from", err)
	}
	n, err := parseSignature(sig, size)
	if err != nil {
		f.Close()
		return nil, &Error{Target: t.String(), Op: "open image on", Err: err}
	}
	img := &blockImage{f: f, size: n, name: t.String()}
	if t.dev != "" {
		img.direct, _ = openDirectReader(t.dev) // else through the page cache
	}
	return img, nil
}

// blockImage is the image section of a device.
type blockImage struct {
	f      volume
	direct *directReader // large reads; nil: all through the page cache
	size   int64
	name   string
}

func (i *blockImage) ReadAt(p []byte, off int64) (int, error) {
	if off >= i.size {
		return 0, io.EOF
	}
	short := off+int64(len(p)) > i.size
	if short {
		p = p[:i.size-off]
	}
	var n int
	var err error
	if i.direct != nil && len(p) >= directMinRead {
		n, err = i.direct.ReadAt(p, SignatureSize+off)
	} else {
		n, err = i.f.ReadAt(p, SignatureSize+off)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return n, wrap(i.name, "read image from", err)
	}
	if short {
		return n, io.EOF
	}
	return n, err
}

// SpanBuffer and ReadSpan let the image reader read records without a
// copy: with O_DIRECT into an aligned buffer of the reader's (image.Reader
// holds one per worker), else as ReadAt.
func (i *blockImage) SpanBuffer(n int) []byte { return SpanBuffer(n) }

func (i *blockImage) ReadSpan(buf []byte, off int64, n int) ([]byte, error) {
	if off < 0 || off+int64(n) > i.size {
		return nil, io.EOF
	}
	if i.direct == nil || n < directMinRead {
		_, err := i.ReadAt(buf[:n], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return buf[:n], nil
	}
	b, err := i.direct.readSpan(buf, SignatureSize+off, n)
	if err != nil {
		return nil, wrap(i.name, "read image from", err)
	}
	return b, nil
}

func (i *blockImage) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > i.size {
		return 0, fmt.Errorf("write past the end of the image on %s", i.name)
	}
	n, err := i.f.WriteAt(p, SignatureSize+off)
	return n, wrap(i.name, "write image to", err)
}

func (i *blockImage) Size() int64 { return i.size }
func (i *blockImage) Sync() error { return wrap(i.name, "sync", i.f.Sync()) }
func (i *blockImage) Close() error {
	if i.direct != nil {
		i.direct.Close()
	}
	return i.f.Close()
}

// OpenUnfinished finds an image written after the signature was cleared
// but never committed: an image header right after the signature block.
func (t *blockTarget) OpenUnfinished() (Image, error) {
	f, err := t.open(false, false)
	if err != nil {
		return nil, err
	}
	size := f.Size()
	magic := make([]byte, len(imageMagic))
	if size < SignatureSize+int64(len(magic)) {
		f.Close()
		return nil, ErrNoImage
	}
	if _, err := f.ReadAt(magic, SignatureSize); err != nil || string(magic) != imageMagic {
		f.Close()
		return nil, ErrNoImage
	}
	return &blockImage{f: f, size: size - SignatureSize, name: t.String()}, nil
}
