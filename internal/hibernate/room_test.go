package hibernate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/layout"
)

func TestRoomCheck(t *testing.T) {
	ram := layout.Ranges{{Start: 0x1000, End: 0x9f000}, {Start: 0x100000, End: 1 << 30}}
	free := uint64(600 << 20)
	r := newRoom("/dev/vdc", 0, ram, free)
	if r.InUse != ram.Size()-free || r.Estimate < r.InUse/2 || r.Estimate > r.InUse/2+(32<<20) || r.Worst < ram.Size() {
		t.Fatalf("implausible sizes: %+v", r)
	}
	// Smaller than the estimate: refused before the jump, with the numbers and the fix.
	r.Room = r.Estimate - 1
	if _, err := r.check(); err == nil || !strings.Contains(err.Error(), "/dev/vdc has room for") ||
		!strings.Contains(err.Error(), "estimated at") || !strings.Contains(err.Error(), "choose a larger target") {
		t.Fatalf("too small: %v", err)
	}
	// Between estimate and worst case: a warning, no refusal.
	r.Room = r.Estimate
	if w, err := r.check(); err != nil || !strings.Contains(w, "not for the worst case") || !strings.Contains(w, "keeps running") {
		t.Fatalf("between: %q, %v", w, err)
	}
	r.Room = r.Worst
	if w, err := r.check(); err != nil || w != "" {
		t.Fatalf("room for the worst case: %q, %v", w, err)
	}
}

func TestMemFree(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	os.WriteFile(p, []byte("MemTotal:        1000000 kB\nMemFree:          123456 kB\nMemAvailable:     500000 kB\n"), 0o600)
	if v, ok := memFree(p); !ok || v != 123456<<10 {
		t.Fatalf("MemFree = %d, %v", v, ok)
	}
	os.WriteFile(p, []byte("MemFree: lots\n"), 0o600)
	if _, ok := memFree(p); ok {
		t.Fatal("garbage MemFree accepted")
	}
}
