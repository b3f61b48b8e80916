package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		ranges    []Range
		chunkSize int
		level     Level
		threads   int
		codec     Compression
	}{
		{"one range", 1 << 20, []Range{{Start: 0, End: 1 << 20}}, 64 << 10, LevelFast, 2, Zstd},
		{"holes", 4 << 20, []Range{{Start: 0x1000, End: 0x9f000}, {Start: 0x100000, End: 0x2f0000}, {Start: 0x300000, End: 4 << 20}}, 128 << 10, LevelDefault, 3, Zstd},
		{"chunk larger than ranges", 1 << 20, []Range{{Start: 0x3000, End: 0x5000}, {Start: 0x80000, End: 0x81000}}, 2 << 20, LevelBest, 1, Zstd},
		{"default chunk, many threads", 6 << 20, []Range{{Start: 0, End: 6 << 20}}, 0, LevelFast, 8, Zstd},
		{"level fastest", 4 << 20, []Range{{Start: 0, End: 4 << 20}}, 256 << 10, LevelFastest, 2, Zstd},
		{"s2", 4 << 20, []Range{{Start: 0x1000, End: 0x9f000}, {Start: 0x100000, End: 4 << 20}}, 256 << 10, LevelFast, 2, S2},
		{"s2 better", 1 << 20, []Range{{Start: 0, End: 1 << 20}}, 64 << 10, LevelDefault, 3, S2},
		{"s2 best", 1 << 20, []Range{{Start: 0x3000, End: 0x5000}, {Start: 0x80000, End: 0x81000}}, 2 << 20, LevelBest, 1, S2},
		{"s2 default chunk", 6 << 20, []Range{{Start: 0, End: 6 << 20}}, 0, LevelFastest, 4, S2},
		{"auto", 4 << 20, []Range{{Start: 0x1000, End: 0x9f000}, {Start: 0x100000, End: 4 << 20}}, 128 << 10, LevelFast, 3, Auto},
		{"auto default level", 2 << 20, []Range{{Start: 0, End: 2 << 20}}, 64 << 10, LevelDefault, 2, Auto},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := testMemory(uint64(len(tc.name)), tc.size)
			src := RangeSource(bytes.NewReader(mem), tc.ranges)
			opts := []WriterOption{WithLevel(tc.level), WithThreads(tc.threads), WithCompression(tc.codec), withAlternatingCodecs}
			if tc.chunkSize != 0 {
				opts = append(opts, WithChunkSize(tc.chunkSize))
			}
			img, st := writeImage(t, src, opts...)
			var pages uint64
			for _, r := range src.Ranges() {
				pages += r.Size() / 4096
			}
			if st.ZeroPages+st.StoredPages != pages || st.ZeroPages == 0 || st.ImageBytes != uint64(len(img.b)) {
				t.Fatalf("stats %+v do not add up to %d pages / %d image bytes", st, pages, len(img.b))
			}
			r, err := Open(img)
			if err != nil {
				t.Fatal(err)
			}
			if c := r.Info().Compression; c != tc.codec {
				t.Fatalf("Info().Compression = %v, want %v", c, tc.codec)
			}
			vst, err := r.Verify(context.Background(), WithThreads(tc.threads))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if vst.S2Chunks != st.S2Chunks {
				t.Fatalf("Verify counts %d s2 chunks, Write %d", vst.S2Chunks, st.S2Chunks)
			}
			if want, ok := map[Compression]int{Zstd: 0, S2: st.Chunks}[tc.codec]; ok && st.S2Chunks != want {
				t.Fatalf("%d of %d chunks are s2, want %d", st.S2Chunks, st.Chunks, want)
			}
			if tc.codec == Auto && (st.S2Chunks == 0 || st.S2Chunks == st.Chunks) {
				t.Fatalf("%d of %d chunks are s2: want both codecs (withAlternatingCodecs)", st.S2Chunks, st.Chunks)
			}
			if md := r.Metadata(); md.KernelRelease != "6.1.0-test" || md.PageSize != 4096 || md.Created.IsZero() {
				t.Fatalf("metadata %+v", md)
			}
			expectRestored(t, src, restore(t, img, WithThreads(tc.threads)))
		})
	}
}

// Property: for many random memories and geometries, restore(write(m)) == m.
func TestRoundTripRandom(t *testing.T) {
	for seed := uint64(0); seed < 40; seed++ {
		size := int(1+seed%7) << 16
		mem := testMemory(seed, size)
		var ranges []Range
		for a := uint64(0); a < uint64(size); a += 4096 * (1 + seed%5) {
			if (a/4096+seed)%3 != 0 {
				ranges = append(ranges, Range{Start: a, End: min(a+4096*(1+seed%4), uint64(size))})
			}
		}
		if len(ranges) == 0 {
			continue
		}
		src := RangeSource(bytes.NewReader(mem), ranges)
		cs := 4096 * int(1+seed%9)
		img, _ := writeImage(t, src, WithChunkSize(cs), WithThreads(int(1+seed%4)))
		t.Run(fmt.Sprint(seed), func(t *testing.T) { expectRestored(t, src, restore(t, img)) })
	}
}

func TestAllZeroMemory(t *testing.T) {
	src := RangeSource(bytes.NewReader(make([]byte, 1<<20)), []Range{{Start: 0, End: 1 << 20}})
	img, st := writeImage(t, src, WithChunkSize(64<<10))
	if st.Chunks != 0 || st.StoredPages != 0 {
		t.Fatalf("all-zero memory stored %d chunks", st.Chunks)
	}
	expectRestored(t, src, restore(t, img))
}

func TestInvalidate(t *testing.T) {
	mem := testMemory(7, 256<<10)
	src := RangeSource(bytes.NewReader(mem), []Range{{Start: 0, End: 256 << 10}})
	img, _ := writeImage(t, src, WithChunkSize(16<<10))
	before := bytes.Clone(img.b)
	if err := Invalidate(img); err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if before[i] != img.b[i] && (i < len(before)-commitArea || (i-(len(before)-commitArea))%commitBlock >= commitLen) {
			t.Fatalf("Invalidate changed byte %d, outside the commit record's copies", i)
		}
	}
	r, err := Open(img)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(r.Status(), ErrInvalidated) {
		t.Fatalf("status %v, want ErrInvalidated", r.Status())
	}
	if _, err := r.Verify(context.Background()); !errors.Is(err, ErrInvalidated) {
		t.Fatalf("Verify: %v, want ErrInvalidated", err)
	}
	sink := &sparseMem{}
	if _, err := r.Restore(context.Background(), sink); !errors.Is(err, ErrInvalidated) || len(sink.b) != 0 {
		t.Fatalf("Restore of invalidated image: %v, wrote %d bytes", err, len(sink.b))
	}
	if _, err := r.Verify(context.Background(), WithForce()); err != nil {
		t.Fatalf("Verify WithForce: %v", err)
	}
	expectRestored(t, src, restore(t, img, WithForce()))
	if err := Invalidate(img); err != nil {
		t.Fatalf("second Invalidate: %v", err)
	}
}

func TestUncommittedRefused(t *testing.T) {
	mem := testMemory(8, 256<<10)
	src := RangeSource(bytes.NewReader(mem), []Range{{Start: 0, End: 256 << 10}})
	img, _ := writeImage(t, src, WithChunkSize(16<<10))
	partial := &memImage{b: img.b[:len(img.b)-commitArea]} // crash before the commit record
	r, err := Open(partial)
	if err != nil {
		t.Fatalf("Open of an uncommitted image must still show its header: %v", err)
	}
	if r.Info().Status != "not committed" {
		t.Fatalf("status %q", r.Info().Status)
	}
	sink := &sparseMem{}
	if _, err := r.Restore(context.Background(), sink, WithForce()); !errors.Is(err, ErrNotCommitted) || len(sink.b) != 0 {
		t.Fatalf("Restore of uncommitted image: %v, wrote %d bytes", err, len(sink.b))
	}
	if err := Invalidate(partial); !errors.Is(err, ErrNotCommitted) {
		t.Fatalf("Invalidate uncommitted: %v", err)
	}
}

// A sink full of old data (like the booted kernel's RAM under /dev/mem)
// ends up equal to the saved memory only with WithZeroFill.
func TestRestoreZeroFill(t *testing.T) {
	mem := testMemory(11, 1<<20)
	clear(mem[256<<10 : 512<<10]) // whole all-zero chunks
	ranges := []Range{{Start: 0, End: 600 << 10}, {Start: 640 << 10, End: 1 << 20}}
	src := RangeSource(bytes.NewReader(mem), ranges)
	img, _ := writeImage(t, src, WithChunkSize(64<<10))
	r, err := Open(img)
	if err != nil {
		t.Fatal(err)
	}
	dirty := func() *sparseMem {
		s := &sparseMem{b: bytes.Repeat([]byte{0xee}, 1<<20)}
		return s
	}
	sink := dirty()
	if _, err := r.Restore(context.Background(), sink, WithZeroFill()); err != nil {
		t.Fatal(err)
	}
	expectRestored(t, src, sink.b)
	for a := 600 << 10; a < 640<<10; a++ {
		if sink.b[a] != 0xee {
			t.Fatalf("zero fill wrote outside the saved ranges at %#x", a)
		}
	}
	// A sink that clears memory itself gets the zero runs through ZeroAt,
	// whole missing chunks as one run, on every thread.
	zs := &zeroingMem{sparseMem: dirty()}
	if _, err := r.Restore(context.Background(), zs, WithZeroFill(), WithThreads(3)); err != nil {
		t.Fatal(err)
	}
	expectRestored(t, src, zs.b)
	if zs.calls == 0 || zs.largest < 256<<10 {
		t.Fatalf("ZeroAt: %d calls, largest %d bytes; want the four all-zero chunks as one run", zs.calls, zs.largest)
	}
	sink = dirty()
	if _, err := r.Restore(context.Background(), sink); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(sink.b[256<<10:512<<10], mem[256<<10:512<<10]) {
		t.Fatal("without zero fill the zero pages should keep the sink's old bytes")
	}
}

// A source shorter than its ranges (a truncated /dev/mem-style file) is an
// error, never stale buffer contents saved as RAM.
func TestShortSource(t *testing.T) {
	src := RangeSource(bytes.NewReader(testMemory(9, 100<<10)), []Range{{Start: 0, End: 256 << 10}})
	_, err := Write(context.Background(), &memImage{}, src, Metadata{}, WithChunkSize(64<<10))
	if err == nil || !strings.Contains(err.Error(), "reading RAM at") {
		t.Fatalf("got %v", err)
	}
}

// Excluded pages are neither read nor stored, and come back as zeros; every
// other page round-trips.
func TestExclude(t *testing.T) {
	mem := testMemory(21, 2<<20)
	ranges := []Range{{Start: 0, End: 900 << 10}, {Start: 1 << 20, End: 2 << 20}}
	exclude := []Range{{Start: 0x3000, End: 0x5000}, {Start: 0x10000, End: 0x30000}, {Start: 0x80000, End: 0xe1000}, {Start: 1 << 20, End: (1 << 20) + 0x40000}, {Start: 0x1ff000, End: 0x200000}}
	src := RangeSource(bytes.NewReader(mem), ranges)
	var excludedPages uint64
	for _, e := range exclude {
		excludedPages += e.Size() / 4096
	}
	for _, chunk := range []int{64 << 10, 2 << 20} {
		img, st := writeImage(t, src, WithChunkSize(chunk), WithExclude(exclude), WithThreads(3))
		if st.ExcludedPages != excludedPages {
			t.Fatalf("chunk %d: excluded %d pages, want %d", chunk, st.ExcludedPages, excludedPages)
		}
		r, err := Open(img)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Metadata().FreePages; got != excludedPages {
			t.Fatalf("metadata free pages %d, want %d", got, excludedPages)
		}
		sink := &sparseMem{b: bytes.Repeat([]byte{0xee}, 2<<20)}
		if _, err := r.Restore(context.Background(), sink, WithZeroFill()); err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(mem)
		for _, e := range exclude {
			clear(want[e.Start:e.End])
		}
		for _, rg := range ranges {
			if !bytes.Equal(sink.b[rg.Start:rg.End], want[rg.Start:rg.End]) {
				t.Fatalf("chunk %d: range %v differs after restore", chunk, rg)
			}
		}
	}
	if _, err := Write(context.Background(), &memImage{}, src, Metadata{}, WithExclude([]Range{{Start: 0x5000, End: 0x6000}, {Start: 0x1000, End: 0x2000}})); err == nil {
		t.Fatal("unsorted exclusion accepted")
	}
}

// Chunks that do not compress are stored as they are: restored right, in
// place too, and a changed byte in one is caught by the pages' sum even
// when the record's sum was kept.
func TestStoredChunks(t *testing.T) {
	mem := testMemory(7, 128<<10)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 64 << 10; i < 128<<10; i++ {
		mem[i] = byte(rng.Uint32()) // four chunks of random pages
	}
	src := RangeSource(bytes.NewReader(mem), []Range{{Start: 0, End: 128 << 10}})
	for _, c := range []Compression{Zstd, S2, Auto} {
		img, st := writeImage(t, src, WithChunkSize(16<<10), WithCompression(c))
		if st.RawChunks < 4 || st.RawChunks == st.Chunks {
			t.Fatalf("%v: %d of %d chunks stored as they are, want the 4 random ones and not the others", c, st.RawChunks, st.Chunks)
		}
		expectRestored(t, src, restore(t, img))
		r, err := Open(img)
		if err != nil {
			t.Fatal(err)
		}
		lent := &lendingMem{sparseMem: sparseMem{b: make([]byte, len(mem))}}
		if _, err := r.Restore(context.Background(), lent); err != nil || lent.lent.Load() == 0 || !restoredRight(lent.b, mem, r.Ranges()) {
			t.Fatalf("%v: in-place restore lent %d chunks: %v", c, lent.lent.Load(), err)
		}
		es := entriesOf(t, r)
		last := len(es) - 1 // the random chunks are the last four
		_, bad := forgeChunk(t, img.b, es, last-3)
		br, _ := Open(&memImage{b: bad})
		if _, err := br.Verify(context.Background()); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "page data checksum mismatch") {
			t.Fatalf("%v: a stored chunk changed keeping its record sum: %v", c, err)
		}
	}
}
