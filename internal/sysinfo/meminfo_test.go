package sysinfo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMemInfo(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	os.WriteFile(p, []byte("MemTotal:        1000000 kB\nMemFree:          123456 kB\nMemAvailable:     500000 kB\n"), 0o600)
	if v, err := MemInfo(p, "MemFree"); err != nil || v != 123456<<10 {
		t.Fatalf("MemFree = %d, %v", v, err)
	}
	if v, err := MemInfo(p, "MemAvailable"); err != nil || v != 500000<<10 {
		t.Fatalf("MemAvailable = %d, %v", v, err)
	}
	if _, err := MemInfo(p, "Cached"); err == nil {
		t.Fatal("a missing field was found")
	}
	os.WriteFile(p, []byte("MemFree: lots\n"), 0o600)
	if _, err := MemInfo(p, "MemFree"); err == nil {
		t.Fatal("garbage MemFree accepted")
	}
	if v, err := MemInfo("/proc/meminfo", "MemAvailable"); err != nil || v == 0 {
		t.Fatalf("this machine's MemAvailable: %d, %v", v, err)
	}
}
