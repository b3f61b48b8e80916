// Package mapwin maps a file (a core file, /proc/vmcore, /dev/mem) in
// bounded windows that concurrent users share.
//
// Mapping a whole multi-GiB file at once costs page tables in proportion:
// /proc/vmcore and /dev/mem are PFN mappings whose page table entries the
// kernel fills in at mmap time, 2 MiB of them per GiB, too much for a
// helper kernel with about 100 MiB on a 32 GiB machine. Mapping each chunk
// on its own costs an mmap and a munmap (with its TLB shootdown on every
// CPU) per 2 MiB: 3.6 ms each in a TCG guest, a quarter of the restore's
// copying time. Windows of 64 MiB, kept while in use and unmapped least
// recently used first, bound both.
package mapwin

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultSize and DefaultMax are the window size and how many idle windows
// stay mapped: 8 × 64 MiB needs 1 MiB of page tables.
const (
	DefaultSize = 64 << 20
	DefaultMax  = 8
)

// Mapper hands out slices of fd's mapping. Its methods are safe for
// concurrent use.
type Mapper struct {
	fd, prot int
	size     int64 // window size, a multiple of the page size
	max      int

	mu    sync.Mutex
	wins  map[span]*window
	clock uint64
}

type span struct{ start, end int64 }

type window struct {
	b       []byte
	refs    int
	lastUse uint64
}

// New maps fd (opened for prot: unix.PROT_READ, with unix.PROT_WRITE for
// writing) in windows of size bytes, keeping at most maxIdle mapped.
func New(fd, prot int, size int64, maxIdle int) *Mapper {
	pg := int64(os.Getpagesize())
	size = max(pg, (size+pg-1)&^(pg-1))
	return &Mapper{fd: fd, prot: prot, size: size, max: maxIdle, wins: map[span]*window{}}
}

// Map returns the n bytes at file offset off, and the function to call when
// done with them. The window may extend over [lo, hi) only: the caller's
// bounds of what may be mapped (a segment of the file, a range of RAM the
// kernel lets /dev/mem map). A request crossing a window boundary gets a
// mapping of its own.
func (m *Mapper) Map(off int64, n int, lo, hi int64) ([]byte, func(), error) {
	if n <= 0 || off < lo || off+int64(n) > hi {
		return nil, nil, fmt.Errorf("mapwin: %d bytes at %#x outside [%#x, %#x)", n, off, lo, hi)
	}
	pg := int64(os.Getpagesize())
	base := off / m.size * m.size
	ws := max(lo&^(pg-1), base)
	we := min(hi, base+m.size)
	if off+int64(n) > we {
		return m.once(off, n)
	}
	sp := span{ws, we}
	m.mu.Lock()
	w := m.wins[sp]
	if w == nil {
		m.evictLocked()
		m.mu.Unlock()
		b, err := m.mmap(ws, int(we-ws))
		if err != nil {
			return nil, nil, err
		}
		m.mu.Lock()
		if w = m.wins[sp]; w == nil { // another user may have mapped it meanwhile
			w = &window{b: b}
			m.wins[sp] = w
		} else {
			unix.Munmap(b)
		}
	}
	w.refs++
	m.clock++
	w.lastUse = m.clock
	m.mu.Unlock()
	rel := off - ws
	var once sync.Once
	return w.b[rel : rel+int64(n)], func() {
		once.Do(func() {
			m.mu.Lock()
			w.refs--
			m.mu.Unlock()
		})
	}, nil
}

// once maps exactly the pages covering [off, off+n).
func (m *Mapper) once(off int64, n int) ([]byte, func(), error) {
	pg := int64(os.Getpagesize())
	start := off &^ (pg - 1)
	length := int((off - start + int64(n) + pg - 1) &^ (pg - 1))
	b, err := m.mmap(start, length)
	if err != nil {
		return nil, nil, err
	}
	rel := off - start
	return b[rel : rel+int64(n)], func() { unix.Munmap(b) }, nil
}

func (m *Mapper) mmap(off int64, n int) ([]byte, error) {
	b, err := unix.Mmap(m.fd, off, n, m.prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping %#x-%#x: %w", off, off+int64(n), err)
	}
	return b, nil
}

// evictLocked unmaps the least recently used idle windows until a new one
// fits under the limit. Windows in use are never unmapped; when all are,
// the limit is exceeded until they are released.
func (m *Mapper) evictLocked() {
	for len(m.wins) >= m.max {
		var victim span
		var vw *window
		for sp, w := range m.wins {
			if w.refs == 0 && (vw == nil || w.lastUse < vw.lastUse) {
				victim, vw = sp, w
			}
		}
		if vw == nil {
			return
		}
		unix.Munmap(vw.b)
		delete(m.wins, victim)
	}
}

// Mapped reports how many windows are mapped (for tests and logs).
func (m *Mapper) Mapped() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.wins)
}

// Close unmaps every window. Slices handed out must no longer be used.
func (m *Mapper) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for sp, w := range m.wins {
		unix.Munmap(w.b)
		delete(m.wins, sp)
	}
}
