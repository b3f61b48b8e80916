package image

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/klauspost/compress/s2"
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

// BenchmarkPerByte is what the image costs per byte apart from
// compression: the chunk sum against CRC32C, and a stored chunk's copy
// against decoding the same random pages as S2 literals. Run it in a TCG
// guest too (docs/benchmarks.md): there the ratios differ most.
func BenchmarkPerByte(b *testing.B) {
	page := testMemory(3, defaultChunkSize)
	for i := range page {
		page[i] = byte(i*7 + i>>9) // no zero pages: every byte counts
	}
	random := make([]byte, defaultChunkSize)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(random)
	coded := s2.EncodeBetter(nil, random)
	dst := make([]byte, defaultChunkSize)
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"sum", func() { sum(page) }},
		{"crc32c", func() { crc(page) }},
		{"stored-copy", func() { copy(dst, random) }},
		{"s2-decode-random", func() { s2.Decode(dst, coded) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(defaultChunkSize)
			for b.Loop() {
				c.f()
			}
		})
	}
}
