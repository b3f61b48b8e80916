package mapwin

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func testFile(t *testing.T, size int) (*os.File, []byte) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7 / 4096)
	}
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, data
}

func TestMapSharesWindowsAndEvictsIdleOnes(t *testing.T) {
	const win = 64 << 10
	f, data := testFile(t, 16*win)
	m := New(int(f.Fd()), unix.PROT_READ, win, 2)
	defer m.Close()
	get := func(off int64, n int) func() {
		b, done, err := m.Map(off, n, 0, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, data[off:off+int64(n)]) {
			t.Fatalf("bytes at %#x differ", off)
		}
		return done
	}
	d1 := get(4096, 8192)
	d2 := get(win-4096, 4096) // the same window
	if m.Mapped() != 1 {
		t.Fatalf("%d windows mapped, want 1", m.Mapped())
	}
	d3 := get(3*win, 100)
	d4 := get(5*win+1, 100) // over the limit: all windows are in use
	if m.Mapped() != 3 {
		t.Fatalf("%d windows mapped, want 3 (none idle to evict)", m.Mapped())
	}
	d1()
	d2()
	d3()
	d4()
	d4() // a second call is harmless
	get(7*win, 10)()
	if m.Mapped() != 2 {
		t.Fatalf("%d windows mapped after eviction, want the limit of 2", m.Mapped())
	}
	// Crossing a window boundary: a mapping of its own.
	get(2*win-10, 20)()
	if m.Mapped() != 2 {
		t.Fatalf("a crossing request was kept as a window")
	}
}

// A window never extends past the caller's bounds: /dev/mem refuses to
// map the reading kernel's own RAM, so mapping more than asked would fail.
func TestMapStaysInsideBounds(t *testing.T) {
	const win = 64 << 10
	f, _ := testFile(t, 4*win)
	m := New(int(f.Fd()), unix.PROT_READ, win, 4)
	defer m.Close()
	lo, hi := int64(win+3*4096), int64(2*win-4096)
	b, done, err := m.Map(lo+100, 50, lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	done()
	for sp := range m.wins {
		if sp.start != lo || sp.end != hi {
			t.Fatalf("window %#x-%#x, want the bounds %#x-%#x", sp.start, sp.end, lo, hi)
		}
	}
	_ = b
	if _, _, err := m.Map(hi-10, 20, lo, hi); err == nil {
		t.Fatal("a request past the bounds was mapped")
	}
}

func TestMapConcurrentWrites(t *testing.T) {
	const win = 64 << 10
	f, data := testFile(t, 32*win)
	m := New(int(f.Fd()), unix.PROT_READ|unix.PROT_WRITE, win, 3)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := int64(g) * 8192; off+8192 <= int64(len(data)); off += 4 * 8192 {
				b, done, err := m.Map(off, 8192, 0, int64(len(data)))
				if err != nil {
					t.Error(err)
					return
				}
				for i := range b {
					b[i] = ^data[off+int64(i)]
				}
				done()
			}
		}()
	}
	wg.Wait()
	m.Close()
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != ^data[i] {
			t.Fatalf("byte %#x not written", i)
		}
	}
}
