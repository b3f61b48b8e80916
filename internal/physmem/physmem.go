// Package physmem reads and writes physical memory through /dev/mem.
//
// Access goes through mmap windows, not read(2)/write(2): /dev/mem read()
// stops at the reading kernel's own top of RAM, while mmap reaches every
// address the kernel allows (with STRICT_DEVMEM: anything that is not its
// own System RAM, which is exactly the other kernel's memory and the
// reserved region).
package physmem

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

const pageSize = 4096

// Mem is an open /dev/mem.
type Mem struct {
	f        *os.File
	writable bool
}

// Open opens /dev/mem (path for tests) read-only or read-write.
func Open(path string, writable bool) (*Mem, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w (needs root and CONFIG_DEVMEM)", path, err)
	}
	return &Mem{f: f, writable: writable}, nil
}

// Close closes /dev/mem.
func (m *Mem) Close() error { return m.f.Close() }

// window maps the pages covering [addr, addr+n) and returns the mapping and
// the offset of addr inside it.
func (m *Mem) window(addr int64, n int, write bool) ([]byte, int, error) {
	start := addr &^ (pageSize - 1)
	length := int(addr-start) + n
	length = (length + pageSize - 1) &^ (pageSize - 1)
	prot := unix.PROT_READ
	if write {
		prot |= unix.PROT_WRITE
	}
	b, err := unix.Mmap(int(m.f.Fd()), start, length, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, 0, fmt.Errorf("mapping physical memory %#x-%#x: %w (the kernel refuses /dev/mem access to its own RAM under STRICT_DEVMEM)", addr, addr+int64(n), err)
	}
	return b, int(addr - start), nil
}

// maxWindow bounds one mapping so huge transfers do not need huge address
// space or page-table memory at once.
const maxWindow = 64 << 20

// ReadAt copies physical memory at addr into p.
func (m *Mem) ReadAt(p []byte, addr int64) (int, error) { return m.transfer(p, addr, false) }

// WriteAt copies p to physical memory at addr.
func (m *Mem) WriteAt(p []byte, addr int64) (int, error) {
	if !m.writable {
		return 0, fmt.Errorf("physical memory opened read-only")
	}
	return m.transfer(p, addr, true)
}

// ZeroAt clears n bytes of physical memory at addr, in place.
func (m *Mem) ZeroAt(addr, n int64) error {
	if !m.writable {
		return fmt.Errorf("physical memory opened read-only")
	}
	for n > 0 {
		k := int(min(n, maxWindow))
		w, off, err := m.window(addr, k, true)
		if err != nil {
			return err
		}
		clearNonZero(w[off : off+k])
		unix.Munmap(w)
		addr, n = addr+int64(k), n-int64(k)
	}
	return nil
}

// zeroBlock is what clearNonZero compares with.
var zeroBlock = make([]byte, 64<<10)

// clearNonZero zeroes b, writing only the blocks that are not zero
// already: RAM a fresh boot never touched often is, and reading it costs
// less than writing (no dirty lines to write back).
func clearNonZero(b []byte) {
	for len(b) > 0 {
		n := min(len(b), len(zeroBlock))
		if !bytes.Equal(b[:n], zeroBlock[:n]) {
			clear(b[:n])
		}
		b = b[n:]
	}
}

// transfer moves p to or from physical memory one window at a time.
func (m *Mem) transfer(p []byte, addr int64, write bool) (int, error) {
	done := 0
	for done < len(p) {
		n := min(len(p)-done, maxWindow)
		w, off, err := m.window(addr+int64(done), n, write)
		if err != nil {
			return done, err
		}
		if write {
			copy(w[off:off+n], p[done:done+n])
		} else {
			copy(p[done:done+n], w[off:off+n])
		}
		unix.Munmap(w)
		done += n
	}
	return done, nil
}
