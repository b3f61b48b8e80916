//go:build e2e

package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "workload", CPUs: 2, Run: workload})
}

// workload checks the memory workload the hibernate scenarios rely on:
// its buffer verifies, its counter ticks, damage is detected, and its
// pattern is really in guest RAM (found in a QEMU memory dump).
func workload(s *S) error {
	kernel, err := vm.Kernel()
	if err != nil {
		return fmt.Errorf("test kernel: %w", err)
	}
	initrd, err := s.Initramfs(`
kjump-workload run -mib 64 -seed 7 -print-every 1 &
while [ ! -f /run/kjump-workload/pid ]; do sleep 0.2; done
echo "WL started"
read -r go </dev/console   # the host dumps guest memory meanwhile
kjump-workload verify; echo "WL verify1 rc=$?"
kjump-workload corrupt -pages 3
kjump-workload verify; echo "WL verify2 rc=$?"
`, nil)
	if err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Kernel: kernel, Initrd: initrd, SMP: 2, MemMiB: 512, Monitor: true})
	if err != nil {
		return err
	}
	sm, err := m.Expect(`WORKLOAD ready mib=64 seed=7 checksum=([0-9a-f]{16})`, 3*time.Minute)
	if err != nil {
		return err
	}
	sum := sm[1]
	if err := expectAll(m, time.Minute, "WL started", "WORKLOAD tick counter=1", "WORKLOAD tick counter=2"); err != nil {
		return err
	}

	if st, err := m.Monitor("info status", 30*time.Second); err != nil {
		return err
	} else if !strings.Contains(st, "running") {
		return fmt.Errorf("monitor: info status = %q, want running", st)
	}
	dump := filepath.Join(s.Dir, "guest-memory.elf")
	if _, err := m.Monitor("dump-guest-memory "+dump, 5*time.Minute); err != nil {
		return err
	}
	// QEMU does not report a dump cut short by a full disk.
	if fi, err := os.Stat(dump); err != nil {
		return err
	} else if fi.Size() < 512<<20 {
		os.Remove(dump)
		return fmt.Errorf("guest memory dump %s has %d bytes, less than the guest's 512 MiB of RAM: is the disk full?", dump, fi.Size())
	}
	found, err := containsPattern(dump, 7)
	os.Remove(dump) // 512 MiB; not worth keeping
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("workload pattern not found in the guest memory dump")
	}
	if err := m.SendConsole("go\n"); err != nil {
		return err
	}

	sm, err = m.Expect(`WORKLOAD VERIFY ok checksum=([0-9a-f]{16}) counter=(\d+)`, time.Minute)
	if err != nil {
		return err
	}
	if sm[1] != sum {
		return fmt.Errorf("verify checksum %s differs from the initial %s", sm[1], sum)
	}
	if n, _ := strconv.Atoi(sm[2]); n < 2 {
		return fmt.Errorf("counter %d at verify, want >= 2", n)
	}
	if err := expectAll(m, time.Minute, "WL verify1 rc=0", "WORKLOAD corrupted pages=3",
		"WORKLOAD VERIFY CORRUPT pages=3 ", "WL verify2 rc=1", "E2E exit rc=0"); err != nil {
		return err
	}
	return m.Wait(time.Minute)
}

// containsPattern reports whether the file holds the first page of the
// workload's pattern for seed (page-aligned in the guest, so 8-byte aligned
// in the dump's data as well).
func containsPattern(path string, seed uint64) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	want := make([]byte, 4096)
	for i := range 512 {
		binary.LittleEndian.PutUint64(want[8*i:], patternWord(seed, uint64(i)))
	}
	return bytes.Contains(data, want), nil
}

// patternWord mirrors the workload's pattern (e2e/workload word()).
func patternWord(seed, i uint64) uint64 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
