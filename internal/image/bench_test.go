package image

import (
	"context"
	"os"
	"testing"
)

// BenchmarkWriteDump captures the ELF dump named by $KJUMP_BENCH_DUMP (make
// bench builds one) to a temp file with each codec. Auto picks mostly s2
// here: the file lands in the page cache, faster than any CPU compresses.
func BenchmarkWriteDump(b *testing.B) {
	path := os.Getenv("KJUMP_BENCH_DUMP")
	if path == "" {
		b.Skip("set KJUMP_BENCH_DUMP to an ELF memory dump (make bench builds one)")
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	src, err := OpenELF(f)
	if err != nil {
		b.Fatal(err)
	}
	out, err := os.Create(b.TempDir() + "/img")
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	for _, c := range []Compression{Zstd, S2, Auto} {
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(totalSize(src.Ranges())))
			for b.Loop() {
				if _, err := Write(context.Background(), out, src, Metadata{}, WithThreads(2), WithCompression(c)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRestoreDump restores a zstd image of $KJUMP_BENCH_DUMP into a
// sparse file.
func BenchmarkRestoreDump(b *testing.B) {
	path := os.Getenv("KJUMP_BENCH_DUMP")
	if path == "" {
		b.Skip("set KJUMP_BENCH_DUMP to an ELF memory dump (make bench builds one)")
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	src, err := OpenELF(f)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	img, err := os.Create(dir + "/img")
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	if _, err := Write(context.Background(), img, src, Metadata{}, WithCompression(Zstd)); err != nil {
		b.Fatal(err)
	}
	fi, _ := img.Stat()
	b.SetBytes(int64(totalSize(src.Ranges())))
	for b.Loop() {
		out, err := os.Create(dir + "/mem")
		if err != nil {
			b.Fatal(err)
		}
		r, err := Open(sized{img, fi.Size()})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Restore(context.Background(), out, WithThreads(2)); err != nil {
			b.Fatal(err)
		}
		out.Close()
	}
}

type sized struct {
	*os.File
	n int64
}

func (s sized) Size() int64 { return s.n }
