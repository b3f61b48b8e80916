package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directAlign is the alignment of O_DIRECT buffers, offsets and lengths:
// every logical block size a disk reports (512 or 4096) divides it.
const directAlign = 4096

// directStage is how much of the image is gathered before one O_DIRECT
// write: large requests for the disk, little memory for the helper.
const directStage = 8 << 20

// directWriter writes an image to a block device with O_DIRECT, past the
// page cache: the image is written once and never read back by this
// kernel, so copying it into the page cache only costs CPU (a third of a
// CPU second per 512 MiB under emulation, several times the direct
// write's) and memory the helper does not have. Sequential appends are
// gathered into an aligned stage and written in directStage pieces; any
// other write is a read-modify-write of the aligned blocks it touches. A
// flush pads the last partial block with zeros: the device area past the
// image's end holds nothing (the signature records the image's length),
// and the next flush rewrites that block with what followed.
type directWriter struct {
	f     *os.File
	size  int64
	stage []byte // aligned; stage[:n] holds the device bytes from start
	start int64  // device offset of stage[0], aligned
	n     int
}

// openDirect opens dev a second time with O_DIRECT (the caller holds the
// O_EXCL claim; a plain open does not conflict with it).
func openDirect(dev string, size int64) (*directWriter, error) {
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		return nil, err
	}
	return &directWriter{f: f, size: size, stage: alignedBuffer(directStage), start: -1}, nil
}

// alignedBuffer returns n bytes at a directAlign-aligned address.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)) % directAlign
	return b[skip : skip+n : skip+n]
}

func alignDown(x int64) int64 { return x &^ (directAlign - 1) }
func alignUp(x int64) int64   { return alignDown(x + directAlign - 1) }

// WriteAt implements io.WriterAt at device offsets.
func (d *directWriter) WriteAt(p []byte, off int64) (int, error) {
	if d.start < 0 {
		d.start = alignDown(off)
		if d.start != off {
			// Begin the stage with the device's bytes before off.
			if err := d.readBlocks(d.stage[:directAlign], d.start); err != nil {
				return 0, err
			}
		}
		d.n = int(off - d.start)
	}
	if off != d.start+int64(d.n) {
		return d.rewrite(p, off)
	}
	written := 0
	for len(p) > 0 {
		c := copy(d.stage[d.n:], p)
		d.n += c
		p = p[c:]
		written += c
		if d.n == len(d.stage) {
			if err := d.writeStage(); err != nil {
				return written, err
			}
			d.start += int64(d.n)
			d.n = 0
		}
	}
	return written, nil
}

// rewrite writes p at off, away from the append point: a read-modify-write
// of the aligned blocks, which the stage, when it holds them, sees too.
func (d *directWriter) rewrite(p []byte, off int64) (int, error) {
	if end := d.start + int64(d.n); off+int64(len(p)) > end {
		// The image writer appends, then rewrites what lies behind.
		return 0, fmt.Errorf("write of %d bytes at %d goes past the append point %d", len(p), off, end)
	}
	// Staged bytes are newer than the disk's: write them out first.
	if err := d.Flush(); err != nil {
		return 0, err
	}
	lo, hi := alignDown(off), alignUp(off+int64(len(p)))
	buf := alignedBuffer(int(hi - lo))
	if err := d.readBlocks(buf, lo); err != nil {
		return 0, err
	}
	copy(buf[off-lo:], p)
	if _, err := d.f.WriteAt(buf, lo); err != nil {
		return 0, err
	}
	// The stage's block may be one of those just written.
	if off+int64(len(p)) > d.start {
		copy(d.stage[max(off-d.start, 0):d.n], p[max(d.start-off, 0):])
	}
	return len(p), nil
}

// readBlocks fills the aligned buf from the device at the aligned off;
// past the device's end it reads zeros.
func (d *directWriter) readBlocks(buf []byte, off int64) error {
	n, err := d.f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	clear(buf[n:])
	return nil
}

// Flush writes the staged bytes, the last block padded with zeros, and
// keeps that block staged so later appends complete it.
func (d *directWriter) Flush() error {
	if d.start < 0 || d.n == 0 {
		return nil
	}
	if err := d.writeStage(); err != nil {
		return err
	}
	if keep := d.n % directAlign; keep == 0 {
		d.start += int64(d.n)
		d.n = 0
	} else {
		tail := d.n - keep
		copy(d.stage, d.stage[tail:d.n])
		d.start += int64(tail)
		d.n = keep
	}
	return nil
}

// writeStage writes stage[:n] rounded up to whole blocks.
func (d *directWriter) writeStage() error {
	end := int(alignUp(int64(d.n)))
	clear(d.stage[d.n:end])
	if d.start+int64(end) > d.size {
		return fmt.Errorf("write of %d bytes at %d past the device's end %d", end, d.start, d.size)
	}
	_, err := d.f.WriteAt(d.stage[:end], d.start)
	return err
}

// Sync writes the staged bytes and flushes the disk's write cache.
func (d *directWriter) Sync() error {
	if err := d.Flush(); err != nil {
		return err
	}
	return d.f.Sync()
}

func (d *directWriter) Close() error { return d.f.Close() }

// directMinRead is the smallest read served with O_DIRECT: chunk records
// are, the header, index and commit record reads below it are not.
const directMinRead = 64 << 10

// directReader reads large pieces of an image on a block device with
// O_DIRECT, for the same reason directWriter writes them so: resume reads
// each byte once (checking, then restoring in another kernel), and the
// page cache would only add a copy and its bookkeeping (0.44 against
// 0.09 CPU seconds per 512 MiB under emulation). Reads are widened to
// aligned blocks in a pooled aligned buffer and copied out.
type directReader struct {
	f    *os.File
	bufs sync.Pool // *[]byte, aligned
}

func openDirectReader(dev string) (*directReader, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil, err
	}
	return &directReader{f: f}, nil
}

// ReadAt reads len(p) bytes at the device offset off, which the caller
// keeps inside the device.
func (d *directReader) ReadAt(p []byte, off int64) (int, error) {
	lo, hi := alignDown(off), alignUp(off+int64(len(p)))
	bp, _ := d.bufs.Get().(*[]byte)
	if bp == nil || len(*bp) < int(hi-lo) {
		b := alignedBuffer(int(hi - lo))
		bp = &b
	}
	defer d.bufs.Put(bp)
	buf := (*bp)[:hi-lo]
	n, err := d.f.ReadAt(buf, lo)
	got := max(min(int64(n)-(off-lo), int64(len(p))), 0)
	copy(p, buf[off-lo:off-lo+got])
	if got == int64(len(p)) {
		return len(p), nil
	}
	if err == nil {
		err = io.EOF
	}
	return int(got), err
}

func (d *directReader) Close() error { return d.f.Close() }

// SpanBuffer returns a buffer ReadSpan can read up to n bytes into.
func SpanBuffer(n int) []byte { return alignedBuffer(n + 2*directAlign) }

// readSpan reads n bytes at the device offset off into buf (from
// SpanBuffer) without a copy: it reads the aligned blocks around them and
// returns the part that was asked for.
func (d *directReader) readSpan(buf []byte, off int64, n int) ([]byte, error) {
	lo, hi := alignDown(off), alignUp(off+int64(n))
	if int(hi-lo) > len(buf) {
		return nil, fmt.Errorf("span buffer of %d bytes for %d at %d", len(buf), n, off)
	}
	got, err := d.f.ReadAt(buf[:hi-lo], lo)
	if int64(got) >= off-lo+int64(n) {
		return buf[off-lo : off-lo+int64(n)], nil
	}
	if err == nil {
		err = io.EOF
	}
	return nil, err
}

// ReadDirect reads n bytes at off from dev itself, past this kernel's
// cache of it (fsstate reads filesystem superblocks so).
func ReadDirect(dev string, off int64, n int) ([]byte, error) {
	d, err := openDirectReader(dev)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	p := make([]byte, n)
	if _, err := d.ReadAt(p, off); err != nil {
		return nil, err
	}
	return p, nil
}
