package physmem

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kjump/kjump/internal/phys"
)

// A regular file maps exactly like /dev/mem (offset = physical address), so
// the window arithmetic is tested on one: a mapping per call, shared
// windows over all of it, and windows over part of it (the rest mapped per
// call, as /dev/mem outside the ranges given).
func TestReadWriteAcrossWindows(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ranges []phys.Range
	}{
		{"per call", nil},
		{"windows", []phys.Range{{Start: 0, End: maxWindow + 3*pageSize}}},
		{"windows in part", []phys.Range{{Start: 2 * pageSize, End: 1 << 20}, {Start: 3 << 20, End: maxWindow}}},
	} {
		t.Run(tc.name, func(t *testing.T) { testReadWrite(t, tc.ranges) })
	}
}

func testReadWrite(t *testing.T, ranges []phys.Range) {
	path := filepath.Join(t.TempDir(), "mem")
	if err := os.WriteFile(path, make([]byte, maxWindow+3*pageSize), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if ranges != nil {
		m.UseWindows(ranges)
	}
	p := make([]byte, maxWindow+100)
	for i := range p {
		p[i] = byte(i * 31)
	}
	const addr = pageSize + 123 // unaligned start and end
	if n, err := m.WriteAt(p, addr); err != nil || n != len(p) {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	if ranges != nil && m.windows.Mapped() == 0 {
		t.Fatal("no window was used")
	}
	got := make([]byte, len(p))
	if n, err := m.ReadAt(got, addr); err != nil || n != len(p) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if !bytes.Equal(got, p) {
		t.Fatal("read back differs")
	}
	file, _ := os.ReadFile(path)
	if !bytes.Equal(file[addr:addr+len(p)], p) || file[addr-1] != 0 || file[addr+len(p)] != 0 {
		t.Fatal("bytes landed at the wrong offsets")
	}
	if err := m.ZeroAt(addr+1, int64(len(p)-2)); err != nil {
		t.Fatal(err)
	}
	file, _ = os.ReadFile(path)
	if file[addr] != p[0] || file[addr+len(p)-1] != p[len(p)-1] || !bytes.Equal(file[addr+1:addr+len(p)-1], make([]byte, len(p)-2)) {
		t.Fatal("ZeroAt cleared the wrong bytes")
	}
	ro, _ := Open(path, false)
	defer ro.Close()
	if _, err := ro.WriteAt(p[:1], 0); err == nil {
		t.Error("write through a read-only open succeeded")
	}
	if err := ro.ZeroAt(0, 1); err == nil {
		t.Error("ZeroAt through a read-only open succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none"), false); err == nil {
		t.Error("opening a missing device succeeded")
	}
}

// clearNonZero leaves zero blocks unwritten and clears every other byte,
// including a short tail and a block whose only non-zero byte is its last.
func TestClearNonZero(t *testing.T) {
	b := make([]byte, 3*len(zeroBlock)+100)
	b[len(zeroBlock)-1] = 1
	b[2*len(zeroBlock)+5] = 7
	b[len(b)-1] = 9
	clearNonZero(b)
	if !bytes.Equal(b, make([]byte, len(b))) {
		t.Fatal("clearNonZero left non-zero bytes")
	}
}
