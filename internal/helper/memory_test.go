package helper

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMemAvailable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	os.WriteFile(p, []byte("MemTotal:         130996 kB\nMemFree:           60000 kB\nMemAvailable:      71234 kB\nBuffers:               0 kB\n"), 0o644)
	if n, err := memAvailable(p); err != nil || n != 71234<<10 {
		t.Fatalf("memAvailable = %d, %v", n, err)
	}
	os.WriteFile(p, []byte("MemTotal: 1 kB\n"), 0o644)
	if _, err := memAvailable(p); err == nil {
		t.Fatal("no MemAvailable line accepted")
	}
	if n, err := memAvailable("/proc/meminfo"); err != nil || n == 0 {
		t.Fatalf("this machine's MemAvailable: %d, %v", n, err)
	}
}
