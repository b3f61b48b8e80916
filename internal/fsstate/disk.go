package fsstate

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/storage"
)

// disk reads a block device with O_DIRECT, past this kernel's cache of
// it: the guard must see what is on the disk, not what the mounted
// filesystem believes. Reads go through one aligned window so that a
// journal walk (a descriptor, its data blocks skipped, a commit block
// nearby) costs few requests; memory stays at one window.
type disk struct {
	name   string
	f      *os.File
	size   int64
	buf    []byte // aligned, len == maxWindow
	winOff int64
	winLen int
}

const (
	directAlign = 4096
	maxWindow   = 1 << 20
)

func openDisk(dev string) (*disk, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &disk{name: dev, f: f, size: size, buf: storage.SpanBuffer(maxWindow)[:maxWindow], winOff: -1}, nil
}

func (d *disk) Close() error { return d.f.Close() }

// read returns n bytes at off, valid until the next read. ahead is how
// much to read at once when the window does not hold them (at least n).
func (d *disk) read(off int64, n, ahead int) ([]byte, error) {
	if off < 0 || n <= 0 || n > maxWindow-directAlign || off > d.size-int64(n) {
		return nil, fmt.Errorf("read of %d bytes at %d outside %s (%d bytes)", n, off, d.name, d.size)
	}
	if d.winOff >= 0 && off >= d.winOff && off+int64(n) <= d.winOff+int64(d.winLen) {
		return d.buf[off-d.winOff : off-d.winOff+int64(n)], nil
	}
	lo := off &^ (directAlign - 1)
	want := int64(max(n, ahead)) + off - lo
	want = min((want+directAlign-1)&^(directAlign-1), maxWindow, (d.size-lo+directAlign-1)&^(directAlign-1))
	d.winOff = -1
	got, err := d.f.ReadAt(d.buf[:want], lo)
	if int64(got) < off-lo+int64(n) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading %s at %d: %w", d.name, off, err)
	}
	d.winOff, d.winLen = lo, got
	return d.buf[off-lo : off-lo+int64(n)], nil
}
