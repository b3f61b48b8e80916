// Command guest (installed as /bin/kjump-bench in the bench-vm guest) takes
// the measurements that must happen inside the VM:
//
//	kjump-bench reread TAG DIR DEV   read every file under DIR, print time and DEV's disk reads
//	kjump-bench freepages            how much of RAM is free buddy pages, and how much of that is non-zero
//
// Output lines start with "BENCH " for the host driver (bench/vm).
package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	var err error
	switch {
	case len(os.Args) == 5 && os.Args[1] == "reread":
		err = reread(os.Args[2], os.Args[3], os.Args[4])
	case len(os.Args) == 2 && os.Args[1] == "freepages":
		err = freePages()
	default:
		err = fmt.Errorf("usage: kjump-bench reread TAG DIR DEV | freepages")
	}
	if err != nil {
		fmt.Println("BENCH error:", err)
		os.Exit(1)
	}
}

// diskReads returns completed reads and sectors read of a block device
// (/sys/block/DEV/stat fields 1 and 3).
func diskReads(dev string) (ios, sectors uint64, err error) {
	b, err := os.ReadFile("/sys/block/" + dev + "/stat")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0, 0, fmt.Errorf("/sys/block/%s/stat: %q", dev, b)
	}
	ios, _ = strconv.ParseUint(f[0], 10, 64)
	sectors, _ = strconv.ParseUint(f[2], 10, 64)
	return ios, sectors, nil
}

func reread(tag, dir, dev string) error {
	r0, s0, err := diskReads(dev)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var total int64
	start := time.Now()
	// Finding the files is part of the work: directories and inodes are
	// cached or not like the data.
	var files []string
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		n, err := readAll(f, buf)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		total += n
	}
	secs := time.Since(start).Seconds()
	r1, s1, err := diskReads(dev)
	if err != nil {
		return err
	}
	fmt.Printf("BENCH reread %s bytes=%d seconds=%.4f reads=%d sectors=%d files=%d\n", tag, total, secs, r1-r0, s1-s0, len(files))
	return nil
}

// readAll reads f to the end in len(buf) reads, as cat or cp would (1 MiB
// here; io.Copy to io.Discard would use Discard's own 8 KiB buffer, and
// under TCG 32,768 syscalls for 256 MiB cost more than the copying).
func readAll(f *os.File, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := f.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

const (
	pageSize  = 4096
	kpfBuddy  = 10 // KPF_BUDDY: set on the first page of each free block only
	kpfNopage = 20
	maxOrder  = 10 // MAX_ORDER-1 on x86-64 (4 MiB blocks)
)

// freePages estimates what makedumpfile-style free-page exclusion would
// save: /proc/kpageflags marks only the head of each free buddy block, so a
// block's extent is inferred as the largest aligned run (order <= 10) of
// pages without any flag after its head; the sum is printed next to
// MemFree as a check. The pages' contents come from /proc/kcore, to count
// those that are non-zero (zero pages cost nothing in a kjump image).
func freePages() error {
	flags, err := os.ReadFile("/proc/kpageflags")
	if err != nil {
		return err
	}
	n := len(flags) / 8
	fl := func(pfn int) uint64 { return binary.LittleEndian.Uint64(flags[pfn*8:]) }
	core, err := elf.Open("/proc/kcore")
	if err != nil {
		return err
	}
	defer core.Close()
	read := func(pfn int, b []byte) bool {
		pa := uint64(pfn) * pageSize
		for _, p := range core.Progs {
			if p.Type == elf.PT_LOAD && p.Paddr != ^uint64(0) && pa >= p.Paddr && pa+pageSize <= p.Paddr+p.Filesz && p.Vaddr >= 0xff00000000000000 {
				_, err := p.ReadAt(b, int64(pa-p.Paddr))
				return err == nil
			}
		}
		return false
	}
	var free, nonzero, unreadable int
	page := make([]byte, pageSize)
	zero := make([]byte, pageSize)
	for pfn := 0; pfn < n; pfn++ {
		if fl(pfn)&(1<<kpfBuddy) == 0 {
			continue
		}
		size := 1
		for o := 1; o <= maxOrder && pfn%(1<<o) == 0 && pfn+(1<<o) <= n; o++ {
			ok := true
			for q := pfn + (1 << (o - 1)); q < pfn+(1<<o); q++ {
				if fl(q) != 0 {
					ok = false
					break
				}
			}
			if !ok {
				break
			}
			size = 1 << o
		}
		for q := pfn; q < pfn+size; q++ {
			free++
			if !read(q, page) {
				unreadable++
			} else if !bytes.Equal(page, zero) {
				nonzero++
			}
		}
		pfn += size - 1
	}
	memFree := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemFree:") {
				memFree = strings.Fields(l)[1]
			}
		}
	}
	fmt.Printf("BENCH freepages free=%d nonzero=%d unreadable=%d memfree_kib=%s pfns=%d\n", free, nonzero, unreadable, memFree, n)
	return nil
}
