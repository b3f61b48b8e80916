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

	"github.com/kjump/kjump/internal/mapwin"
	"github.com/kjump/kjump/internal/phys"
)

const pageSize = 4096

// Mem is an open /dev/mem.
type Mem struct {
	f        *os.File
	writable bool
	// With UseWindows: accesses inside these ranges go through shared
	// windows instead of a mapping each.
	windows *mapwin.Mapper
	ranges  []phys.Range
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
func (m *Mem) Close() error {
	if m.windows != nil {
		m.windows.Close()
	}
	return m.f.Close()
}

// UseWindows makes accesses inside ranges (memory this kernel lets
// /dev/mem map: another kernel's RAM) share 64 MiB windows that stay
// mapped while used, instead of an mmap and munmap per call. The restore
// kernel writes a whole machine's RAM in chunk-sized pieces; under TCG each
// munmap's TLB shootdown cost about as much as copying 2 MiB. Call it
// before concurrent use.
func (m *Mem) UseWindows(ranges []phys.Range) {
	prot := unix.PROT_READ
	if m.writable {
		prot |= unix.PROT_WRITE
	}
	m.windows = mapwin.New(int(m.f.Fd()), prot, mapwin.DefaultSize, mapwin.DefaultMax)
	m.ranges = append([]phys.Range(nil), ranges...)
}

// view returns physical memory at addr (up to n bytes, at least one) from a
// shared window, if windows are in use and a range holds addr.
func (m *Mem) view(addr int64, n int) ([]byte, func(), bool) {
	if m.windows == nil || addr < 0 {
		return nil, nil, false
	}
	for _, r := range m.ranges {
		if r.Contains(uint64(addr)) {
			k := int(min(int64(n), int64(r.End)-addr, maxWindow))
			b, done, err := m.windows.Map(addr, k, int64(r.Start), int64(r.End))
			if err != nil {
				return nil, nil, false // the caller maps it on its own and reports
			}
			return b, done, true
		}
	}
	return nil, nil, false
}

// Lend returns the n bytes of physical memory at addr, writable, when one
// shared window holds them all (UseWindows), and done to call after
// (image.Lender: the restore kernel decodes chunks straight into RAM).
func (m *Mem) Lend(addr int64, n int) ([]byte, func(), bool) {
	if !m.writable {
		return nil, nil, false
	}
	b, done, ok := m.view(addr, n)
	if !ok {
		return nil, nil, false
	}
	if len(b) < n {
		done()
		return nil, nil, false
	}
	return b[:n], done, true
}

// outside bounds a mapping of its own at addr (in no range) to end where
// the next range begins, so that range's windows are used.
func (m *Mem) outside(addr int64, n int) int {
	for _, r := range m.ranges {
		if int64(r.Start) > addr && int64(r.Start)-addr < int64(n) {
			n = int(int64(r.Start) - addr)
		}
	}
	return n
}

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
		if b, done, ok := m.view(addr, int(min(n, maxWindow))); ok {
			clearNonZero(b)
			done()
			addr, n = addr+int64(len(b)), n-int64(len(b))
			continue
		}
		k := m.outside(addr, int(min(n, maxWindow)))
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
		if b, release, ok := m.view(addr+int64(done), len(p)-done); ok {
			if write {
				copy(b, p[done:])
			} else {
				copy(p[done:], b)
			}
			release()
			done += len(b)
			continue
		}
		n := m.outside(addr+int64(done), min(len(p)-done, maxWindow))
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
