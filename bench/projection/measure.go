package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kjump/kjump/internal/freepages"
	"github.com/kjump/kjump/internal/image"
)

// Rates are what the model takes from this host: per-core rates in MB/s
// (10^6 bytes per CPU second, user + system) of the stored pages, and
// compression ratios, all on the same dump.
type Rates struct {
	Measured string `json:"measured"` // when and where
	Dump     string `json:"dump"`

	// The dump: RAM, the pages its kernel had in use (not free), and the
	// non-zero ones among them, which every method compresses.
	RAMBytes    uint64 `json:"ram_bytes"`
	InUseBytes  uint64 `json:"in_use_bytes"`
	StoredBytes uint64 `json:"stored_bytes"`

	Codecs map[string]Codec `json:"codecs"` // kjump-zstd, kjump-s2, lzo, lz4
	// MemcpyMBps is one core copying memory (swsusp's snapshot copy).
	MemcpyMBps float64 `json:"memcpy_mbps"`
	// VerifyMBps is kjump's verify pass per core, in MB/s of image
	// (record CRCs; resume's first read of the image).
	VerifyMBps float64 `json:"verify_mbps"`
}

// Codec is one compressor's per-core rates on the stored pages.
type Codec struct {
	CompressMBps   float64 `json:"compress_mbps"`   // stored bytes per CPU second
	DecompressMBps float64 `json:"decompress_mbps"` // stored bytes per CPU second, checks included
	Ratio          float64 `json:"ratio"`           // stored bytes / compressed bytes
	How            string  `json:"how"`
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// best runs f rounds times and returns the least CPU time one run took:
// on a shared machine the least disturbed run is the closest to what the
// work costs.
func best(rounds int, f func() error) (time.Duration, error) {
	least := time.Duration(1<<63 - 1)
	for range rounds {
		t := cpuTime()
		if err := f(); err != nil {
			return 0, err
		}
		least = min(least, cpuTime()-t)
	}
	return least, nil
}

func mbps(bytes uint64, d time.Duration) float64 { return float64(bytes) / 1e6 / d.Seconds() }

// memOut is an in-memory image.Output and image.Input.
type memOut struct{ b []byte }

func (m *memOut) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}
func (m *memOut) Sync() error                             { return nil }
func (m *memOut) ReadAt(p []byte, off int64) (int, error) { return copy(p, m.b[off:]), nil }
func (m *memOut) Size() int64                             { return int64(len(m.b)) }

// discard is a restore sink that drops the pages: the rate is the
// decoder's and the checks', not a copy into a file.
type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// measure takes the dump's rates. Every kjump figure is one worker
// (WithThreads(1)) and free pages left out, as the helper captures.
func measure(dump string, rounds int, tmp string) (*Rates, error) {
	f, err := os.Open(dump)
	if err != nil {
		return nil, fmt.Errorf("%w (make bench builds the dump with bench/mkdump.sh)", err)
	}
	defer f.Close()
	src, err := image.OpenELF(f)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	free, err := freepages.Find(src, src.VMCoreInfo(), src.Ranges())
	if err != nil {
		return nil, fmt.Errorf("%s: free pages: %w", dump, err)
	}
	host, _ := os.Hostname()
	r := &Rates{Measured: time.Now().UTC().Format(time.RFC3339) + " on " + host, Dump: dump, Codecs: map[string]Codec{}}
	for _, rg := range src.Ranges() {
		r.RAMBytes += rg.Size()
	}
	r.InUseBytes = r.RAMBytes - free.Pages*4096

	// The stored pages as one file, for the C compressors.
	pagesFile := filepath.Join(tmp, "pages.bin")
	if r.StoredBytes, err = writeStored(src, free.Free, pagesFile); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "dump: %d MiB of RAM, %d MiB in use, %d MiB of it non-zero\n", r.RAMBytes>>20, r.InUseBytes>>20, r.StoredBytes>>20)

	for _, c := range []image.Compression{image.Zstd, image.S2} {
		name := "kjump-" + c.String()
		img := &memOut{}
		write := func() error {
			img.b = img.b[:0]
			_, err := image.Write(context.Background(), img, src, image.Metadata{}, image.WithThreads(1), image.WithCompression(c), image.WithExclude(free.Free))
			return err
		}
		ct, err := best(rounds, write)
		if err != nil {
			return nil, fmt.Errorf("%s capture: %w", name, err)
		}
		rd, err := image.Open(img)
		if err != nil {
			return nil, err
		}
		dt, err := best(rounds, func() error {
			_, err := rd.Restore(context.Background(), discard{}, image.WithThreads(1))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("%s restore: %w", name, err)
		}
		if c == image.S2 {
			vt, err := best(rounds, func() error {
				_, err := rd.VerifyStored(context.Background(), image.WithThreads(1))
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("%s verify: %w", name, err)
			}
			r.VerifyMBps = mbps(uint64(len(img.b)), vt)
		}
		r.Codecs[name] = Codec{CompressMBps: mbps(r.StoredBytes, ct), DecompressMBps: mbps(r.StoredBytes, dt),
			Ratio: float64(r.StoredBytes) / float64(len(img.b)), How: "image.Write and Reader.Restore, WithThreads(1), free pages excluded, level fast"}
		fmt.Fprintf(os.Stderr, "%s: %+v\n", name, r.Codecs[name])
	}

	// The kernel's codecs through their reference command-line tools, one
	// thread each: lzop -3 is LZO1X-1, the kernel's lzo1x_1_compress (its
	// blocks are 256 KiB, the kernel's 128 KiB); lz4 -1 is
	// LZ4_compress_default, what the kernel's lz4 driver calls, here in
	// independent 128 KiB blocks as the kernel compresses them.
	lzo, lz4 := filepath.Join(tmp, "pages.lzo"), filepath.Join(tmp, "pages.lz4")
	tools := []struct {
		name, how string
		out       string
		comp, dec []string
	}{
		{"lzo", "lzop -3", lzo, []string{"lzop", "-3", "-f", "-q", "-o", lzo, pagesFile}, []string{"lzop", "-d", "-f", "-q", "-c", lzo}},
		{"lz4", "lz4 -1 -B131072", lz4, []string{"lz4", "-1", "-B131072", "-f", "-q", pagesFile, lz4}, []string{"lz4", "-d", "-f", "-q", "-c", lz4}},
	}
	for _, t := range tools {
		ct, err := bestCmd(rounds, t.comp...)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(t.out)
		if err != nil {
			return nil, err
		}
		dt, err := bestCmd(rounds, t.dec...)
		if err != nil {
			return nil, err
		}
		r.Codecs[t.name] = Codec{CompressMBps: mbps(r.StoredBytes, ct), DecompressMBps: mbps(r.StoredBytes, dt),
			Ratio: float64(r.StoredBytes) / float64(fi.Size()), How: t.how + " on the stored pages, one thread, with its own checksums"}
		fmt.Fprintf(os.Stderr, "%s: %+v\n", t.name, r.Codecs[t.name])
		os.Remove(t.out)
	}

	buf := make([]byte, 256<<20)
	dst := make([]byte, len(buf))
	for i := range buf {
		buf[i] = byte(i)
	}
	mt, _ := best(rounds*3, func() error { copy(dst, buf); return nil })
	r.MemcpyMBps = mbps(uint64(len(buf)), mt)
	return r, nil
}

// writeStored writes the non-zero pages outside free to path and returns
// their bytes.
func writeStored(src image.Source, free []image.Range, path string) (uint64, error) {
	out, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	zero := make([]byte, 4096)
	buf := make([]byte, 2<<20)
	var n uint64
	for _, rg := range src.Ranges() {
		for a := rg.Start; a < rg.End; {
			k := min(uint64(len(buf)), rg.End-a)
			if m, err := src.ReadAt(buf[:k], int64(a)); err != nil && !(errors.Is(err, io.EOF) && uint64(m) == k) {
				return 0, err
			}
			for off := uint64(0); off < k; off += 4096 {
				pa := a + off
				for len(free) > 0 && free[0].End <= pa {
					free = free[1:]
				}
				if len(free) > 0 && free[0].Start <= pa || bytes.Equal(buf[off:off+4096], zero) {
					continue
				}
				if _, err := out.Write(buf[off : off+4096]); err != nil {
					return 0, err
				}
				n += 4096
			}
			a += k
		}
	}
	return n, out.Close()
}

// bestCmd runs a command rounds times and returns its least CPU time
// (user + system of the child); its output goes nowhere.
func bestCmd(rounds int, argv ...string) (time.Duration, error) {
	least := time.Duration(1<<63 - 1)
	for range rounds {
		cmd := exec.Command(argv[0], argv[1:]...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("%v: %v: %s (bench/deps.sh installs lzop and lz4)", argv, err, stderr.String())
		}
		u := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		least = min(least, time.Duration(u.Utime.Nano()+u.Stime.Nano()))
	}
	return least, nil
}
