package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// coldDisks drops the disk files from the host page cache before a boot
// (-disk-cache none) and says how much of them stayed cached: every boot
// starts as after a real power cycle, with nothing of its disks in RAM.
func coldDisks(boot string, paths ...string) error {
	if *diskIO != "none" {
		return nil // unsafe: the host's page cache is part of that setup
	}
	var left []string
	for _, p := range paths {
		n, err := dropHostCache(p)
		if err != nil {
			return err
		}
		left = append(left, fmt.Sprintf("%s %.1f MiB", filepath.Base(p), mib(n)))
	}
	fmt.Printf("bench-vm: %s: host page cache before boot: %s\n", boot, strings.Join(left, ", "))
	return nil
}

// dropHostCache writes back and evicts a disk file's pages from the host's
// page cache, so the next boot's reads come from the host disk as after a
// real power cycle, not from host RAM at memory speed. It returns the bytes
// still cached afterwards (mincore), which should be 0.
func dropHostCache(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fd := int(f.Fd())
	if err := unix.Fdatasync(fd); err != nil {
		return 0, fmt.Errorf("fdatasync %s: %w", path, err)
	}
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		return 0, fmt.Errorf("posix_fadvise DONTNEED %s: %w", path, err)
	}
	return hostCached(f)
}

// hostCached counts the bytes of f resident in the host's page cache.
func hostCached(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0, err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	defer unix.Munmap(mem)
	page := int64(os.Getpagesize())
	vec := make([]byte, (st.Size()+page-1)/page)
	// x/sys/unix has no Mincore wrapper.
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return 0, fmt.Errorf("mincore %s: %w", f.Name(), e)
	}
	var n int64
	for _, v := range vec {
		n += int64(v & 1)
	}
	return n * page, nil
}
