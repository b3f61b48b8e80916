package image

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	for _, name := range []string{"fastest", "fast", "default", "best"} {
		l, err := ParseLevel(name)
		if err != nil || l.String() != name {
			t.Errorf("ParseLevel(%q) = %v, %v", name, l, err)
		}
	}
	if _, err := ParseLevel("ultra"); err == nil || err.Error() != `unknown compression level "ultra": use fastest, fast, default or best` {
		t.Errorf("ParseLevel(ultra) error = %v", err)
	}
}

// LevelFastest trades size for speed: its output must differ from "fast"
// (no Huffman literals) and still round trip (TestRoundTrip).
func TestLevelFastestSkipsHuffman(t *testing.T) {
	mem := testMemory(7, 1<<20)
	size := func(l Level) int {
		img, _ := writeImage(t, RangeSource(bytes.NewReader(mem), []Range{{Start: 0, End: 1 << 20}}), WithLevel(l), WithCompression(Zstd))
		return len(img.b)
	}
	if fast, fastest := size(LevelFast), size(LevelFastest); fastest <= fast {
		t.Errorf("fastest image %d bytes, fast %d: fastest should skip entropy coding of literals", fastest, fast)
	}
}

func TestThreadsFor(t *testing.T) {
	for _, tc := range []struct {
		want  int
		avail uint64
		got   int
	}{
		{8, 1 << 30, MaxThreads},         // plenty: the cap
		{2, 1 << 30, 2},                  // as asked
		{4, processReserve + 2*9<<20, 2}, // two workers' worth
		{4, 10 << 20, 1},                 // never none
		{4, processReserve + 1<<20, 1},   // less than one worker: still one
	} {
		if got := ThreadsFor(tc.want, tc.avail); got != tc.got {
			t.Errorf("ThreadsFor(%d, %d MiB) = %d, want %d", tc.want, tc.avail>>20, got, tc.got)
		}
	}
}

// Options are checked when applied: a bad one fails Write or Open before
// anything is written or read, naming the option.
func TestOptionsValidated(t *testing.T) {
	src := RangeSource(bytes.NewReader(make([]byte, 64<<10)), []Range{{Start: 0, End: 64 << 10}})
	for _, tc := range []struct {
		opt  WriterOption
		want string
	}{
		{WithChunkSize(1000), "chunk size 1000"},
		{WithChunkSize(maxChunkSize * 2), "chunk size"},
		{WithThreads(-1), "-1 threads"},
		{WithCompression(Compression(9)), "unknown compression"},
		{WithLevel(Level(0)), "unknown compression level"},
		{WithKey(nil), "WithKey needs a derived key"},
		{WithExclude([]Range{{Start: 8192, End: 12288}, {Start: 0, End: 4096}}), "excluded ranges"},
	} {
		out := &memImage{}
		if _, err := Write(context.Background(), out, src, Metadata{}, tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Write: %v, want an error containing %q", err, tc.want)
		}
		if len(out.b) != 0 {
			t.Errorf("Write wrote %d bytes despite a bad option", len(out.b))
		}
	}
	img, _, _ := smallImage(t)
	for _, tc := range []struct {
		opt  ReaderOption
		want string
	}{
		{WithThreads(-2), "-2 threads"},
		{WithMachineRAM(nil), "needs the machine's RAM"},
		{WithSecret(Secret{}), "WithSecret needs"},
	} {
		if _, err := Open(&memImage{b: img}, tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open: %v, want an error containing %q", err, tc.want)
		}
		r, _ := Open(&memImage{b: img})
		if _, err := r.Verify(context.Background(), tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Verify: %v, want an error containing %q", err, tc.want)
		}
	}
}

// Usable is the one rule for reading an image to resume it.
func TestUsable(t *testing.T) {
	corruptErr := corrupt("index", 0, "bad")
	for _, tc := range []struct {
		status error
		force  bool
		want   error
	}{
		{nil, false, nil},
		{nil, true, nil},
		{ErrInvalidated, false, ErrInvalidated},
		{ErrInvalidated, true, nil},
		{ErrNotCommitted, true, ErrNotCommitted},
		{corruptErr, true, corruptErr},
		{&ForeignRAMError{}, true, &ForeignRAMError{}},
	} {
		got := Usable(tc.status, tc.force)
		if (got == nil) != (tc.want == nil) || (got != nil && got.Error() != tc.want.Error()) {
			t.Errorf("Usable(%v, %v) = %v, want %v", tc.status, tc.force, got, tc.want)
		}
	}
}
